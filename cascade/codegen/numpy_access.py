"""Loads and stores of the NumPy executor generator: each access becomes a view of an array.

`AccessEmitter` decides which tensors may have absent points and so carry a presence array
(`absent_tensors`), turns an access into an index of the array that stores it (`axis_index`,
`stored_view`: tiles, parts, rings, split and merged axes; a read of a DRAM-resident array is
counted by `_rd`), emits the loads the schedule hoisted out of inner loops and the allocation of
on-chip arrays, and writes a statement's value (`emit_write`: accumulation over loop ranks,
presence, and DRAM writes counted by `_wr`). An accumulator kept on chip across the loops over
the ranks its statement reduces is written to DRAM after the outermost of them ends: its first
step records the tile (`completed`), and the loop's end writes every tile it recorded, so a loop
that skips tiles a filter empties (`mapping.skips`) may skip any of them, the last included.
"""

from __future__ import annotations

import ast

from ..lang import ir
from ..lang.ops import REDUCE_OPS, starts_empty
from ..lang.semantics import AccessInfo, AxisCoord, StatementInfo
from ..mapping.accumulate import accumulation_loops
from ..mapping.schedule import MappedCascade
from . import pyast as A
from .numpy_layout import LayoutEmitter, access_key


class AccessEmitter(LayoutEmitter):
    """Views, loads and stores of stored tensors; see the module docstring."""

    def __init__(self, mc: MappedCascade):
        super().__init__(mc)
        self.may_be_absent = self.absent_tensors()
        self.widen: dict[str, str] = {}
        self.spill: dict[str, float] = {}  # on-chip tensor -> the fraction of its accesses spilled to DRAM
        self.streamed: set[int] = set()  # indices into mc.loads not kept on chip: read at each use
        # statement -> the list (a name) of tiles its on-chip accumulator fills, written after its loops
        self.completed: dict[int, str] = {}

    # ------------------------------------------------------------ tensors with absent points
    def absent_tensors(self) -> set[str]:
        """Tensors that may hold absent points: filtered, reading an absent or ragged point, a
        reduction that may reach no present point, or a recurrence an empty `init` starts
        (`ops.starts_empty`) in a step where some contribution may be absent. Where every step
        contributes, the empty start changes no value (max(absent, x) = x = max(-inf, x), and
        what it scales is absent or 0), so the executor keeps no presence for it."""
        empty = {s for s in self.sem.steps if any(self.sem.statements[k].is_init
                                                  and starts_empty(self.sem.statements[k].statement.expr)
                                                  for k in s.statements)}
        live_steps: set[int] = set()
        while True:
            absent: set[str] = set()
            for i, step in enumerate(self.sem.steps):
                for k in step.statements:
                    info = self.sem.statements[k]
                    stmt = info.statement
                    filters = stmt.filters if isinstance(stmt, ir.Einsum) else ()
                    if info.is_init:
                        if i in live_steps and starts_empty(stmt.expr):
                            absent.add(info.name)
                    elif filters or any(r.access.tensor in absent or self.reads_ragged_point(r) for r in info.reads):
                        absent.add(info.name)
            grown = {i for i, step in enumerate(self.sem.steps) if step in empty and any(
                self.sem.statements[k].name in absent for k in step.statements if not self.sem.statements[k].is_init)}
            if grown <= live_steps:
                return absent
            live_steps |= grown

    def reads_ragged_point(self, acc: AccessInfo) -> bool:
        """Does `acc` read a recurrence over the inner part of a split where a ragged tile may end
        before the element read: a fixed element (`R[m1, M0, p]`, `R[m1, 2, p]`), or elements
        along the inner rank of a fixed tile (`R[M1, m0+1, p]`, whose loop does not stop at the
        tile's end)? Those elements are absent."""
        inner = self.sem.tensors[acc.access.tensor].iterative
        if inner is None or inner not in self.inner_parts:
            return False
        outer = self.inner_parts[inner][1]
        axis = next(a for a in acc.axes if a.rank == inner)
        o_axis = next((a for a in acc.axes if a.rank == outer), None)
        if o_axis is None or o_axis.kind not in ("var", "const", "last"):
            return False
        if axis.kind == "var":
            return o_axis.kind != "var"
        return axis.kind == "last" or (axis.kind == "const" and axis.offset > 0)

    def presence_base(self, tensor: str, previous: bool = False) -> str:
        """The name of a tensor's presence array; a ring keeps the previous and current element's."""
        if "ring" in self.mc.storage[tensor].axes:
            return self.names.presence_rings[tensor][0 if previous else 1]
        return self.names.presence[tensor]

    # ------------------------------------------------------------ hoisted loads, on-chip allocations
    def plan_hoisting(self, gi: int) -> None:
        """Name the loads the schedule hoisted out of inner loops (`MappedCascade.loads`): each is
        loaded once at its anchor loop and kept on chip while the inner loops run."""
        group = self.mc.groups[gi]
        self.hoisted: dict[int, list[tuple[str, ast.expr]]] = {}
        self.hoisted_reads: dict[tuple[int, str], str] = {}
        for i, load in enumerate(self.mc.loads):
            if not load.hoisted or load.statements[0] not in group.statements or i in self.streamed:
                continue  # a streamed tile is read where each statement uses it
            k = load.statements[0]
            read = next(r for r in self.sem.statements[k].reads
                        if r.access.tensor == load.tensor and r.axes == load.axes)
            self.widen = dict(load.widen)
            expr, vars_, _ = self.stored_view(read, k)
            self.widen = {}
            temp = self.names.fresh(f"{load.tensor}_tile")
            self.hoisted.setdefault(load.anchor, []).append((temp, expr))
            view: ast.expr = A.name(temp)
            if load.widen:  # each statement takes its own tile out of the wider block
                index = []
                for var in vars_:
                    rank = var.upper()
                    if rank in dict(load.widen):
                        start, _ = self.level_start(rank, dict(load.widen)[rank])
                        lo, hi = self.names.bounds[rank]
                        index.append(A.slice_(A.binop(A.name(lo), "-", start), A.binop(A.name(hi), "-", start)))
                    else:
                        index.append(A.slice_(None, None))
                view = A.subscript(view, index)
            for reader in load.statements:
                for r in self.sem.statements[reader].reads:
                    if r.access.tensor == load.tensor and r.axes == load.axes:
                        self.hoisted_reads[(reader, access_key(r.access))] = view

    def emit_hoisted(self, anchor: int) -> None:
        for temp, expr in getattr(self, "hoisted", {}).get(anchor, []):
            self.out.stmt(A.assign(A.name(temp), expr))

    def emit_allocations(self, scope: int) -> None:
        for name, st in self.mc.storage.items():
            if st.dram or st.scope != scope or not self.is_region_stored(name):
                continue
            shape = self.local_shape(name)
            target = self.names.rings[name][1] if "ring" in st.axes else self.names.tensors[name]
            self.out.stmt(A.assign(A.name(target), A.np_call("zeros", A.tup(*shape), A.name("dt"))))
            if name in self.may_be_absent:
                self.out.stmt(A.assign(A.name(self.presence_base(name)),
                                       A.np_call("zeros", A.tup(*shape), A.name("bool"))))

    # ------------------------------------------------------------ views of stored tensors
    def axis_index(self, axis: AxisCoord, kind: str, k: int, stored_extent_plus: int, local: bool = False,
                   tensor: str = ""):
        """(index expressions for this stored axis, the variable its result axis carries or None)."""
        n = self.names
        if kind == "tile" or (local and axis.kind == "var" and axis.offset == 0):
            return [A.slice_(None, None)], axis.var
        if axis.kind == "const":
            return [A.const(axis.offset)], None
        if axis.kind == "last":
            return [A.const(-1)], None
        if axis.kind == "split":
            outer = self.sem.splits[axis.rank][0]
            inner = axis.tile_rank
            start = A.binop(A.name(n.vars[outer]), "*", A.name(n.ranks[inner]))
            if inner in self.loop_ranks_of(k):  # a recurrence over the inner part: one point
                return [A.binop(start, "+", A.name(n.vars[inner]))], None
            return [A.slice_(start, A.binop(start, "+", A.name(n.counts[inner])))], axis.inner
        rank = axis.rank
        if kind == "part":
            lo, hi = n.bounds[rank]
            start, _ = self.part_base(tensor, rank)
            return [A.slice_(A.binop(A.name(lo), "-", start), A.binop(A.name(hi), "-", start))], axis.var
        if rank in self.widen:
            start, span = self.level_start(rank, self.widen[rank])
            return [A.slice_(start, A.binop(start, "+", A.const(span)))], axis.var
        if rank in self.mc.partitions:
            lo, hi = n.bounds[rank]
            return [A.slice_(A.name(lo), A.name(hi))], axis.var
        if rank in self.loop_ranks_of(k):
            index = A.name(n.vars[rank])
            return [A.binop(index, "+", A.const(axis.offset)) if axis.offset else index], None
        if axis.offset or stored_extent_plus or (rank in self.inner_parts and
                                                 self.inner_parts[rank][1] in self.loop_ranks_of(k)):
            ext = self.extent(axis.var, k)
            lo = A.const(axis.offset)
            return [A.slice_(lo if axis.offset else None, A.binop(ext, "+", lo) if axis.offset else ext)], axis.var
        return [A.slice_(None, None)], axis.var

    def stored_view(self, acc: AccessInfo, k: int, writing: bool = False):
        """(array expression, [its variables], presence expression or None) for an access."""
        tensor = acc.access.tensor
        st = self.mc.storage[tensor]
        info = self.sem.tensors[tensor]
        n = self.names
        base = n.tensors[tensor]
        index: list[ast.expr] = []
        vars_: list[str | None] = []
        merges: list[tuple[int, str]] = []
        axes = list(acc.axes)
        local = not st.dram and not self.is_region_stored(tensor)
        previous = False
        i = 0
        while i < len(axes):
            axis, kind = axes[i], st.axes[i]
            if kind == "point":
                i += 1
                continue
            if kind == "ring":
                prev, cur = n.rings[tensor]
                previous = axis.kind == "var" and axis.offset == 0 and not writing
                base = prev if previous else cur
                i += 1
                continue
            if axis.kind == "outer":
                merges.append((len(vars_), axis.var))
                index += [A.slice_(None, None), A.slice_(None, None)]
                vars_ += [axis.var, None]
                i += 2
                continue
            extra = 1 if info.iterative == axis.rank else 0
            idx, var = self.axis_index(axis, kind, k, extra, local, tensor)
            index += idx
            if var is not None:
                vars_.append(var)
            elif not isinstance(idx[0], ast.Slice):
                pass
            i += 1
        expr = A.subscript(A.name(base), index) if any(not _is_full_slice(x) for x in index) else A.name(base)
        present: ast.expr | None = None
        if tensor in self.may_be_absent:
            present = A.name(self.presence_base(tensor, previous))
            if any(not _is_full_slice(x) for x in index):
                present = A.subscript(present, index)
        for pos, var in reversed(merges):
            lo, hi = self.coordinates(var, k)
            expr = A.call("_merge", expr, A.const(pos), lo, hi)
            if present is not None:
                present = A.call("_merge", present, A.const(pos), lo, hi)
            vars_.pop(pos + 1)
        if st.dram and not writing:
            expr = A.call("_rd", A.name("trace"), A.const(tensor), expr)
        elif tensor in self.spill and not writing:
            expr = self.spilled("_spill_rd", tensor, expr)
        return expr, [v for v in vars_ if v is not None], present

    # ------------------------------------------------------------ writes
    def accumulation_loops(self, info: StatementInfo, k: int) -> list[str]:
        return [self.mc.loop_of[lid] for lid in accumulation_loops(self.mc, k)]

    def emit_write(self, info: StatementInfo, k: int, value: ast.expr, has_mask: bool,
                   kept: ast.expr | None = None) -> None:
        """Store a statement's value (`present` names its presence when `has_mask`). `kept`: the
        points of a reduction whose value stands though they may be absent (those the left-side
        filters keep; a reduction over nothing holds its identity there), else `present`."""
        e, n = self.out, self.names
        tensor = info.name
        st = self.mc.storage[tensor]
        target, _, _ = self.stored_view(info.write, k, writing=True)
        if st.dram and isinstance(target, ast.Name):  # fill the DRAM array: never alias an input or operand
            target = ast.Subscript(target, ast.Constant(Ellipsis), ast.Load())
        presence_target = None
        if tensor in self.may_be_absent:
            presence_target = _replace_base(target, self.presence_base(tensor))
        acc = self.accumulation_loops(info, k)
        if not acc and not st.dram and presence_target is None:
            e.stmt(A.assign(target, value))
            if tensor in self.spill:
                e.stmt(ast.Expr(self.spilled("_spill_wr", tensor, target)))
            return
        e.stmt(A.assign(A.name("value"), value))
        if st.dram and presence_target is not None and has_mask:  # absent points of a DRAM array read as 0
            keep = A.name("present") if kept is None else kept
            e.stmt(A.assign(A.name("value"), A.np_call("where", keep, A.name("value"), A.const(0.0))))
        op = REDUCE_OPS[info.reduce_op]
        on_chip = st.dram and self.mc.accumulators.get(k) == "on-chip"
        if acc:
            first = None
            for rank in acc:
                term = ast.Compare(A.name(n.vars[rank]), [ast.Eq()], [A.const(0)])
                first = term if first is None else ast.BoolOp(ast.And(), [first, term])
            if on_chip:
                e.comment(f"accumulator on chip: partial {tensor} stays on chip over {', '.join(acc)}, "
                          "written to DRAM once, after them")
            e.open_if(first)
            e.stmt(A.assign(target, A.name("value")))
            if on_chip:  # a tile the accumulator opens: written to DRAM when the loops over acc end
                append = ast.Attribute(A.name(self.completed[k]), "append", ast.Load())
                e.stmt(ast.Expr(A.call(append, target)))
            if presence_target is not None:
                e.stmt(A.assign(presence_target, self.presence_value(info, k, has_mask, presence_target)))
            e.open_else()
            old = A.call("_rd", A.name("trace"), A.const(tensor), target) if st.dram and not on_chip else target
            if tensor in self.spill:
                old = self.spilled("_spill_rd", tensor, target)
            combined = {"sum": A.binop(old, "+", A.name("value")), "prod": A.binop(old, "*", A.name("value"))}.get(
                op.name) or A.np_call(REDUCE_OPS[op.name].numpy, old, A.name("value"))
            e.stmt(A.assign(target, combined))
            if presence_target is not None:  # present where any step reached a present point
                e.stmt(A.assign(presence_target, ast.BinOp(
                    presence_target, ast.BitOr(), self.presence_value(info, k, has_mask, presence_target))))
            e.close()
        else:
            e.stmt(A.assign(target, A.name("value")))
            if presence_target is not None:
                e.stmt(A.assign(presence_target, self.presence_value(info, k, has_mask, presence_target)))
        if on_chip:  # written after the outermost loop over acc (`emit_completed`)
            return
        if st.dram:
            e.stmt(ast.Expr(A.call("_wr", A.name("trace"), A.const(tensor), target)))
        elif tensor in self.spill:
            e.stmt(ast.Expr(self.spilled("_spill_wr", tensor, target)))

    def open_completed(self, loop_id: int) -> list[tuple[int, str]]:
        """Before a loop: an empty list of tiles for every on-chip accumulator whose outermost
        reduced loop it is; returns (statement, list name) for `emit_completed`."""
        opened = []
        for k, where in sorted(self.mc.accumulators.items()):
            acc = accumulation_loops(self.mc, k)
            if where == "on-chip" and acc and acc[0] == loop_id:
                name = self.sem.statements[k].name
                self.completed[k] = self.names.fresh(f"{self.names.tensors[name]}_tiles")
                self.out.comment(f"tiles of {name} accumulated on chip, written to DRAM when the loop ends")
                self.out.stmt(A.assign(A.name(self.completed[k]), ast.List([], ast.Load())))
                opened.append((k, self.completed[k]))
        return opened

    def emit_completed(self, opened: list[tuple[int, str]]) -> None:
        """After the loop `open_completed` ran before: the accumulated tiles go to DRAM."""
        for k, tiles in opened:
            tile = self.names.fresh("tile")
            self.out.raw(f"for {tile} in {tiles}:")  # two names `_Namer.fresh` made
            self.out.depth += 1
            self.out.stmt(ast.Expr(A.call("_wr", A.name("trace"), A.const(self.sem.statements[k].name), A.name(tile))))
            self.out.close()

    def presence_value(self, info: StatementInfo, k: int, has_mask: bool, presence_target: ast.expr) -> ast.expr:
        present: ast.expr = A.name("present") if has_mask else A.const(True)
        if isinstance(presence_target, ast.Name) and not has_mask:  # a whole on-chip element: an array
            canon = self.tile_vars(info, k)
            shape = A.tup(*[self.extent(v, k) for v in info.statement.lhs.variables if v in canon])
            present = A.call("_fill", present, shape, A.name("bool"))
        return present

    def spilled(self, helper: str, tensor: str, view: ast.expr) -> ast.expr:
        """`view`, counting the spilled part of its elements in the trace (an on-chip tensor that
        does not wholly fit the buffer: that fraction of each access goes to DRAM)."""
        return A.call(helper, A.name("trace"), A.const(tensor), view, A.const(float(self.spill[tensor])))


def _is_full_slice(node: ast.expr) -> bool:
    return isinstance(node, ast.Slice) and node.lower is None and node.upper is None and node.step is None


def _replace_base(expr: ast.expr, base: str) -> ast.expr:
    if isinstance(expr, ast.Subscript):
        return ast.Subscript(A.name(base), expr.slice, ast.Load())
    return A.name(base)
