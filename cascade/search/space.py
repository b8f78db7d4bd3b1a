"""What both searches share: mapping families, candidates and results, the families of a
cascade (`Space`: splits, loop orders, fusion groups, the placement rule), listed lazily and
counted without listing, tile-shape values (bounded work for any rank size), the
compulsory-traffic floor, and the deadline over a list of families.

The spatial search (`cascade.search.spatial`) scores a family's tile shapes as one lambdified
formula; the grid search (`cascade.search.grid`) reuses these families with a grid's placement.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import CascadeError
from ..mapping.accumulate import inner_loops
from ..mapping.mapping_file import Mapping, SpaceTime
from .budget import Progress


@dataclass(frozen=True)
class Family:
    levels: tuple[tuple[str, int], ...]  # (rank, number of split levels)
    order: tuple[str, ...]  # loop ranks, outermost first
    fusion: tuple[tuple[str, ...], ...]
    # keep every reduction's partial results on chip while a loop over its reduced rank runs
    # (`accumulate: {default: on-chip}`), also where the default would send a wider-than-a-tile
    # accumulator to DRAM; False leaves the mapping's default (cascade.mapping.accumulate)
    accumulate: bool = False


@dataclass(frozen=True)
class Candidate:
    objective: float
    latency_s: float
    dram_bytes: float
    footprint_bytes: float
    family: Family
    tiles: dict[str, tuple[int, ...]]  # rank -> tile shapes outermost first (as in uniform_shape)
    mapping: Mapping = field(repr=False)

    def describe(self) -> str:
        """`P:2048x256 / B1 H1 P2 P1 / fused`: tiles, loop order, fusion."""
        tiles = " ".join(f"{r}:{'x'.join(map(str, t))}" for r, t in self.tiles.items()) or "no splits"
        groups = self.family.fusion
        fusion = "fused" if len(groups) == 1 else ("unfused" if not groups else f"{len(groups)} groups")
        acc = " / accumulate on chip" if self.family.accumulate else ""
        return f"{tiles} / {' '.join(self.family.order)} / {fusion}{acc}"

    def to_json(self) -> dict[str, Any]:
        return {"objective": self.objective, "latency_s": self.latency_s, "dram_bytes": self.dram_bytes,
                "footprint_bytes": self.footprint_bytes,
                "partitioning": {r: list(t) for r, t in self.tiles.items()},
                "loop_order": list(self.family.order), "fusion": [list(g) for g in self.family.fusion],
                "accumulate": dict(self.mapping.accumulate)}


@dataclass(frozen=True)
class SearchResult:
    best: list[Candidate]
    families_scored: int
    families_total: int
    candidates_scored: int
    seconds: float
    compulsory_bytes: float
    objective: str
    families_pruned: int = 0  # skipped whole: their lower bound cannot enter the best
    complete: bool = False  # every family scored or pruned: the best is optimal within the model
    best_bound: float | None = None  # the lowest bound on the objective of what was left unvisited
    seconds_to_best: float | None = None  # when the final best was found (from the start of the call)

    def gap(self) -> float | None:
        """How far the best may be from the optimum, relative: 0 when proved, None when unknown."""
        if self.complete:
            return 0.0
        if not self.best or self.best_bound is None:
            return None
        return max(0.0, self.best[0].objective / self.best_bound - 1) if self.best_bound > 0 else None


def compulsory_bytes(spec, word_bytes: int) -> float:
    """Every input read once and every output written once."""
    from ..lang.shapes import tensor_shape

    total = 0
    for d in spec.cascade.inputs + spec.cascade.outputs:
        total += int(np.prod(tensor_shape(spec.semantics, d.name, spec.shapes)))
    return float(total * word_bytes)


DIVISOR_SEARCH = 100_000  # divisors are looked for up to this (and their cofactors): bounded work


@functools.lru_cache(maxsize=4096)
def tile_values(size: int, extra: int = 6) -> list[int]:
    """Tile shapes worth trying for a rank: every power of two below its size, the size itself,
    and up to `extra` other divisors (evenly spread), so that untidy shapes get exact tilings.
    Divisors are found by trial up to DIVISOR_SEARCH (with their cofactors), so a rank of any
    size costs bounded time."""
    values = {size}
    p = 1
    while p < size:
        values.add(p)
        p *= 2
    small = [d for d in range(1, min(math.isqrt(size), DIVISOR_SEARCH) + 1) if size % d == 0]
    others = sorted({d for d in small + [size // d for d in small]} - values)
    if len(others) > extra:
        idx = np.unique(np.linspace(0, len(others) - 1, extra).round().astype(int))
        others = [others[i] for i in idx]
    return sorted(values | set(others))


class Space:
    def __init__(self, spec, target, whole_up_to: int = 128):
        self.spec, self.target, self.whole_up_to = spec, target, whole_up_to
        self.sem = spec.semantics
        self.shapes = spec.shapes
        self.einsums = [s for s in self.sem.statements if not s.is_init]
        self.iterative = {t.iterative for t in self.sem.tensors.values() if t.iterative}
        self.split_parts = {p for parts in self.sem.splits.values() for p in parts}
        outputs = {d.name for d in self.sem.cascade.outputs}
        self.batch = [r for r in self._ranks() if self._is_batch(r, outputs)]
        self._placements: dict = {}  # split levels -> placement (it depends on nothing else)
        self.tile_grids: dict = {}  # split levels -> tile-shape grid (`cascade.search.order`)
        self.grid_sizes: dict = {}  # (rank, levels) -> its number of tile-shape options (the same)

    def _ranks(self) -> list[str]:
        seen: list[str] = []
        for s in self.einsums:
            for v in s.variables:
                r = v.upper()
                if r in self.split_parts:
                    r = next(w for w, parts in self.sem.splits.items() if r in parts)
                if r not in seen:
                    seen.append(r)
        return seen

    def _is_batch(self, rank: str, outputs: set[str]) -> bool:
        tensors = [d for d in self.sem.cascade.inputs + self.sem.cascade.outputs]
        return all(rank in d.ranks for d in tensors) and not any(
            rank.lower() in s.reduced for s in self.einsums)

    def level_options(self) -> list[tuple[str, tuple[int, ...]]]:
        out: list[tuple[str, tuple[int, ...]]] = []
        for r in self._ranks():
            if r in self.iterative or r in self.sem.fixed_splits():  # a fixed split is math, not a tiling
                continue
            if r in self.sem.splits:
                out.append((r, (1,)))  # the cascade's own split: the mapping sets its tile
            elif r in self.batch:
                out.append((r, (1,)))
            elif self.shapes[r] <= self.whole_up_to:
                continue
            else:
                out.append((r, (0, 1, 2) if self.shapes[r] > 1 else (0,)))
        return out

    def atoms(self) -> list[list[str]]:
        """Statements in evaluation order; a recurrence group is one atom."""
        atoms = []
        for step in self.sem.steps:
            names = [self.sem.statements[k].name for k in step.statements if not self.sem.statements[k].is_init]
            if names:
                atoms.append(names)
        return atoms

    def fusions(self) -> list[tuple[tuple[str, ...], ...]]:
        atoms = self.atoms()
        options = [tuple([tuple(n for a in atoms for n in a)])]  # everything fused
        for cut in range(1, len(atoms)):
            first = tuple(n for a in atoms[:cut] for n in a)
            rest = tuple(n for a in atoms[cut:] for n in a)
            options.append((first, rest))
        if len(atoms) > 1:
            options.append(())  # unfused: each Einsum its own group (one atom: the same as fused)
        return options

    def families(self) -> list[Family]:
        """Every family, in the order of `iter_families` (a list: only for small spaces)."""
        return list(self.iter_families())

    def iter_families(self, fusions=None, fusion_first: bool = True):
        """The families lazily: per fusion choice (all, or those given), those with the default
        accumulators first, then those keeping them on chip; per choice of split levels, per loop
        order (batch loops outermost; the levels of a rank outermost first). With `fusion_first`
        False the fusion choice varies fastest instead."""
        options = self.level_options()
        fusions = self.fusions() if fusions is None else fusions
        for outer in (fusions if fusion_first else [None]):
            for accumulate in (False, True):
                for choice in itertools.product(*[opts for _, opts in options]):
                    levels = tuple((r, n) for (r, _), n in zip(options, choice) if n)
                    if accumulate not in self.accumulate_options(levels):
                        continue
                    batch_loops, free = self._loops(levels)
                    for order in _interleavings(free):
                        for fusion in ([outer] if fusion_first else fusions):
                            yield Family(levels, tuple(batch_loops) + order, fusion, accumulate)

    def count_families(self, fusions=None) -> int:
        """How many families `iter_families` yields, without listing them."""
        options = self.level_options()
        per_fusion = 0
        for choice in itertools.product(*[opts for _, opts in options]):
            levels = tuple((r, n) for (r, _), n in zip(options, choice) if n)
            _, free = self._loops(levels)
            n = math.factorial(len(free))
            for k in Counter(x.rstrip("0123456789") for x in free).values():
                n //= math.factorial(k)
            per_fusion += n * len(self.accumulate_options(levels))
        return per_fusion * len(self.fusions() if fusions is None else fusions)

    def accumulate_options(self, levels) -> tuple[bool, ...]:
        """Whether a family may keep every reduction's partial results on chip (True) besides the
        mapping's default (False): (False, True) where a level's loop runs over a rank that some
        Einsum reduces (its partial sums would otherwise cross DRAM when the accumulator is wider
        than one tile), else (False,). A True family whose binding keeps no wider accumulator is
        the False one again; the search skips it (`distinct_accumulate`)."""
        reduced = self._reduced_loop_ranks
        return (False, True) if any(r in reduced for r, _ in levels) else (False,)

    @functools.cached_property
    def _reduced_loop_ranks(self) -> frozenset[str]:
        """Ranks (as `levels` names them) whose loops some Einsum reduces over: a partitioned rank
        an Einsum iterates but does not keep, or a cascade's own split whose outer part an Einsum
        iterates but does not keep."""
        out = set()
        for s in self.einsums:
            kept = set(self.sem.tensors[s.name].ranks)
            for v in s.variables:
                r = v.upper()
                if r in kept:
                    continue
                whole = next((w for w, parts in self.sem.splits.items() if r == parts[0]), None)
                if whole is not None:
                    out.add(whole)
                elif r not in self.split_parts:
                    out.add(r)
        return frozenset(out)

    def _loops(self, levels) -> tuple[list[str], list[str]]:
        loop_ranks = []
        for r, n in levels:
            if r in self.sem.splits:
                loop_ranks.append(self.sem.splits[r][0])
            else:
                loop_ranks.extend(f"{r}{n - j}" for j in range(n))
        batch_loops = [x for x in loop_ranks if x.rstrip("0123456789") in self.batch]
        return batch_loops, [x for x in loop_ranks if x not in batch_loops]

    def mapping(self, family: Family, tiles: dict[str, tuple[int, ...]]) -> Mapping:
        partitioning = {r: tiles[r] for r, _ in family.levels}
        spacetime, binding = self.placement(family)
        accumulate = {"default": "on-chip"} if family.accumulate else {}
        return Mapping(partitioning=partitioning, loop_order={"default": family.order},
                       spacetime=spacetime, fusion=family.fusion, binding=binding, accumulate=accumulate,
                       file="<search>")

    def placement(self, family: Family) -> tuple[dict[str, SpaceTime], dict[str, str]]:
        """Space ranks and unit per Einsum, by rule: the two largest ranks it iterates go on a 2D
        unit, the largest on a 1D unit (by the size of the rank a tile comes from; a whole rank
        wins a tie, its extent being known), and an Einsum goes to the first unit able to do its
        operations. It depends on the split levels alone (kept per levels)."""
        if family.levels not in self._placements:
            self._placements[family.levels] = self._placement(family)
        spacetime, binding = self._placements[family.levels]
        return dict(spacetime), dict(binding)

    def _placement(self, family: Family) -> tuple[dict[str, SpaceTime], dict[str, str]]:
        units = self.target.units
        by_dims = sorted(units, key=lambda u: -len(units[u].shape))
        split = {r: n for r, n in family.levels}
        spacetime, binding = {}, {}
        for s in self.einsums:
            ranks = []
            for v in s.variables:
                r = v.upper()
                if r in self.sem.splits or r in self.iterative or r in self.batch:
                    continue
                if r in self.split_parts:
                    if any(r == ps[1] for ps in self.sem.splits.values()):
                        whole = next(w for w, ps in self.sem.splits.items() if ps[1] == r)
                        ranks.append((self.shapes[whole], 0, r))
                    continue
                ranks.append((self.shapes[r], 0, f"{r}0") if split.get(r) else (self.shapes[r], 1, r))
            ranked = [name for *_, name in sorted(ranks, reverse=True)]
            wanted = 2 if len(ranked) >= 2 else 1
            capable = [u for u in by_dims if self._capable(s, u)] or list(by_dims)
            unit = next((u for u in capable if len(units[u].shape) == wanted), capable[0]) if capable else None
            if unit is None:
                spacetime[s.name] = SpaceTime(tuple(ranked[:2]), ())
                continue
            spacetime[s.name] = SpaceTime(tuple(ranked[: len(units[unit].shape)]), ())
            binding[s.name] = unit
        return spacetime, binding

    def _capable(self, info, unit: str) -> bool:
        from ..model.compute import point_ops

        try:
            kinds = point_ops(info.statement, info.reduce_op, bool(info.reduced), self.target)
        except CascadeError:
            return False
        return all(k in self.target.units[unit].ops for k in kinds)


def distinct_accumulate(mc) -> bool:
    """Whether a bound family with `accumulate` set differs from its default: some reduction keeps
    an accumulator wider than one tile (a loop over a rank its output keeps runs inside its
    reduced loop), which the default would send to DRAM."""
    return any(inner_loops(mc, k) for k in mc.accumulators)


def _interleavings(free: list[str]):
    """The orders of `free` in which each rank's levels stay outermost first, lazily, in the
    order `itertools.permutations(free)` would list them."""
    ranks = list(dict.fromkeys(x.rstrip("0123456789") for x in free))
    levels = {r: [x for x in free if x.rstrip("0123456789") == r] for r in ranks}
    used = dict.fromkeys(ranks, 0)
    order: list[str] = []

    def step():
        if len(order) == len(free):
            yield tuple(order)
            return
        for r in ranks:
            if used[r] < len(levels[r]):
                order.append(levels[r][used[r]])
                used[r] += 1
                yield from step()
                used[r] -= 1
                order.pop()

    return step()


def within_budget(families, deadline, progress: Callable | None, total: int):
    """The families in order while the deadline lasts, reporting progress."""
    for done, family in enumerate(families):
        if deadline.expired():
            return
        if progress:
            progress(Progress(done, total, None, None, deadline.elapsed()))
        yield family
