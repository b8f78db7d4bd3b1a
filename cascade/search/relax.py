"""Per-family lower bounds by relaxation (`relax_family`): for every tile-shape candidate of one
mapping family, its DRAM traffic, a lower bound on its latency and its on-chip footprint, as
NumPy arrays, without building the family's sympy formulas; and the test whether any candidate of
the family could still rank ahead of the search's k-th best (`could_enter`).

- traffic: the model's own count (`cascade.model.traffic`), run on numbers instead of symbols:
  the counter's arithmetic (products, ceilings, minima) is given NumPy's, and its symbols the
  candidates' tile shapes. It is the traffic the family's formula gives for each candidate.
  Should the count ever need an operation this does not provide, the relaxation is refused
  (None) and the family is scored unbounded.
- footprint: the model's own accounting (`cascade.model.symbolic.group_footprints`: on-chip
  tensors, shared by liveness on an `in_place` buffer, load tiles, on-chip accumulators, the
  largest group) run in NumPy's arithmetic; a candidate whose footprint exceeds the buffer is
  refused by the model, so it is no candidate.
- latency: per fusion group the larger of its compute and its traffic over the DRAM bandwidth,
  summed over the groups, as the model adds them; the compute is each unit's operations at
  their fewest (every point of the iteration space once) over its PEs at the occupancy the
  model gives the candidate's space ranks (`cascade.model.spatial`, replayed on numbers), the
  busiest unit's: at most the model's latency.

The candidates are the scorer's own (`order.tile_grid`), so the least of these bounds over the
candidates that fit is at most the family's best, on every key: that is what prunes the family.
The footprint and the occupancy (`symbolic.axis_folds`) are the model's own rules run in NumPy's
arithmetic; `tests/test_search_relax.py` checks traffic and footprint equal to the family's
formulas and the latency never above them. Searched mappings have no `pipeline` or `overlap` (the model's other
latency rules), so the groups' latencies add up as here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model.symbolic import Numbers, axis_folds, group_footprints
from ..model.traffic import _Counter  # the model's counting rules; run here on numbers
from .bounds import group_operations
from .ranking import TOL


class _Numbers:
    """The sympy functions the traffic count and the accumulator size use, on NumPy numbers."""
    Integer = staticmethod(float)
    ceiling = staticmethod(np.ceil)
    floor = staticmethod(np.floor)
    Mod = staticmethod(np.mod)
    Min = staticmethod(np.minimum)
    Max = staticmethod(np.maximum)

    @staticmethod
    def simplify(x):
        return x


class _NumericCount(_Counter):
    """The model's traffic counter with numbers for symbols: each name is a candidate array of
    the tile grid (or its fixed value)."""

    def __init__(self, mc, grid: dict):
        super().__init__(mc)
        self.sp = _Numbers
        self.grid = grid

    def sym(self, name: str, value: int):
        return self.grid[name] if name in self.grid else float(value)


@dataclass(frozen=True)
class Relaxation:
    """Per candidate (arrays of the grid's shape; inf where the candidate does not fit the
    buffer): traffic (bytes), latency lower bound (s), footprint (bytes); the family's loops and
    how many candidates fit."""

    dram_bytes: np.ndarray
    latency_s: np.ndarray
    footprint_bytes: np.ndarray
    loops: int
    fits: int

    def keys(self, objective: str) -> tuple[np.ndarray, np.ndarray]:
        if objective == "latency":
            return self.latency_s, self.dram_bytes
        if objective == "traffic":
            return self.dram_bytes, self.latency_s
        return self.dram_bytes, self.dram_bytes  # energy is scored on the traffic formula

    def order_key(self, objective: str) -> tuple[float, float, float, int]:
        """(least objective, least secondary among the candidates that reach it, least footprint
        among those, loops): the order families are visited in, so that the one winning the
        tie-breaks comes first. inf for a family none of whose candidates fits."""
        obj, sec = self.keys(objective)
        if not self.fits:
            return (np.inf, np.inf, np.inf, self.loops)
        least = obj.min()
        sec = np.where(obj <= least * (1 + TOL), sec, np.inf)
        s = sec.min()
        foot = np.where(sec <= s * (1 + TOL), self.footprint_bytes, np.inf).min()
        return (float(least), float(s), float(foot), self.loops)


def relax_family(mc, target, grid: dict) -> Relaxation | None:
    """The bounds of the module docstring for every candidate of `grid` (`order.tile_grid` of
    the family `mc` binds), or None when the count needs what the numbers do not provide."""
    shape = grid["_shape"]
    if mc.variants:  # groups with partitions of their own (cascade.mapping.variants): no bound, scored in full
        return None
    try:
        counter = _NumericCount(mc, grid)
        traffic = counter.traffic()
        footprint = _footprint(mc, counter, target.buffer_in_place) * target.word_bytes
        compute = _compute_s(mc, target, counter)
    except (AttributeError, TypeError, KeyError):
        return None
    footprint = np.broadcast_to(footprint, shape)
    fits = footprint <= target.buffer_bytes
    per_group: list = [0.0] * len(mc.groups)
    for (g, _, _), n in traffic.by_group.items():
        per_group[g] = per_group[g] + n
    dram: Any = 0.0
    latency: Any = 0.0
    for g, n in enumerate(per_group):
        moved = np.asarray(n, dtype=float) * target.word_bytes
        dram = dram + moved
        time_g = moved / target.dram_bandwidth if target.dram_bandwidth > 0 else 0.0
        latency = latency + np.maximum(compute[g], time_g)
    return Relaxation(np.where(fits, dram, np.inf), np.where(fits, latency, np.inf),
                      np.where(fits, footprint, np.inf), len(mc.mapping.loop_order.get("default", ())),
                      int(np.count_nonzero(fits)))


def _compute_s(mc, target, table) -> list:
    """Per fusion group, its compute time (s) at the occupancy the model gives each candidate
    (`cascade.model.spatial`: a space rank's points over its folds times the array axis), with
    the operations counted at their fewest (`bounds.group_operations`)."""
    from ..model.spatial import space_axes

    group_of = {k: gi for gi, g in enumerate(mc.groups) for k in g.statements}
    cycles: list[dict] = [{} for _ in mc.groups]
    for k, unit, ops in group_operations(mc, target):
        info = mc.semantics.statements[k]
        spec = target.units[unit]
        axes = space_axes(mc, info.name, info.variables)
        occ = 1.0 if axes else 1.0 / spec.pes
        for (rank, whole), n in zip(axes, spec.shape):
            points, folds = axis_folds(table, rank, whole, n, _Numbers)
            occ = occ * points / (folds * n)
        g = group_of[k]
        cycles[g][unit] = cycles[g].get(unit, 0.0) + ops / (spec.pes * occ)
    out = []
    for c in cycles:
        worst = 0.0
        for v in c.values():
            worst = np.maximum(worst, v)
        out.append(worst / target.clock_hz)
    return out


def _footprint(mc, table, in_place: bool):
    """`footprint_formula` (the model's own accounting, `group_footprints`) on the numbers of
    `table` (a `_NumericCount`): arrays with one candidate per element."""
    worst = group_footprints(mc, table, in_place, NUMPY_NUMBERS)
    out = 0.0
    for w in worst:
        out = np.maximum(out, w)
    return out


NUMPY_NUMBERS = Numbers(lambda: 1.0, lambda *a: functools.reduce(np.maximum, a), np.minimum)


def could_enter(relax: Relaxation, objective: str, incumbent) -> bool:
    """Whether some candidate could rank strictly ahead of `incumbent` (the k-th best so far) in
    the search's tolerant order (objective, secondary, footprint, loops), given that each of its
    keys is at least the relaxation's. Ties within the tolerance are counted as possible on
    every tolerant key; a tie on every key keeps the incumbent (it came first)."""
    obj, sec = relax.keys(objective)
    foot = relax.footprint_bytes
    inc_sec = incumbent.latency_s if objective == "traffic" else incumbent.dram_bytes
    loops_win = relax.loops < len(incumbent.family.order)
    ahead = np.zeros(obj.shape, dtype=bool) if not loops_win else _not_above(foot, incumbent.footprint_bytes)
    ahead |= _below(foot, incumbent.footprint_bytes)
    ahead = _below(sec, inc_sec) | (_not_above(sec, inc_sec) & ahead)
    ahead = _below(obj, incumbent.objective) | (_not_above(obj, incumbent.objective) & ahead)
    return bool(ahead.any())


MARGIN = 2 * TOL  # wider than the ranking's tolerance: a value this close might tie


def _below(x: np.ndarray, ref: float) -> np.ndarray:
    """Where a value at least x could be below ref by more than the tolerance."""
    return x < ref - TOL / 2 * abs(ref)


def _not_above(x: np.ndarray, ref: float) -> np.ndarray:
    """Where a value at least x could be at most ref, within the tolerance."""
    return x <= ref + MARGIN * abs(ref)
