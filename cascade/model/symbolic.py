"""The whole spatial cost model as one sympy formula per quantity, and its lambdified form.

`cost_formulas(mc, target)` gives latency (s), DRAM bytes (and the reads among them), per-unit
cycles and per-unit operation counts (what energy charges) as sympy expressions in the rank and
tile shapes (the symbols of `SymbolTable`); `lambdify_cost` turns them into one NumPy function
that evaluates whole arrays of shapes at once, which is what a mapping search scores candidates
with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..mapping.schedule import MappedCascade
from .buffer_access import group_buffer_words
from .compute import statement_ops
from .pipeline import pipelined_cycles
from .spatial import space_axes
from .symbols import SymbolTable, variant_symbols
from .target import Target
from .traffic import accumulator_elements, dram_traffic


@dataclass(frozen=True)
class CostFormulas:
    latency_s: Any
    dram_bytes: Any
    unit_cycles: dict[str, Any]
    symbols: dict[str, Any]
    values: dict[str, int]
    dram_read_bytes: Any = 0  # the reads among dram_bytes (energy charges reads and writes apart)
    unit_ops: dict[str, dict[str, Any]] | None = None  # unit -> operation kind -> count, for energy
    buffer_words: tuple[Any, Any] | None = None  # words read from / written into the buffer (`buffer-reads`)


def cost_formulas(mc: MappedCascade, target: Target) -> CostFormulas:
    """The model's formulas. Where fusion groups partition ranks their own way
    (`cascade.mapping.variants`), each group's terms come from the binding that runs it, its own
    tile symbols renamed `<level>_<first Einsum of the group>` (`variant_symbols`), so that every
    symbol has one meaning."""
    import sympy as sp

    cycles: list[dict[str, Any]] = [{} for _ in mc.groups]
    einsum_cycles: list[dict[str, tuple[str, Any]]] = [{} for _ in mc.groups]
    axes_of: dict[str, list] = {}
    unit_cycles: dict[str, Any] = {}
    unit_ops: dict[str, dict[str, Any]] = {}
    bytes_by_group = [sp.Integer(0) for _ in mc.groups]
    read_bytes = sp.Integer(0)
    symbols: dict[str, Any] = {}
    values: dict[str, int] = {}
    piped_by: dict[int, Any] = {}
    words: tuple[Any, Any] | None = None  # buffer words read and written (the mapping's `buffer-reads`)
    for bound, owned in mc.bindings():
        if not owned:
            continue
        traffic = dram_traffic(bound)
        table = SymbolTable(bound)
        table.symbols.update(traffic.symbols)
        table.values.update(traffic.values)
        ops = statement_ops(bound, target, table)
        group_of = {k: gi for gi, g in enumerate(bound.groups) for k in g.statements}
        own_ops: dict[str, dict[str, Any]] = {}
        own_cycles: dict[str, Any] = {}
        for so in ops:
            gi = group_of[so.statement]
            if gi not in owned:
                continue
            for kind, n in so.ops.items():
                own_ops.setdefault(so.unit, {})
                own_ops[so.unit][kind] = own_ops[so.unit].get(kind, 0) + n
            info = bound.semantics.statements[so.statement]
            unit = target.units[so.unit]
            occ = sp.Integer(1)
            axes = space_axes(bound, so.name, info.variables)
            axes_of[so.name] = axes
            if not axes:  # nothing spatial: one PE (`spatial.occupancy`)
                occ = sp.Integer(1) / unit.pes
            for (rank, whole), n in zip(axes, unit.shape):
                points, folds = axis_folds(table, rank, whole, n)
                occ = occ * points / (folds * n)
            c = sum(so.ops.values()) / (unit.pes * occ)
            cycles[gi][so.unit] = cycles[gi].get(so.unit, 0) + c
            einsum_cycles[gi][so.name] = (so.unit, einsum_cycles[gi].get(so.name, (so.unit, 0))[1] + c)
            own_cycles[so.unit] = own_cycles.get(so.unit, 0) + c
        own_bytes = {gi: sp.Integer(0) for gi in owned}
        own_reads = sp.Integer(0)
        for (gi, _, direction), expr in traffic.by_group.items():
            if gi not in owned:
                continue
            own_bytes[gi] += expr * target.word_bytes
            if direction == "read":
                own_reads += expr * target.word_bytes
        if mc.mapping.pipeline:
            for gi in owned:
                piped_by[gi] = pipelined_cycles(bound, target, bound.groups[gi], einsum_cycles[gi], axes_of)
        rename, names = variant_symbols(mc, bound, table, owned)  # every symbol of the binding exists now

        def own(x: Any) -> Any:
            return sp.sympify(x).xreplace(rename) if rename else x

        for gi in owned:
            cycles[gi] = {u: own(c) for u, c in cycles[gi].items()}
            einsum_cycles[gi] = {e: (u, own(c)) for e, (u, c) in einsum_cycles[gi].items()}
            bytes_by_group[gi] = own(own_bytes[gi])
            if piped_by.get(gi):
                piped_by[gi] = (own(piped_by[gi][0]), piped_by[gi][1])
        read_bytes += own(own_reads)
        own_words = group_buffer_words(bound, table, ops, owned, traffic.by_group, target, axes_of)
        if own_words is not None:
            words = tuple(own(w) + (words[i] if words else 0) for i, w in enumerate(own_words))
        for u, c in own_cycles.items():
            unit_cycles[u] = unit_cycles.get(u, 0) + own(c)
        for u, kinds in own_ops.items():
            for kind, n in kinds.items():
                unit_ops.setdefault(u, {})
                unit_ops[u][kind] = unit_ops[u].get(kind, 0) + own(n)
        symbols.update({names.get(n, n): own(sym) for n, sym in table.symbols.items()})
        values.update({names.get(n, n): v for n, v in table.values.items()})
    latency = sp.Integer(0)
    for members in mc.overlap_sets():  # groups that run concurrently (the mapping's `overlap`): one max
        piped = piped_by.get(members[0]) if len(members) == 1 else None
        if piped:  # the mapping's phases (pipeline.py)
            compute = sp.sympify(piped[0]) / target.clock_hz
        else:
            units: dict[str, Any] = {}
            for gi in members:
                for u, c in cycles[gi].items():
                    units[u] = units.get(u, 0) + c
            compute = sp.Max(*units.values()) / target.clock_hz if units else sp.Integer(0)
        latency += sp.Max(compute, sum(bytes_by_group[gi] for gi in members) / target.dram_bandwidth)
    return CostFormulas(latency, sum(bytes_by_group), unit_cycles, symbols, values, read_bytes, unit_ops, words)


def axis_folds(table: SymbolTable, rank: str, whole: str | None, n: int, ar: Any = None) -> tuple[Any, Any]:
    """Points and folds of a space rank on an array axis of n PEs, as `spatial.occupancy` counts
    them: an extent e folds ceil(e/n) times; the innermost tile T of a rank R iterated whole
    (`whole`, see `spatial.space_axes`) folds floor(R/T) ceil(T/n) + ceil((R mod T)/n) times,
    the full tiles and the ragged last one. That equals `spatial.tile_folds` for several
    levels too, since each level's tile is a multiple of T (P1*P0 for P -> P2, P1, P0).
    `ar`: the arithmetic (ceiling, floor, Mod), sympy by default; the search's relaxation
    passes NumPy's."""
    if ar is None:
        import sympy as ar

    if whole is None:
        e = table.size(rank)
        return e, ar.ceiling(e / n)
    size, tile = table.size(whole), table.size(rank)
    return size, ar.floor(size / tile) * ar.ceiling(tile / n) + ar.ceiling(ar.Mod(size, tile) / n)


def lambdify_cost(formulas: CostFormulas) -> tuple[Callable[..., tuple], list[str]]:
    """A NumPy function f(*values) -> (latency_s, dram_bytes) over the symbols, in the order of
    the returned names; arguments may be arrays (one candidate per element)."""
    import sympy as sp

    from .tilesum import NUMPY as TILESUM_NUMPY

    names = sorted(formulas.symbols)
    args = [formulas.symbols[n] for n in names]
    fn = sp.lambdify(args, (formulas.latency_s, formulas.dram_bytes), modules=[TILESUM_NUMPY, "numpy"])
    return fn, names


def footprint_formula(mc: MappedCascade, table: SymbolTable, in_place: bool = False) -> Any:
    """The largest on-chip footprint of a fusion group, in elements, as a formula in the tile
    shapes (the same accounting as `spill.group_footprints`, on-chip accumulators included;
    `in_place`: the target's `buffer.in_place`, intermediates sharing storage by liveness)."""
    import sympy as sp

    num = Numbers(lambda: sp.Integer(1), lambda *a: sp.Max(*a) if len(a) > 1 else a[0], sp.Min)
    if not mc.variants:
        worst = group_footprints(mc, table, in_place, num)
        return num.max(*worst) if worst else sp.Integer(0)
    worst = []
    for bound, owned in mc.bindings():  # each group from its own binding, its own tiles renamed (cost_formulas)
        if not owned:
            continue
        own_table = table if bound is mc else SymbolTable(bound)
        sizes = group_footprints(bound, own_table, in_place, num, owned)
        rename, names = variant_symbols(mc, bound, own_table, owned)
        worst += [sp.sympify(n).xreplace(rename) for n in sizes]
        if own_table is not table:  # the caller's table gets the group's own symbols, renamed
            for n, sym in own_table.symbols.items():
                table.symbols.setdefault(names.get(n, n), sym.xreplace(rename))
                table.values.setdefault(names.get(n, n), own_table.values[n])
    return num.max(*worst) if worst else sp.Integer(0)


@dataclass(frozen=True)
class Numbers:
    """The arithmetic `group_footprints` runs in: sympy formulas, or NumPy arrays with one
    candidate per element (the search's relaxation, `cascade.search.relax`)."""

    one: Callable[[], Any]
    max: Callable[..., Any]
    min: Callable[[Any, Any], Any]


def group_footprints(mc: MappedCascade, table: Any, in_place: bool, num: Numbers,
                     only: tuple[int, ...] | None = None) -> list[Any]:
    """Per fusion group (those of `only`, where given), its largest on-chip footprint in elements:
    the intermediates it keeps (summed per live step over storage classes, which share by
    liveness where `in_place`), its loads (times the mapping's `multiple-buffering` copies) and
    its on-chip accumulators, in the arithmetic `num` over the sizes `table` gives."""
    from .sharing import storage_classes

    worst = []
    for gi, group in enumerate(mc.groups):
        if only is not None and gi not in only:
            continue
        names = list(dict.fromkeys(mc.semantics.statements[k].name for k in group.statements))
        kept = tuple(t for t in names if not mc.storage[t].dram)
        sizes = {}
        for t in kept:
            st = mc.storage[t]
            parts = dict(st.parts)
            n = num.one() * (2 if "ring" in st.axes else 1)
            for rank, kind in zip(mc.semantics.tensors[t].ranks, st.axes):
                n = n * _axis_size(mc, table, rank, kind, num, parts.get(rank))
            sizes[t] = n
        steps = []
        for live in storage_classes(mc, group, kept, in_place):
            step = num.one() * 0
            for cls in live:
                step = step + num.max(*(sizes[t] for t in cls))
            steps.append(step)
        total = num.max(*steps) if steps else num.one() * 0
        for load in mc.loads:
            if load.statements[0] not in group.statements:
                continue
            widen = dict(load.widen)
            loops = {mc.loop_of[lid] for lid in load.path}
            n = num.one()
            for axis in load.axes:
                if axis.kind in ("const", "last", "inner"):
                    continue
                rank = axis.rank
                if axis.kind == "split":
                    n = n * table.size(mc.semantics.splits[rank][1])
                elif rank in widen:
                    n = n * _axis_size(mc, table, rank, "part", num, widen[rank])
                elif rank in mc.partitions:
                    n = n * _axis_size(mc, table, rank, "tile", num)
                elif rank not in loops:
                    n = n * table.size(rank)
            total = total + n * mc.mapping.multiple_buffering
        for k in group.statements:
            if mc.accumulators.get(k) == "on-chip":
                total = total + accumulator_elements(mc, table, k)
        worst.append(total)
    return worst


def _axis_size(mc: MappedCascade, table: Any, rank: str, kind: str, num: Numbers, level: str | None = None):
    if kind in ("point", "ring"):
        return num.one()
    if rank in mc.partitions:
        p = mc.partitions[rank]
        if kind == "tile":
            return num.min(table.size(p.names[-1]), table.size(rank))
        if kind == "part" and level is not None and level in p.names:
            return num.min(table.span(rank, p.names.index(level)), table.size(rank))
    return table.size(rank)
