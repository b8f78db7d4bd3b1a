"""`emit_numpy`: a `MappedCascade` -> the source of a self-contained NumPy executor module.

The module has `run(**inputs) -> dict` and `run_traced(**inputs) -> (dict, trace)`. Loop ranks
(see `cascade.schedule`) become Python `for` loops; everything below them is whole-tile NumPy:
`np.einsum` for sums of products, ufuncs for maps, `max`/`sum`/... reductions. Ragged tiles
are shorter slices (their absent points simply do not exist); filters are masks. The trace
counts the elements moved to and from DRAM-resident arrays (inputs, outputs, and
intermediates read by another fusion group), read by read and write by write.
"""

from __future__ import annotations

import ast
import builtins
import keyword
from dataclasses import dataclass

from .. import ir
from ..ops import MAP_OPS, REDUCE_OPS
from ..schedule import Leaf, Loop, MappedCascade, statement_text
from ..semantics import AccessInfo, AxisCoord, StatementInfo
from . import pyast as A

_RESERVED = set(keyword.kwlist) | set(dir(builtins)) | {
    "np", "inputs", "trace", "dt", "value", "present", "run", "run_traced", "SHAPES", "TILES",
    "_execute", "_rd", "_wr", "_input", "_fill", "_merge", "_where",
}

PRELUDE = '''
def run(**inputs):
    """Evaluate the cascade; inputs by tensor name, in their declared rank order."""
    return _execute(inputs, None)


def run_traced(**inputs):
    """Like run(), and count the elements read from / written to DRAM-resident arrays."""
    trace = {"reads": {}, "writes": {}}
    outputs = _execute(inputs, trace)
    return outputs, trace


def _rd(trace, tensor, view):
    if trace is not None:
        trace["reads"][tensor] = trace["reads"].get(tensor, 0) + view.size
    return view


def _wr(trace, tensor, view):
    if trace is not None:
        trace["writes"][tensor] = trace["writes"].get(tensor, 0) + view.size


def _input(inputs, tensor, ndim):
    if tensor not in inputs:
        raise ValueError(f"missing input {tensor}")
    array = np.asarray(inputs[tensor])
    if array.ndim != ndim:
        raise ValueError(f"input {tensor} has {array.ndim} dimensions, expected {ndim}")
    return array


def _fill(value, shape, dt):
    """A writable array of the given shape from a scalar or a broadcastable array."""
    return np.array(np.broadcast_to(value, shape), dtype=dt)


def _merge(array, axis, lo, hi):
    """View axes (axis, axis+1) of a split tensor as one rank and take [lo, hi) of it."""
    shape = array.shape[:axis] + (array.shape[axis] * array.shape[axis + 1],) + array.shape[axis + 2:]
    index = (slice(None),) * axis + (slice(lo, hi),)
    return array.reshape(shape)[index]
'''


@dataclass
class _Operand:
    expr: ast.expr
    vars: list[str]
    present: ast.expr | None = None  # per point, over `vars`
    whole: ast.expr | None = None  # a condition over the statement's tile variables (see `ragged_point`)


class _Namer:
    """Deterministic Python names for spec names; collisions get a suffix."""

    def __init__(self, mc: MappedCascade):
        self.used = set(_RESERVED)
        self.ranks: dict[str, str] = {}
        for r in sorted(mc.shapes):
            self.ranks[r] = self.fresh(r)
        self.vars = {r: self.fresh(r.lower()) for r in sorted(mc.shapes)}
        self.bounds = {r: (self.fresh(r.lower() + "_lo"), self.fresh(r.lower() + "_hi")) for r in mc.partitions}
        self.counts = {inner: self.fresh(inner.lower() + "_n") for _, inner in mc.semantics.splits.values()}
        self.tensors: dict[str, str] = {}
        for t in mc.semantics.tensors:
            self.tensors[t] = self.fresh(t)
        self.rings = {t: (self.fresh(t + "_prev"), self.fresh(t + "_cur")) for t in mc.semantics.tensors}
        self.presence = {t: self.fresh(t + "_present") for t in mc.semantics.tensors}
        self.presence_rings = {t: (self.fresh(t + "_present_prev"), self.fresh(t + "_present_cur"))
                               for t in mc.semantics.tensors}

    def fresh(self, base: str) -> str:
        candidate = base
        while candidate in self.used or keyword.iskeyword(candidate):
            candidate += "_"
        self.used.add(candidate)
        return candidate


def emit_numpy(mc: MappedCascade, spec_label: str = "", mapping_label: str = "") -> str:
    return _Generator(mc, spec_label, mapping_label).module()


class _Generator:
    def __init__(self, mc: MappedCascade, spec_label: str, mapping_label: str):
        self.mc, self.sem = mc, mc.semantics
        self.spec_label, self.mapping_label = spec_label, mapping_label
        self.names = _Namer(mc)
        self.out = A.Emitter()
        self.outer_parts = {outer: rank for rank, (outer, _) in self.sem.splits.items()}
        self.inner_parts = {inner: (rank, outer) for rank, (outer, inner) in self.sem.splits.items()}
        self.may_be_absent = self.absent_tensors()
        self.widen: dict[str, str] = {}

    # ------------------------------------------------------------ module layout
    def module(self) -> str:
        e = self.out
        shapes = ", ".join(f"{r}={n}" for r, n in self.mc.shapes.items())
        tiles = ", ".join(f"{p.rank}: {list(p.spans[:-1])}" for p in self.mc.partitions.values()) or "none"
        e.raw('"""NumPy executor for cascade ' + _safe_doc(self.sem.cascade.name) + ", generated by cascade.")
        e.raw("")
        e.raw("spec:    " + _safe_doc(self.spec_label or self.sem.cascade.file))
        e.raw("mapping: " + _safe_doc(self.mapping_label or "default (no splits, nothing fused)"))
        e.raw("shapes:  " + shapes)
        e.raw("tiles:   " + tiles)
        e.raw("")
        e.raw("Rank shapes are taken from the inputs; tile shapes are fixed. run(**inputs) -> dict.")
        e.raw('"""')
        e.raw("")
        e.raw("import numpy as np")
        e.raw("")
        shapes_dict = A.text(ast.Dict([A.const(r) for r in self.mc.shapes], [A.const(n) for n in self.mc.shapes.values()]))
        e.raw(f"SHAPES = {shapes_dict}")
        e.lines.extend(PRELUDE.splitlines())
        e.raw("")
        e.raw("")
        e.raw("def _execute(inputs, trace):")
        e.depth = 1
        self.emit_setup()
        for gi, group in enumerate(self.mc.groups):
            e.raw("")
            e.comment(f"==== fusion group {group.name}: loops over {', '.join(group.loop_ranks) or 'none'}")
            self.plan_hoisting(gi)
            self.emit_nodes(list(group.tree), group_top=True)
        e.raw("")
        outputs = ast.Dict([A.const(d.name) for d in self.sem.cascade.outputs],
                           [A.name(self.names.tensors[d.name]) for d in self.sem.cascade.outputs])
        e.stmt(ast.Return(outputs))
        return e.source()

    def emit_setup(self) -> None:
        e, n = self.out, self.names
        e.comment("inputs and rank shapes")
        known: set[str] = set()
        for decl in self.sem.cascade.inputs:
            t = n.tensors[decl.name]
            e.stmt(A.assign(A.name(t), A.call("_input", A.name("inputs"), A.const(decl.name), A.const(len(decl.ranks)))))
            for pos, rank in enumerate(decl.ranks):
                dim = ast.Subscript(ast.Attribute(A.name(t), "shape", ast.Load()), A.const(pos), ast.Load())
                if rank in known:
                    e.raw(f"if {A.text(dim)} != {n.ranks[rank]}:")
                    e.depth += 1
                    e.stmt(ast.Raise(A.call("ValueError", A.const(f"input {decl.name}: rank {rank} disagrees with "
                                                                   "another input")), None))
                    e.depth -= 1
                else:
                    e.stmt(A.assign(A.name(n.ranks[rank]), dim))
                    known.add(rank)
        for rank, size in self.mc.shapes.items():
            if rank in known or rank in self.outer_parts or any(rank in p.names for p in self.mc.partitions.values()):
                continue
            e.stmt(A.assign(A.name(n.ranks[rank]), ast.Subscript(A.name("SHAPES"), A.const(rank), ast.Load())))
        for outer, rank in self.outer_parts.items():
            inner = self.sem.splits[rank][1]
            e.stmt(A.assign(A.name(n.ranks[outer]), _ceil_div(A.name(n.ranks[rank]), A.name(n.ranks[inner]))))
        for p in self.mc.partitions.values():
            for level, span, extent in zip(p.names, p.spans, p.extents):
                if level == p.names[0]:
                    value = _ceil_div(A.name(n.ranks[p.rank]), A.const(span))
                else:
                    value = A.const(extent)
                e.stmt(A.assign(A.name(n.ranks[level]), value))
        arrays = [A.name(n.tensors[d.name]) for d in self.sem.cascade.inputs]
        dt = A.np_call("result_type", *arrays, A.const(1.0)) if arrays else A.np_attr("float64")
        e.stmt(A.assign(A.name("dt"), dt))
        e.comment("DRAM-resident outputs and intermediates read by another fusion group")
        for name, st in self.mc.storage.items():
            if st.dram and self.sem.tensors[name].kind != "input":
                shape = A.tup(*[self.full_extent(name, r) for r in self.sem.tensors[name].ranks])
                e.stmt(A.assign(A.name(n.tensors[name]), A.np_call("zeros", shape, A.name("dt"))))
                if name in self.may_be_absent:
                    e.stmt(A.assign(A.name(n.presence[name]), A.np_call("zeros", shape, A.name("bool"))))

    def full_extent(self, tensor: str, rank: str) -> ast.expr:
        size = A.name(self.names.ranks[rank])
        return A.binop(size, "+", A.const(1)) if self.sem.tensors[tensor].iterative == rank else size

    # ------------------------------------------------------------ loop tree
    def emit_nodes(self, nodes: list, group_top: bool = False) -> None:
        if group_top:
            self.emit_allocations(0)
            self.emit_hoisted(0)
        for node in nodes:
            if isinstance(node, Leaf):
                self.emit_statement(node.statement)
            else:
                self.emit_loop(node)

    def loop_extent(self, rank: str) -> ast.expr:
        """A loop's trip count; an inner partition level stops at the end of a ragged rank."""
        n = self.names
        for p in self.mc.partitions.values():
            if rank in p.names[1:-1]:
                j = p.names.index(rank)
                start = None
                for level, span in zip(p.names[:j], p.spans[:j]):
                    term = A.binop(A.name(n.vars[level]), "*", A.const(span))
                    start = term if start is None else A.binop(start, "+", term)
                left = A.binop(A.name(n.ranks[p.rank]), "-", start)
                return A.call("min", A.name(n.ranks[rank]), _ceil_div(left, A.const(p.spans[j])))
        return A.name(n.ranks[rank])

    def emit_loop(self, loop: Loop) -> None:
        e, n = self.out, self.names
        extent = self.loop_extent(loop.rank)
        if loop.rank in self.inner_parts and self.encloses(loop, self.inner_parts[loop.rank][1]):
            extent = A.name(n.counts[loop.rank])  # a recurrence over M0 stops at the ragged tile's end
        e.open_for(n.vars[loop.rank], extent)
        for p in self.mc.partitions.values():
            if loop.rank == p.names[-2]:  # the innermost outer level fixes the tile
                lo, hi = n.bounds[p.rank]
                start = None
                for level, span in zip(p.names[:-1], p.spans[:-1]):
                    term = A.binop(A.name(n.vars[level]), "*", A.const(span))
                    start = term if start is None else A.binop(start, "+", term)
                e.stmt(A.assign(A.name(lo), start))
                e.stmt(A.assign(A.name(hi), A.call("min", A.binop(A.name(lo), "+", A.const(p.spans[-2])),
                                                   A.name(n.ranks[p.rank]))))
        if loop.rank in self.outer_parts:
            rank = self.outer_parts[loop.rank]
            inner = self.sem.splits[rank][1]
            start = A.binop(A.name(n.vars[loop.rank]), "*", A.name(n.ranks[inner]))
            e.stmt(A.assign(A.name(n.counts[inner]), A.call(
                "min", A.name(n.ranks[inner]), A.binop(A.name(n.ranks[rank]), "-", start))))
        for name, st in self.mc.storage.items():
            if not st.dram and "ring" in st.axes and self.ring_loop(name) == loop.id:
                rings = [n.rings[name]] + ([n.presence_rings[name]] if name in self.may_be_absent else [])
                for prev, cur in rings:
                    value = A.name(cur)
                    if self.is_region_stored(name):
                        value = A.call(ast.Attribute(A.name(cur), "copy", ast.Load()))
                    e.stmt(A.assign(A.name(prev), value))
        self.emit_allocations(loop.id)
        self.emit_hoisted(loop.id)
        self.emit_nodes(loop.body)
        e.close()

    def encloses(self, loop: Loop, rank: str) -> bool:
        """Does a loop over `rank` run outside `loop`?"""
        node = loop
        while isinstance(node, Loop):
            node = node.body[0]
        path = self.mc.paths[node.statement]
        return any(self.mc.loop_of[lid] == rank for lid in path[: path.index(loop.id)])

    # ------------------------------------------------------------ loads hoisted out of inner loops
    def plan_hoisting(self, gi: int) -> None:
        """Name the loads the schedule hoisted out of inner loops (`MappedCascade.loads`): each is
        loaded once at its anchor loop and kept on chip while the inner loops run."""
        group = self.mc.groups[gi]
        self.hoisted: dict[int, list[tuple[str, ast.expr]]] = {}
        self.hoisted_reads: dict[tuple[int, str], str] = {}
        for load in self.mc.loads:
            if not load.hoisted or load.statements[0] not in group.statements:
                continue
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
                        self.hoisted_reads[(reader, _access_key(r.access))] = view

    def emit_hoisted(self, anchor: int) -> None:
        for temp, expr in getattr(self, "hoisted", {}).get(anchor, []):
            self.out.stmt(A.assign(A.name(temp), expr))

    def ring_loop(self, tensor: str) -> int | None:
        writer = self.writer_index(tensor)
        rank = self.sem.tensors[tensor].iterative
        return next((lid for lid in self.mc.paths[writer] if self.mc.loop_of[lid] == rank), None)

    def writer_index(self, tensor: str) -> int:
        return next(k for k, s in enumerate(self.sem.statements) if s.name == tensor and not s.is_init)

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

    def presence_base(self, tensor: str, previous: bool = False) -> str:
        """The name of a tensor's presence array; a ring keeps the previous and current element's."""
        if "ring" in self.mc.storage[tensor].axes:
            return self.names.presence_rings[tensor][0 if previous else 1]
        return self.names.presence[tensor]

    def is_region_stored(self, tensor: str) -> bool:
        """Does an on-chip tensor need an allocated array written by regions?"""
        st = self.mc.storage[tensor]
        info = self.sem.tensors[tensor]
        for rank, kind in zip(info.ranks, st.axes):
            if kind == "part" or (kind == "full" and (rank in self.mc.partitions or self.is_loop_rank(rank))):
                return True
        return False

    def part_base(self, tensor: str, rank: str) -> tuple[ast.expr, int]:
        """(start, span) of the outer-level tile a 'part' axis keeps."""
        return self.level_start(rank, dict(self.mc.storage[tensor].parts)[rank])

    def level_start(self, rank: str, level: str) -> tuple[ast.expr, int]:
        """(start, span) of the current tile of one partition level of a rank."""
        p = self.mc.partitions[rank]
        j = p.names.index(level)
        start = None
        for name, span in zip(p.names[: j + 1], p.spans[: j + 1]):
            term = A.binop(A.name(self.names.vars[name]), "*", A.const(span))
            start = term if start is None else A.binop(start, "+", term)
        return start, p.spans[j]

    def is_loop_rank(self, rank: str) -> bool:
        return any(r == rank for r in self.mc.loop_of.values())

    def local_shape(self, tensor: str) -> list[ast.expr]:
        st = self.mc.storage[tensor]
        shape = []
        for rank, kind in zip(self.sem.tensors[tensor].ranks, st.axes):
            if kind in ("point", "ring"):
                continue
            if kind == "tile" and rank in self.mc.partitions:
                lo, hi = self.names.bounds[rank]
                shape.append(A.binop(A.name(hi), "-", A.name(lo)))
            elif kind == "part":
                start, span = self.part_base(tensor, rank)
                shape.append(A.call("min", A.const(span), A.binop(A.name(self.names.ranks[rank]), "-", start)))
            else:
                shape.append(self.full_extent(tensor, rank))
        return shape

    # ------------------------------------------------------------ one statement
    def absent_tensors(self) -> set[str]:
        absent: set[str] = set()
        for step in self.sem.steps:
            for k in step.statements:
                info = self.sem.statements[k]
                stmt = info.statement
                filters = stmt.filters if isinstance(stmt, ir.Einsum) else ()
                kept = set(stmt.lhs.variables)
                if info.reduced:
                    lhs_only = [c for c in filters if {v.var for v in ir.affine_vars(c.left) + ir.affine_vars(c.right)}
                                <= kept]
                    if lhs_only:
                        absent.add(info.name)
                elif filters or any(r.access.tensor in absent or self.reads_ragged_point(r) for r in info.reads):
                    absent.add(info.name)
        return absent

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

    def ragged_point(self, acc: AccessInfo, canon: list[str], k: int) -> ast.expr | None:
        """For a read of a recurrence over the inner part M0 of `split M = M1 * M0` at element c
        of M0 (`last`: c = M0) in tile m1, the condition that the element exists: tile m1 of M
        reaches it (the step m0 = c - 1 ran), `m1 * M0 + c <= M` (over the statement's `canon`
        tile variables when c is one). Beyond the end of a ragged tile the element is absent
        (DESIGN.md section 2), though on chip the recurrence still holds its partial value there."""
        if not self.reads_ragged_point(acc):
            return None
        n = self.names
        inner = self.sem.tensors[acc.access.tensor].iterative
        assert inner is not None
        rank, outer = self.inner_parts[inner]
        axis = next(a for a in acc.axes if a.rank == inner)
        at: ast.expr
        if axis.kind == "last":
            at = A.name(n.ranks[inner])
        elif axis.kind == "const":
            at = A.const(axis.offset)
        else:
            at = self.affine(ir.AffVar(axis.var), canon, k)
            if axis.offset:
                at = A.binop(at, "+", A.const(axis.offset))
        o_axis = next(a for a in acc.axes if a.rank == outer)
        tile: ast.expr
        if o_axis.kind == "last":
            tile = A.binop(A.name(n.ranks[outer]), "-", A.const(1))
        elif o_axis.kind == "const":
            tile = A.const(o_axis.offset)
        else:
            tile = A.name(n.vars[outer])
            if o_axis.offset:
                tile = A.binop(tile, "+", A.const(o_axis.offset))
        start = A.binop(tile, "*", A.name(n.ranks[inner]))
        return ast.Compare(A.binop(start, "+", at), [ast.LtE()], [A.name(n.ranks[rank])])

    def loop_ranks_of(self, k: int) -> set[str]:
        return {self.mc.loop_of[lid] for lid in self.mc.paths[k]}

    def tile_vars(self, info: StatementInfo, k: int) -> list[str]:
        group_loops = set(self.mc.group_of(k).loop_ranks)
        return [v for v in info.variables if v.upper() not in group_loops]

    def extent(self, var: str, k: int) -> ast.expr:
        rank, n = var.upper(), self.names
        if rank in self.mc.partitions:
            lo, hi = n.bounds[rank]
            return A.binop(A.name(hi), "-", A.name(lo))
        if rank in self.inner_parts and self.inner_parts[rank][1] in self.loop_ranks_of(k):
            return A.name(n.counts[rank])
        return A.name(n.ranks[rank])

    def coordinates(self, var: str, k: int) -> tuple[ast.expr, ast.expr]:
        """[lo, hi) of a tile variable's coordinates in its own rank."""
        rank, n = var.upper(), self.names
        if rank in self.mc.partitions:
            lo, hi = n.bounds[rank]
            return A.name(lo), A.name(hi)
        return A.const(0), self.extent(var, k)

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
        return expr, [v for v in vars_ if v is not None], present

    def align(self, expr: ast.expr, have: list[str], canon: list[str]) -> ast.expr:
        order = sorted(range(len(have)), key=lambda i: canon.index(have[i]))
        if order != list(range(len(have))):
            expr = A.np_call("transpose", expr, A.tup(*[A.const(i) for i in order]))
        present = {have[i] for i in order}
        missing = [pos for pos, v in enumerate(canon) if v not in present]
        if missing:
            expr = A.np_call("expand_dims", expr, A.tup(*[A.const(m) for m in missing]))
        return expr

    def emit_statement(self, k: int) -> None:
        e = self.out
        info = self.sem.statements[k]
        stmt = info.statement
        e.comment(statement_text(stmt))
        canon = self.tile_vars(info, k)
        lhs_vars = [v for v in stmt.lhs.variables if v in canon]
        reduced = [v for v in canon if v not in lhs_vars]
        canon = lhs_vars + reduced
        operands: dict[str, _Operand] = {}
        temps: set[str] = set()
        for read in info.reads:
            key = _access_key(read.access)
            if key not in operands:
                expr, vars_, present = self.stored_view(read, k)
                operands[key] = _Operand(expr, vars_, present, self.ragged_point(read, canon, k))
                if (k, key) in self.hoisted_reads:
                    expr = operands[key].expr = self.hoisted_reads[(k, key)]
                if not isinstance(expr, ast.Name):
                    temp = self.temporary(f"{read.access.tensor}_tile", temps)
                    e.stmt(A.assign(A.name(temp), expr))
                    operands[key].expr = A.name(temp)
        filters = stmt.filters if isinstance(stmt, ir.Einsum) else ()
        op = REDUCE_OPS[info.reduce_op]
        presence = [self.align(o.present, o.vars, canon) for o in operands.values() if o.present is not None]
        presence += [o.whole for o in operands.values() if o.whole is not None]
        value = None
        if reduced and info.reduce_op == "sum" and not filters and not presence:
            value = self.einsum(stmt.expr, operands, canon, lhs_vars)
        if value is None:
            value = self.expression(stmt.expr, operands, canon)
            mask = None
            for cmp in filters:
                term = ast.Compare(self.affine(cmp.left, canon, k), [_CMP[cmp.op]()], [self.affine(cmp.right, canon, k)])
                mask = term if mask is None else A.binop(mask, "&", term) if False else ast.BinOp(mask, ast.BitAnd(), term)
            for p in presence:
                mask = p if mask is None else ast.BinOp(mask, ast.BitAnd(), p)
            if info.reduced:  # over tile variables here, over loop ranks by accumulation (emit_write)
                if mask is not None:  # absent points count as the identity
                    value = A.np_call("where", mask, value, A.const(op.identity))
                if reduced:
                    axes = A.tup(*[A.const(len(lhs_vars) + i) for i in range(len(reduced))])
                    value = A.np_call(op.array_fn, value, axis=axes)
                mask = self.lhs_mask(filters, set(stmt.lhs.variables), canon[: len(lhs_vars)], k)
            if mask is not None:
                e.stmt(A.assign(A.name("present"), A.np_call("broadcast_to", mask,
                                                             A.tup(*[self.extent(v, k) for v in lhs_vars]))))
        else:
            mask = None
        covered = {v for o in operands.values() for v in o.vars}
        if any(v not in covered for v in lhs_vars) or not operands:
            value = A.call("_fill", value, A.tup(*[self.extent(v, k) for v in lhs_vars]), A.name("dt"))
        self.emit_write(info, k, value, has_mask=mask is not None)

    def temporary(self, base: str, taken: set[str]) -> str:
        """A statement-local temporary name: never a name the module uses for anything else."""
        candidate, k = base, 1
        while candidate in self.names.used or candidate in taken:
            k += 1
            candidate = f"{base}{k}"
        taken.add(candidate)
        return candidate

    def lhs_mask(self, filters, kept: set[str], canon_lhs: list[str], k: int):
        mask = None
        for cmp in filters:
            used = {v.var for v in ir.affine_vars(cmp.left) + ir.affine_vars(cmp.right)}
            if used <= kept:
                term = ast.Compare(self.affine(cmp.left, canon_lhs, k), [_CMP[cmp.op]()],
                                   [self.affine(cmp.right, canon_lhs, k)])
                mask = term if mask is None else ast.BinOp(mask, ast.BitAnd(), term)
        return mask

    def einsum(self, expr: ir.Expr, operands: dict[str, _Operand], canon: list[str], lhs_vars: list[str]):
        factors = _product_factors(expr)
        if factors is None:
            return None
        letters: dict[str, str] = {}
        for v in canon:
            letter = v[0] if v[0] not in letters.values() else next(
                c for c in "abcdefghijklmnopqrstuvwxyz" if c not in letters.values())
            letters[v] = letter
        subs, arrays, scalars = [], [], []
        for f in factors:
            if isinstance(f, ir.Read):
                o = operands[_access_key(f.access)]
                subs.append("".join(letters[v] for v in o.vars))
                arrays.append(o.expr)
            else:
                scalars.append(self.expression(f, operands, canon))
        if not arrays or any(letters[v] not in "".join(subs) for v in lhs_vars):
            return None  # a left-side variable no factor reads: broadcast by the general path
        spec = ",".join(subs) + "->" + "".join(letters[v] for v in lhs_vars)
        value: ast.expr = A.np_call("einsum", A.const(spec), *arrays, optimize=A.const(True))
        for s in scalars:
            value = A.binop(value, "*", s)
        return value

    def expression(self, expr: ir.Expr, operands: dict[str, _Operand], canon: list[str]) -> ast.expr:
        match expr:
            case ir.Num(value=v):
                return A.const(float(v))
            case ir.ShapeScalar(rank=r):
                return A.call(ast.Attribute(A.name("dt"), "type", ast.Load()), A.name(self.names.ranks[r]))
            case ir.Read(access=acc):
                o = operands[_access_key(acc)]
                return self.align(o.expr, o.vars, canon)
            case ir.Neg(operand=x):
                return ast.UnaryOp(ast.USub(), self.expression(x, operands, canon))
            case ir.BinOp(op=op, left=l, right=r):
                return A.binop(self.expression(l, operands, canon), op, self.expression(r, operands, canon))
            case ir.Call(fn=fn, args=args):
                return A.np_call(MAP_OPS[fn].numpy, *[self.expression(a, operands, canon) for a in args])
        raise AssertionError(expr)

    def affine(self, aff: ir.Affine, canon: list[str], k: int) -> ast.expr:
        match aff:
            case ir.AffVar(var=v):
                if v not in canon:
                    return A.name(self.names.vars[v.upper()])
                lo, hi = self.coordinates(v, k)
                shape = [A.const(-1) if c == v else A.const(1) for c in canon]
                return ast.Call(ast.Attribute(A.np_call("arange", lo, hi), "reshape", ast.Load()), [A.tup(*shape)], [])
            case ir.AffConst(value=c):
                return A.const(c)
            case ir.AffShape(rank=r):
                return A.name(self.names.ranks[r])
            case ir.AffNeg(operand=o):
                return ast.UnaryOp(ast.USub(), self.affine(o, canon, k))
            case ir.AffBin(op=op, left=l, right=r):
                return A.binop(self.affine(l, canon, k), op, self.affine(r, canon, k))
        raise AssertionError(aff)

    def accumulation_loops(self, info: StatementInfo, k: int) -> list[str]:
        kept = set(self.sem.tensors[info.name].ranks)
        iterated = {v.upper() for v in info.variables}
        loops = []
        for lid in self.mc.paths[k]:
            rank = self.mc.loop_of[lid]
            owner = next((p.rank for p in self.mc.partitions.values() if rank in p.names), rank)
            if owner in iterated and owner not in kept:
                loops.append(rank)
        return loops

    def emit_write(self, info: StatementInfo, k: int, value: ast.expr, has_mask: bool) -> None:
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
            return
        e.stmt(A.assign(A.name("value"), value))
        if st.dram and presence_target is not None and has_mask:  # absent points of a DRAM array read as 0
            e.stmt(A.assign(A.name("value"), A.np_call("where", A.name("present"), A.name("value"), A.const(0.0))))
        op = REDUCE_OPS[info.reduce_op]
        if acc:
            first = None
            for rank in acc:
                term = ast.Compare(A.name(n.vars[rank]), [ast.Eq()], [A.const(0)])
                first = term if first is None else ast.BoolOp(ast.And(), [first, term])
            e.open_if(first)
            e.stmt(A.assign(target, A.name("value")))
            e.open_else()
            old = A.call("_rd", A.name("trace"), A.const(tensor), target) if st.dram else target
            combined = {"sum": A.binop(old, "+", A.name("value")), "prod": A.binop(old, "*", A.name("value"))}.get(
                op.name) or A.np_call(REDUCE_OPS[op.name].numpy, old, A.name("value"))
            e.stmt(A.assign(target, combined))
            e.close()
        else:
            e.stmt(A.assign(target, A.name("value")))
        if presence_target is not None:
            present: ast.expr = A.name("present") if has_mask else A.const(True)
            if isinstance(presence_target, ast.Name) and not has_mask:  # a whole on-chip element: an array
                canon = self.tile_vars(info, k)
                shape = A.tup(*[self.extent(v, k) for v in info.statement.lhs.variables if v in canon])
                present = A.call("_fill", present, shape, A.name("bool"))
            e.stmt(A.assign(presence_target, present))
        if st.dram:
            e.stmt(ast.Expr(A.call("_wr", A.name("trace"), A.const(tensor), target)))


def _access_key(access: ir.Access) -> str:
    from ..show import show_access

    return show_access(access)


_CMP = {"<": ast.Lt, "<=": ast.LtE, "==": ast.Eq, "!=": ast.NotEq, ">=": ast.GtE, ">": ast.Gt}


def _ceil_div(a: ast.expr, b: ast.expr) -> ast.expr:
    return A.binop(A.binop(A.binop(a, "+", b), "-", A.const(1)), "//", b)


def _is_full_slice(node: ast.expr) -> bool:
    return isinstance(node, ast.Slice) and node.lower is None and node.upper is None and node.step is None


def _replace_base(expr: ast.expr, base: str) -> ast.expr:
    if isinstance(expr, ast.Subscript):
        return ast.Subscript(A.name(base), expr.slice, ast.Load())
    return A.name(base)


def _product_factors(expr: ir.Expr) -> list[ir.Expr] | None:
    match expr:
        case ir.BinOp(op="*", left=l, right=r):
            left, right = _product_factors(l), _product_factors(r)
            return None if left is None or right is None else left + right
        case ir.Read() | ir.Num() | ir.ShapeScalar():
            return [expr]
    return None


def _safe_doc(text: str) -> str:
    """Spec-derived text placed in the module docstring: one line, no quote characters."""
    return "".join(ch for ch in text.replace("\n", " ") if ch.isprintable() and ch not in "\"'\\")
