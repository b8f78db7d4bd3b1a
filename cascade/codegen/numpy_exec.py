"""`emit_numpy`: a `MappedCascade` -> the source of a self-contained NumPy executor module.

The module has `run(**inputs) -> dict` and `run_traced(**inputs) -> (dict, trace)`. Loop ranks
(see `cascade.mapping.schedule`) become Python `for` loops; everything below them is whole-tile NumPy:
`np.einsum` for sums of products, ufuncs for maps, `max`/`sum`/... reductions. Ragged tiles
are shorter slices (their absent points simply do not exist); filters are masks. The trace
counts the elements moved to and from DRAM-resident arrays (inputs, outputs, and
intermediates read by another fusion group), read by read and write by write, and the spilled
part of each access to an on-chip intermediate when generated with `spill` fractions.

This module owns the entry point and the module's layout: its docstring, the `PRELUDE` of
helpers, the setup of inputs, rank shapes and DRAM arrays, and the loop tree of each fusion
group. The generator is built in layers, each a subclass of the one before:
`numpy_layout` (names, tile geometry) -> `numpy_access` (loads and stores, presence, trace)
-> `numpy_statement` (one statement's value, its masks) -> `_Generator` here.
"""

from __future__ import annotations

import ast

from ..mapping.schedule import Leaf, Loop, MappedCascade
from ..mapping.skips import TileSkip, tile_skips
from . import pyast as A
from .numpy_statement import StatementEmitter

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


class InputError(ValueError):
    """Inputs that do not fit this executor: missing, of the wrong rank count, not real numbers."""


def _input(inputs, tensor, ndim):
    if tensor not in inputs:
        raise InputError(f"missing input {tensor}")
    array = np.asarray(inputs[tensor])
    if array.dtype.kind not in "biuf":
        raise InputError(f"input {tensor} has dtype {array.dtype}: inputs must be real numbers "
                         "(float, int or bool arrays)")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)  # as the reference: integers and booleans compute in float64
    if array.ndim != ndim:
        raise InputError(f"input {tensor} has {array.ndim} dimensions, expected {ndim}")
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


SPILL_PRELUDE = '''
def _spill_rd(trace, tensor, view, fraction):
    if trace is not None:
        trace["reads"][tensor] = trace["reads"].get(tensor, 0) + view.size * fraction
    return view


def _spill_wr(trace, tensor, view, fraction):
    if trace is not None:
        trace["writes"][tensor] = trace["writes"].get(tensor, 0) + view.size * fraction
'''


def emit_numpy(mc: MappedCascade, spec_label: str = "", mapping_label: str = "",
               spill: dict[str, float] | None = None, streamed: set[int] | None = None,
               streamed_by_group: dict[str, tuple[int, ...]] | None = None) -> str:
    """The executor's source; `spill` (on-chip tensor -> fraction, from the target's buffer, see
    cascade.model.spill) makes the trace count that part of each access to it as DRAM traffic;
    `streamed` (indices into mc.loads) are tiles not kept on chip: each use reads its own from DRAM.
    Where fusion groups partition ranks their own way (`cascade.mapping.variants`), each group is
    generated from the binding that runs it, and `streamed_by_group` (group name -> indices into
    that binding's loads, `GroupSpill.streamed`) says which of its tiles stream."""
    gen = _Generator(mc, spec_label, mapping_label)
    gen.spill = dict(spill or {})
    gen.streamed = set(streamed or ())
    if mc.variants:
        by_group = streamed_by_group or {}
        for bound, owned in mc.bindings():
            sub = gen if bound is mc else _Generator(bound, spec_label, mapping_label)
            sub.names, sub.out, sub.spill = gen.names, gen.out, gen.spill
            sub.streamed = {i for gi in owned for i in by_group.get(mc.groups[gi].name, ())}
            for gi in owned:
                gen.by_group[gi] = sub
    return gen.module()


class _Generator(StatementEmitter):
    def __init__(self, mc: MappedCascade, spec_label: str, mapping_label: str):
        super().__init__(mc)
        self.spec_label, self.mapping_label = spec_label, mapping_label
        self.skips = tile_skips(mc)
        self.by_group: dict[int, _Generator] = {}  # a group generated from its own binding (variants)

    # ------------------------------------------------------------ module layout
    def module(self) -> str:
        e = self.out
        # only validated ints and checked rank names reach the docstring, each through repr/_safe_doc
        shapes = ", ".join(f"{_safe_doc(r)}={int(n)!r}" for r, n in self.mc.shapes.items())
        tiles = ", ".join(f"{_safe_doc(p.rank)}: {[int(t) for t in p.spans[:-1]]!r}"
                          for p in self.mc.partitions.values()) or "none"
        for groups, bound in self.mc.variants:  # fusion groups with partitions of their own
            own = ", ".join(f"{_safe_doc(p.rank)}: {[int(t) for t in p.spans[:-1]]!r}" for p in bound.partitions.values())
            tiles += "; " + " ".join(_safe_doc(self.mc.groups[gi].name) for gi in groups) + " own: " + own
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
        shapes_dict = A.text(ast.Dict([A.const(r) for r in self.mc.shapes],
                                      [A.const(n) for n in self.mc.shapes.values()]))
        e.raw(f"SHAPES = {shapes_dict}")
        e.lines.extend(PRELUDE.splitlines())
        if self.spill:  # only an executor generated for a target whose buffer overflows counts spills
            e.lines.extend(SPILL_PRELUDE.splitlines())
        e.raw("")
        e.raw("")
        e.raw("def _execute(inputs, trace):")
        e.depth = 1
        self.emit_setup()
        for gi in range(len(self.mc.groups)):
            gen = self.by_group.get(gi, self)
            group = gen.mc.groups[gi]
            e.raw("")
            e.comment(f"==== fusion group {group.name}: loops over {', '.join(group.loop_ranks) or 'none'}")
            if self.by_group:  # each group's own partition levels
                gen.emit_levels()
            gen.plan_hoisting(gi)
            gen.emit_nodes(list(group.tree), group_top=True)
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
            e.stmt(A.assign(A.name(t), A.call("_input", A.name("inputs"), A.const(decl.name),
                                              A.const(len(decl.ranks)))))
            for pos, rank in enumerate(decl.ranks):
                dim = ast.Subscript(ast.Attribute(A.name(t), "shape", ast.Load()), A.const(pos), ast.Load())
                if rank in known:
                    e.raw(f"if {A.text(dim)} != {n.ranks[rank]}:")
                    e.depth += 1
                    e.stmt(ast.Raise(A.call("InputError", A.const(f"input {decl.name}: rank {rank} disagrees with "
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
        if not self.mc.variants:
            self.emit_levels()
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

    def emit_levels(self) -> None:
        """The extents of the mapping's partition levels (P1 = ceil(P / 256), P0 = 256)."""
        e, n = self.out, self.names
        for p in self.mc.partitions.values():
            for level, span, extent in zip(p.names, p.spans, p.extents):
                if level == p.names[0]:
                    value = _ceil_div(A.name(n.ranks[p.rank]), A.const(span))
                else:
                    value = A.const(extent)
                e.stmt(A.assign(A.name(n.ranks[level]), value))

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

    def emit_loop(self, loop: Loop) -> None:
        e, n = self.out, self.names
        extent = self.loop_extent(loop.rank)
        if loop.rank in self.inner_parts and self.encloses(loop, self.inner_parts[loop.rank][1]):
            extent = A.name(n.counts[loop.rank])  # a recurrence over M0 stops at the ragged tile's end
        skip = self.skips.get(loop.id)
        seen = None
        if skip is not None and not skip.at_init:
            seen = n.fresh(f"{skip.outer.lower()}_live_seen")
            e.stmt(A.assign(A.name(seen), A.const(False)))
        completed = self.open_completed(loop.id)
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
        if skip is not None:
            self.emit_skip(skip, seen)
        self.emit_allocations(loop.id)
        self.emit_hoisted(loop.id)
        self.emit_nodes(loop.body)
        e.close()
        self.emit_completed(completed)

    def emit_skip(self, skip: TileSkip, seen: str | None) -> None:
        """Skip a tile of keys no filtered point reaches, before it loads anything (the rule of
        `cascade.mapping.skips`: a band lo <= m - b <= hi against the current range of b)."""
        e, n = self.out, self.names
        if skip.whole in self.sem.splits:
            m_lo = A.binop(A.name(n.vars[skip.outer]), "*", A.name(n.ranks[skip.inner]))
            m_hi = A.binop(A.binop(m_lo, "+", A.name(n.counts[skip.inner])), "-", A.const(1))
        else:  # a mapping's partition M -> (M1, M0): the loop has just set the tile's bounds
            lo, hi = n.bounds[skip.whole]
            m_lo, m_hi = A.name(lo), A.binop(A.name(hi), "-", A.const(1))
        b_lo, b_hi = self.band_range(skip)
        terms: list[ast.expr] = [ast.Compare(A.binop(m_lo, "-", b_hi), [ast.LtE()], [self.shape_expr(h)])
                                 for h in skip.highs]
        terms += [ast.Compare(A.binop(m_hi, "-", b_lo), [ast.GtE()], [self.shape_expr(lo)]) for lo in skip.lows]
        live = terms[0] if len(terms) == 1 else ast.BoolOp(ast.And(), terms)
        e.comment(f"a tile of {skip.whole} that the filter empties is skipped: it loads and computes nothing")
        if seen is None:  # a no-op step before any tile ran too: every dead tile is skipped
            e.open_if(ast.UnaryOp(ast.Not(), live))
            e.stmt(ast.Continue())
            e.close()
            return
        e.open_if(live)  # dead tiles before the first live one run (the step is no no-op at init)
        e.stmt(A.assign(A.name(seen), A.const(True)))
        e.close()
        e.open_if(ast.BoolOp(ast.And(), [ast.UnaryOp(ast.Not(), live), A.name(seen)]))
        e.stmt(ast.Continue())
        e.close()

    def band_range(self, skip: TileSkip) -> tuple[ast.expr, ast.expr]:
        """[lo, hi] (inclusive) of the band's other rank over the loops around the skipping loop."""
        n = self.names
        size = A.name(n.ranks[skip.other])
        p = self.mc.partitions.get(skip.other)
        levels = [self.mc.loop_of[lid] for lid in skip.enclosing if p is not None and self.mc.loop_of[lid] in p.names]
        if not levels:
            return A.const(0), A.binop(size, "-", A.const(1))
        level = max(levels, key=p.names.index)
        if level == p.names[-2]:
            lo, hi = n.bounds[skip.other]
            return A.name(lo), A.binop(A.name(hi), "-", A.const(1))
        start, span = self.level_start(skip.other, level)
        return start, A.binop(A.call("min", A.binop(start, "+", A.const(span)), size), "-", A.const(1))

    def shape_expr(self, expr) -> ast.expr:
        """A sympy bound in rank-shape symbols (`1 - W`) as Python over the executor's rank names."""
        import sympy as sp

        if expr.is_Integer:
            return A.const(int(expr))
        if expr.is_Symbol:
            return A.name(self.names.ranks[str(expr)])
        if isinstance(expr, (sp.Add, sp.Mul)):
            parts = [self.shape_expr(a) for a in expr.args]
            out = parts[0]
            for x in parts[1:]:
                out = A.binop(out, "+" if isinstance(expr, sp.Add) else "*", x)
            return out
        raise AssertionError(expr)

    def encloses(self, loop: Loop, rank: str) -> bool:
        """Does a loop over `rank` run outside `loop`?"""
        node = loop
        while isinstance(node, Loop):
            node = node.body[0]
        path = self.mc.paths[node.statement]
        return any(self.mc.loop_of[lid] == rank for lid in path[: path.index(loop.id)])


def _ceil_div(a: ast.expr, b: ast.expr) -> ast.expr:
    return A.binop(A.binop(A.binop(a, "+", b), "-", A.const(1)), "//", b)


def _safe_doc(text: str) -> str:
    """Spec-derived text placed in the module docstring: one line, no quote characters."""
    return "".join(ch for ch in text.replace("\n", " ") if ch.isprintable() and ch not in "\"'\\")
