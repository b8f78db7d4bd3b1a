"""The spatial-accelerator model: traffic, compute cycles per unit, latency, utilisation.

Per fusion group: each unit's cycles are its operations over its PEs times the occupancy of
the array by the statement's space ranks (see `space_axes`: a space rank of extent e on an
array axis of n PEs fills e / (ceil(e/n) n) of it; the innermost tile of a split rank is
charged tile by tile, so a ragged last tile costs only its own folds); the group takes
max(slowest unit, DRAM bytes / bandwidth) (compute and memory overlap inside a group, FuseMax's
pipeline rule), or where the mapping gives a `pipeline`, its phases' sum (`pipeline.py`) in
place of the slowest unit; groups run one after another, except the sets a mapping's `overlap`
names, which run concurrently: a set takes max(each unit's cycles summed over it, its DRAM bytes /
bandwidth), as the FuseMax artifact costs FLAT (Flat.eval). Every count is a sympy expression in the shapes;
numbers come from substituting them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..mapping.schedule import MappedCascade
from .compute import statement_ops
from .target import Target
from .area import area_breakdown
from .buffer_access import group_buffer_words
from .energy import energy_breakdown, energy_formula, total_joules
from .pipeline import pipelined_cycles
from .spill import plan_spills, spill_lines, with_spills
from .traffic import dram_traffic


@dataclass(frozen=True)
class CostReport:
    cascade: str
    target: str
    shapes: dict[str, int]
    dram_read_bytes: float
    dram_write_bytes: float
    latency_s: float
    bound: str
    per_tensor: dict[str, dict[str, float]]
    per_unit: dict[str, dict[str, Any]]
    groups: list[dict[str, Any]]
    symbolic: dict[str, str] = field(default_factory=dict)
    on_chip_bytes: float = 0.0
    energy_j: float | None = None  # when the target gives per-access energies
    extra: dict[str, Any] = field(default_factory=dict)  # target-specific detail (e.g. per-core figures)
    placement: list[dict[str, Any]] = field(default_factory=list)  # per Einsum: unit, space ranks, occupancy

    @property
    def dram_bytes(self) -> float:
        return self.dram_read_bytes + self.dram_write_bytes

    @property
    def utilization(self) -> dict[str, float]:
        return {u: d["utilization"] for u, d in self.per_unit.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "cascade": self.cascade, "target": self.target, "shapes": self.shapes,
            "dram_bytes": self.dram_bytes, "dram_read_bytes": self.dram_read_bytes,
            "dram_write_bytes": self.dram_write_bytes, "latency_s": self.latency_s, "bound": self.bound,
            "utilization": self.utilization, "on_chip_bytes": self.on_chip_bytes, "energy_j": self.energy_j,
            "per_tensor": self.per_tensor, "per_unit": self.per_unit, "groups": self.groups,
            **({"symbolic": self.symbolic} if self.symbolic else {}),
            **({"extra": self.extra} if self.extra else {}),
            **({"placement": self.placement} if self.placement else {}),
        }


def space_axes(mc: MappedCascade, name: str, variables: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """The space ranks a statement iterates, in the order the mapping lists them, each paired
    with the rank it tiles, or None.

    The pair names a rank when the space rank is the innermost tile of a rank the statement
    iterates whole: P0 of the mapping's partition P -> P1, P0 (or P -> P2, P1, P0), or M0 of
    the cascade's `split M = M1 * M0` in a statement over both m1 and m0. The array then
    processes that rank tile by tile, and its occupancy along the axis is counted per tile
    (`tile_folds`). Any other space rank (unsplit, an outer level, or M0 in a statement over m0
    alone) occupies the array with its extent."""
    iterated = set()
    for v in variables:
        r = v.upper()
        iterated.add(r)
        if r in mc.partitions:
            iterated.update(mc.partitions[r].names)
    # innermost tile -> (the rank it tiles, the rank whose iteration makes that rank whole)
    tiling = {p.names[-1]: (rank, rank) for rank, p in mc.partitions.items()}
    tiling.update({inner: (rank, outer) for rank, (outer, inner) in mc.semantics.splits.items()})
    out: list[tuple[str, str | None]] = []
    for r in mc.mapping.spacetime_for(name).space:
        if r in iterated:
            whole, witness = tiling.get(r, (None, None))
            out.append((r, whole if witness in iterated else None))
    return out


def tile_shapes(mc: MappedCascade, rank: str) -> tuple[int, ...]:
    """The tile shapes a split rank is cut into, outermost first: (32768, 256) for
    P: [uniform_shape(32768), uniform_shape(256)]; (M0,) for the cascade's split of M."""
    if rank in mc.partitions:
        return mc.partitions[rank].spans[:-1]
    return (mc.shapes[mc.semantics.splits[rank][1]],)


def tile_extents(size: int, tiles: tuple[int, ...]) -> Counter:
    """How many innermost tiles of each extent cutting `size` elements by `tiles` (outermost
    first) gives: each tile of a level is cut into tiles of the next, and the last tile of every
    cut may be ragged. tile_extents(300, (256,)) = {256: 1, 44: 1}."""
    pieces = Counter({size: 1})
    for t in tiles:
        cut: Counter = Counter()
        for extent, count in pieces.items():
            if extent // t:
                cut[t] += count * (extent // t)
            if extent % t:
                cut[extent % t] += count
        pieces = cut
    return pieces


def tile_folds(size: int, tiles: tuple[int, ...], n: int) -> int:
    """Folds of a rank of `size` elements, processed one innermost tile after another, onto an
    array axis of n PEs: the sum over its tiles of ceil(tile extent / n). For one level of tile
    T that is floor(size/T) ceil(T/n) + ceil((size mod T)/n); with several levels, each dividing
    the one above (as mappings require), the same, T being the innermost tile."""
    return sum(count * -(-extent // n) for extent, count in tile_extents(size, tiles).items())


def occupancy(mc: MappedCascade, axes: list[tuple[str, str | None]], shape: tuple[int, ...]) -> float:
    """The fraction of the array a statement's space ranks keep busy: the product over array
    axes of points / (folds x n), for n PEs along the axis. An unsplit space rank of extent e
    has e points in ceil(e/n) folds; the innermost tile of a rank R iterated whole has R points
    in `tile_folds` folds (ceil(T/n) per full tile of T, ceil(r/n) for a ragged tile of r).
    Array axes beyond the space ranks count as full (as FuseMax's artifact charges a statement
    over fewer ranks than the array has axes). A statement with no space rank at all (the
    default: nothing spatial) runs on one PE: `pes` gives its occupancy 1/pes. The per-tile count
    is exact when the tiles pass through the array one after another (the rank's outer levels in
    time); with an outer level of the same rank on another axis too, the axes' factors still
    multiply, an average."""
    if not axes:
        return 1.0 / math.prod(shape)
    occ = 1.0
    for (rank, whole), n in zip(axes, shape):
        if whole is None:
            points, folds = mc.shapes[rank], -(-mc.shapes[rank] // n)
        else:
            points, folds = mc.shapes[whole], tile_folds(mc.shapes[whole], tile_shapes(mc, whole), n)
        occ *= points / (folds * n)
    return occ


def estimate_spatial(mc: MappedCascade, target: Target, symbolic: bool = False) -> CostReport:
    word = target.word_bytes
    group_cycles: list[dict[str, float]] = [dict() for _ in mc.groups]
    einsum_cycles: list[dict[str, tuple[str, float]]] = [dict() for _ in mc.groups]
    axes_of: dict[str, list] = {}
    per_unit: dict[str, dict[str, Any]] = {u: {"ops": {}, "cycles": 0.0} for u in target.units}
    placement: list[dict[str, Any]] = []
    group_bytes = [0.0 for _ in mc.groups]
    per_tensor: dict[str, dict[str, float]] = {}
    spills: list = []
    on_chip = 0.0
    piped_by: dict[int, Any] = {}
    own_traffic: dict[str, list] = {}  # with per-group partitions: per tensor, reads and writes (symbolic)
    own_ops: list = []
    words: tuple[float, float] | None = None  # buffer words read and written, where the mapping lists them
    words_formula: tuple[Any, Any] | None = None
    import sympy

    from .symbols import SymbolTable, variant_symbols

    # each fusion group is costed from the binding that runs it (one, unless groups partition
    # ranks their own way: cascade.mapping.variants); between groups everything is in DRAM
    for bound, owned in mc.bindings():
        if not owned:
            continue
        part, most = plan_spills(bound, target, owned)
        spills += part
        on_chip = max(on_chip, most)
        traffic = with_spills(dram_traffic(bound), bound, part)
        table = SymbolTable(bound)
        table.symbols.update(traffic.symbols)
        table.values.update(traffic.values)
        ops = statement_ops(bound, target, table)
        subs = table.substitutions()
        group_of = {k: gi for gi, g in enumerate(bound.groups) for k in g.statements}
        for so in ops:
            gi = group_of[so.statement]
            if gi not in owned:
                continue
            info = bound.semantics.statements[so.statement]
            unit = target.units[so.unit]
            axes = space_axes(bound, so.name, info.variables)
            occ = occupancy(bound, axes, unit.shape)
            placement.append({"einsum": so.name, "unit": so.unit, "space": [r for r, _ in axes], "occupancy": occ,
                              **({"accumulator": bound.accumulators[so.statement]}
                                 if so.statement in bound.accumulators else {})})
            n_ops = {kind: float(expr.subs(subs)) if hasattr(expr, "subs") else float(expr)  # a rankless Einsum
                     for kind, expr in so.ops.items()}
            cycles = sum(n_ops.values()) / (unit.pes * occ)
            group_cycles[gi][so.unit] = group_cycles[gi].get(so.unit, 0.0) + cycles
            einsum_cycles[gi][so.name] = (so.unit, einsum_cycles[gi].get(so.name, (so.unit, 0.0))[1] + cycles)
            axes_of[so.name] = axes
            entry = per_unit[so.unit]
            entry["cycles"] += cycles
            for kind, n in n_ops.items():
                entry["ops"][kind] = entry["ops"].get(kind, 0.0) + n
        for (gi, tensor, direction), expr in traffic.by_group.items():
            if gi not in owned:
                continue
            n = float(expr.subs(subs)) * word
            group_bytes[gi] += n
            entry = per_tensor.setdefault(tensor, {"read_bytes": 0.0, "write_bytes": 0.0})
            entry[f"{direction}_bytes"] += n
        own_words = group_buffer_words(bound, table, ops, owned, traffic.by_group, target, axes_of)
        # with per-group partitions, formulas are in each group's own tile symbols, renamed once
        # every symbol of this binding exists (symbols.variant_symbols)
        rename = variant_symbols(mc, bound, table, owned)[0] if symbolic and mc.variants else {}
        if own_words is not None:  # the mapping's `buffer-reads` (buffer_access.py)
            numbers = tuple(float(sympy.sympify(w).subs(table.substitutions())) for w in own_words)  # its new sizes too
            words = numbers if words is None else tuple(a + b for a, b in zip(words, numbers))
            if symbolic:
                own_formula = tuple(sympy.sympify(w).xreplace(rename) for w in own_words)
                words_formula = own_formula if words_formula is None else tuple(
                    a + b for a, b in zip(words_formula, own_formula))
        if mc.mapping.pipeline:
            piped_by.update({gi: pipelined_cycles(bound, target, bound.groups[gi], einsum_cycles[gi], axes_of)
                             for gi in owned})
        if symbolic and mc.variants:
            _own_formulas(rename, owned, traffic, ops, group_of, own_traffic, own_ops)
    order = [g.name for g in mc.groups]
    spills.sort(key=lambda sp: order.index(sp.group))
    placement.sort(key=lambda row: [s.name for s in mc.semantics.statements if not s.is_init].index(row["einsum"]))
    groups = []
    latency = 0.0
    memory_time = compute_time = 0.0
    piped_by = {gi: pipelined_cycles(mc, target, group, einsum_cycles[gi], axes_of)
                for gi, group in enumerate(mc.groups)} if mc.mapping.pipeline else {}

    def group_cycles_of(gi: int) -> float:  # the mapping's phases where it gives them, else the slowest unit
        piped = piped_by.get(gi)
        return piped[0] if piped else max(group_cycles[gi].values(), default=0.0)

    for members in mc.overlap_sets():  # groups that run concurrently: one max over their sums
        if len(members) == 1:
            compute_s = group_cycles_of(members[0]) / target.clock_hz
        else:
            units: dict[str, float] = {}
            for gi in members:
                for u, c in group_cycles[gi].items():
                    units[u] = units.get(u, 0.0) + c
            compute_s = max(units.values(), default=0.0) / target.clock_hz
        memory_s = sum(group_bytes[gi] for gi in members) / target.dram_bandwidth
        latency += max(compute_s, memory_s)
        memory_time += memory_s if memory_s >= compute_s else 0.0
        compute_time += compute_s if compute_s > memory_s else 0.0
    for gi, group in enumerate(mc.groups):
        compute_s = group_cycles_of(gi) / target.clock_hz
        memory_s = group_bytes[gi] / target.dram_bandwidth
        piped = piped_by.get(gi)
        groups.append({"group": group.name, "compute_s": compute_s, "memory_s": memory_s,
                       "latency_s": max(compute_s, memory_s), "dram_bytes": group_bytes[gi],
                       "bound": "memory" if memory_s > compute_s else "compute",
                       "unit_cycles": group_cycles[gi], **({"phases": piped[1]} if piped else {})})
    cycles_total = latency * target.clock_hz
    for u, entry in per_unit.items():
        entry["utilization"] = entry["cycles"] / cycles_total if cycles_total else 0.0
    reads = sum(t["read_bytes"] for t in per_tensor.values())
    writes = sum(t["write_bytes"] for t in per_tensor.values())
    sym = {}
    if symbolic and mc.variants:
        from .traffic import TensorTraffic, Traffic

        traffic = Traffic({t: TensorTraffic(t, r, w) for t, (r, w) in own_traffic.items()}, {}, {}, {})
        ops = own_ops
    if symbolic:
        for t, tt in traffic.per_tensor.items():
            sym[f"{t}.reads"] = str(tt.reads)
            sym[f"{t}.writes"] = str(tt.writes)
        for so in ops:
            for kind, expr in so.ops.items():
                sym[f"{so.name}.{kind}"] = str(expr)
    extra: dict[str, Any] = {"spills": spill_lines(spills, per_tensor)} if spills else {}
    streamed = sorted({t for s in spills for t in s.streamed_tensors})
    if streamed:
        extra["streamed"] = streamed  # loaded tiles not kept on chip: re-read at each use
    if target.area:
        extra["area_um2"] = area_breakdown(target.area, {u: unit.pes for u, unit in target.units.items()})
    breakdown = energy_breakdown(target, reads, writes, {u: d["ops"] for u, d in per_unit.items()}, cycles_total,
                                 words)
    if breakdown:
        extra["energy_pj"] = breakdown
        if symbolic:
            sym["energy_pj"] = energy_formula(target, traffic, ops, word, words_formula)
    return CostReport(mc.semantics.cascade.name, target.name, dict(mc.shapes), reads, writes, latency,
                      "memory" if memory_time > compute_time else "compute", per_tensor, per_unit, groups, sym,
                      on_chip, total_joules(breakdown) if breakdown else None, extra, placement=placement)


def _own_formulas(rename: dict, owned: tuple[int, ...], traffic: Any, ops: list, group_of: dict[int, int],
                  own_traffic: dict[str, list], own_ops: list) -> None:
    """Add the formulas of the groups `owned` (their binding's `traffic` and `ops`), their own tile
    symbols renamed by `rename`, to the per-tensor traffic and the statements' operations of a
    mapping with per-group partitions."""
    from dataclasses import replace

    import sympy as sp

    def own(x: Any) -> Any:
        return sp.sympify(x).xreplace(rename)

    for (gi, tensor, direction), expr in traffic.by_group.items():
        if gi in owned:
            entry = own_traffic.setdefault(tensor, [sp.Integer(0), sp.Integer(0)])
            entry[0 if direction == "read" else 1] += own(expr)
    own_ops += [replace(so, points=own(so.points), ops={k: own(n) for k, n in so.ops.items()})
                for so in ops if group_of[so.statement] in owned]
