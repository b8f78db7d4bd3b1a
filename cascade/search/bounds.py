"""Lower bounds on a mapping family's cost, computed once per fusion choice and before any of
its tile shapes are scored, for the search's branch and bound (`family_bound`).

Within the model (`cascade.model.symbolic`), for any splits, loop order and tile shapes:
- traffic: each fusion group reads every DRAM tensor it reads but does not write (an input, or
  an intermediate made by another group) at least once over the region its widest access
  names, and writes every tensor read outside it (or a cascade output) at least once over its
  write's region. A region counts a rank's full size for a plain index, a split read of the whole
  rank (K[e, m1, m0]) or its outer part, or both parts of a split; 1 for a part of a split alone, an iterative rank, a
  constant or last index (a tile may be the whole rank, so those can be 1). With everything
  fused this is the compulsory floor; a cut adds the intermediates that cross it.
- latency: per group, the larger of its compute at full occupancy (the operations of each
  unit's statements over its PEs, at the clock: occupancy is at most 1) and its traffic bound
  over the DRAM bandwidth; the groups run one after another, so the bounds add up.
Both hold for every family with that fusion, whatever its splits, order and tiles, because the
model's reload factors and fold counts are at least 1 and the unit each Einsum runs on is fixed
by the placement rule. `tests/test_search_prune.py` checks them against scored families.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lang.semantics import AxisCoord


@dataclass(frozen=True)
class Bound:
    dram_bytes: float
    latency_s: float

    def keys(self, objective: str) -> tuple[float, float]:
        """(objective bound, secondary-key bound) for the ranking of `cascade.search.ranking`."""
        if objective == "latency":
            return self.latency_s, self.dram_bytes
        if objective == "traffic":
            return self.dram_bytes, self.latency_s
        return self.dram_bytes, self.dram_bytes  # energy is scored on the traffic formula


def region_lower_bound(axes: tuple[AxisCoord, ...], sem, shapes: dict[str, int]) -> int:
    """The fewest elements an access over `axes` moves in the model, summed over its loops."""
    whole_of = {p: w for w, parts in sem.splits.items() for p in parts}
    iterative = {t.iterative for t in sem.tensors.values() if t.iterative}
    families: set[str] = set()
    named = {a.rank for a in axes if a.kind == "var"}
    for whole, parts in sem.splits.items():
        if set(parts) <= named:  # both parts indexed: M1 * M0 >= M points
            families.add(whole)
    for a in axes:
        if a.kind == "split":
            families.add(whole_of.get(a.rank, a.rank))
        elif a.kind == "outer":
            families.add(whole_of.get(a.rank, a.rank))
        elif a.kind == "var" and a.rank not in whole_of and a.rank not in iterative:
            families.add(a.rank)
    n = 1
    for f in families:
        n *= int(shapes[f])
    return n


def _points_lower_bound(variables: tuple[str, ...], sem, shapes: dict[str, int]) -> int:
    ranks = {v.upper() for v in variables}
    n = 1
    for whole, (outer, inner) in sem.splits.items():
        if outer in ranks and inner in ranks:
            n *= int(shapes[whole])
            ranks -= {outer, inner}
    parts = {p for ps in sem.splits.values() for p in ps}
    iterative = {t.iterative for t in sem.tensors.values() if t.iterative}
    for r in ranks:
        if r not in parts and r not in iterative:
            n *= int(shapes[r])
    return n


def family_bound(mc, target) -> Bound:
    """Lower bounds on DRAM bytes and latency for every family with the fusion of `mc` (a probe of
    that fusion, bound by `Spec.bind`), by the rules of the module docstring."""
    sem, shapes = mc.semantics, mc.shapes
    group_of = {k: gi for gi, g in enumerate(mc.groups) for k in g.statements}
    writers: dict[str, set[int]] = {}
    for k, info in enumerate(sem.statements):
        writers.setdefault(info.name, set()).add(group_of.get(k, -1))
    outputs = {d.name for d in sem.cascade.outputs}
    read_outside: set[str] = set()
    reads: dict[tuple[int, str], int] = {}  # (group, tensor) -> widest region read
    for k, info in enumerate(sem.statements):
        if info.is_init:
            continue
        g = group_of[k]
        for acc in info.reads:
            t = acc.access.tensor
            if g in writers.get(t, set()):
                continue  # made in this group: it may stay on chip
            read_outside.add(t)
            reads[(g, t)] = max(reads.get((g, t), 0), region_lower_bound(acc.axes, sem, shapes))
    elements = [0] * len(mc.groups)
    for (g, _), n in reads.items():
        elements[g] += n
    for k, info in enumerate(sem.statements):
        if not info.is_init and (info.name in outputs or info.name in read_outside):
            elements[group_of[k]] += region_lower_bound(info.write.axes, sem, shapes)
    compute = group_compute_s(mc, target)
    latency = 0.0
    for g in range(len(mc.groups)):
        moved = elements[g] * target.word_bytes / target.dram_bandwidth if target.dram_bandwidth > 0 else 0.0
        latency += max(compute[g], moved)
    return Bound(float(sum(elements) * target.word_bytes), latency)


def group_operations(mc, target) -> list[tuple[int, str, float]]:
    """(statement, unit, fewest operations) per Einsum of `mc`: its operations per point times
    the points of its iteration space, on the unit the mapping binds it to (else the first able)."""
    from ..model.compute import point_ops

    sem, shapes = mc.semantics, mc.shapes
    out = []
    for k, info in enumerate(sem.statements):
        if info.is_init:
            continue
        per_point = point_ops(info.statement, info.reduce_op, bool(info.reduced), target)
        unit = mc.mapping.unit_for(info.name) or next(
            (u for u, spec in target.units.items() if all(kind in spec.ops for kind in per_point)),
            next(iter(target.units)))
        out.append((k, unit, sum(per_point.values()) * _points_lower_bound(info.variables, sem, shapes)))
    return out


def group_compute_s(mc, target) -> list[float]:
    """Per fusion group of `mc`, its compute time at full occupancy (s): the operations of each
    unit's statements over its PEs at the clock, the busiest unit's."""
    group_of = {k: gi for gi, g in enumerate(mc.groups) for k in g.statements}
    cycles: list[dict[str, float]] = [{} for _ in mc.groups]
    for k, unit, ops in group_operations(mc, target):
        g = group_of[k]
        cycles[g][unit] = cycles[g].get(unit, 0.0) + ops / target.units[unit].pes
    return [max(c.values(), default=0.0) / target.clock_hz for c in cycles]
