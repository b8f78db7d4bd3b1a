"""Mapping search: enumerate legal mapping families of a cascade, score tile shapes vectorised.

A *family* fixes the structure of a mapping: which ranks are split and into how many levels,
the loop order, the fusion groups, and (by rule) the space ranks and the binding. Its cost is
one lambdified formula in the tile shapes (`cascade.model.symbolic`), so every tile-shape
candidate of a family is scored at once with NumPy, and candidates whose on-chip footprint
exceeds the buffer are pruned before ranking. Families are enumerated in a fixed order until
the budget runs out; the result says how many were scored.

Rules (stated, not searched): a rank shared by every input and output and never reduced (a
batch rank such as B or H) is a loop outermost (tile shape 1 or more); other ranks of
`whole_up_to` (128) or fewer elements stay whole; the innermost tiles of the two largest ranks an
Einsum keeps or reduces are its space ranks; an Einsum whose space has two ranks runs on a 2D
unit, one with a single space rank on a 1D unit, when the target has both and they can do its
operations.

Grid targets (`kind: grid`) are searched by `cascade.search_grid`, which reuses these families.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import CascadeError
from .mapping import Mapping, SpaceTime


@dataclass(frozen=True)
class Family:
    levels: tuple[tuple[str, int], ...]  # (rank, number of split levels)
    order: tuple[str, ...]  # loop ranks, outermost first
    fusion: tuple[tuple[str, ...], ...]


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
        return f"{tiles} / {' '.join(self.family.order)} / {fusion}"

    def to_json(self) -> dict[str, Any]:
        return {"objective": self.objective, "latency_s": self.latency_s, "dram_bytes": self.dram_bytes,
                "footprint_bytes": self.footprint_bytes,
                "partitioning": {r: list(t) for r, t in self.tiles.items()},
                "loop_order": list(self.family.order), "fusion": [list(g) for g in self.family.fusion]}


@dataclass(frozen=True)
class SearchResult:
    best: list[Candidate]
    families_scored: int
    families_total: int
    candidates_scored: int
    seconds: float
    compulsory_bytes: float
    objective: str


def compulsory_bytes(spec, word_bytes: int) -> float:
    """Every input read once and every output written once."""
    from .shapes import tensor_shape

    total = 0
    for d in spec.cascade.inputs + spec.cascade.outputs:
        total += int(np.prod(tensor_shape(spec.semantics, d.name, spec.shapes)))
    return float(total * word_bytes)


def tile_values(size: int, extra: int = 6) -> list[int]:
    """Tile shapes worth trying for a rank: every power of two below its size, the size itself,
    and up to `extra` other divisors (evenly spread), so that untidy shapes get exact tilings."""
    values = {size}
    p = 1
    while p < size:
        values.add(p)
        p *= 2
    small = [d for d in range(1, int(size ** 0.5) + 1) if size % d == 0]
    others = sorted({d for d in small + [size // d for d in small]} - values)
    if len(others) > extra:
        idx = np.unique(np.linspace(0, len(others) - 1, extra).round().astype(int))
        others = [others[i] for i in idx]
    return sorted(values | set(others))


class _Space:
    def __init__(self, spec, target, whole_up_to: int = 128):
        self.spec, self.target, self.whole_up_to = spec, target, whole_up_to
        self.sem = spec.semantics
        self.shapes = spec.shapes
        self.einsums = [s for s in self.sem.statements if not s.is_init]
        self.iterative = {t.iterative for t in self.sem.tensors.values() if t.iterative}
        self.split_parts = {p for parts in self.sem.splits.values() for p in parts}
        outputs = {d.name for d in self.sem.cascade.outputs}
        self.batch = [r for r in self._ranks() if self._is_batch(r, outputs)]

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
            if r in self.iterative:
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
        options.append(())  # unfused: each Einsum its own group
        return options

    def families(self) -> list[Family]:
        out = []
        options = self.level_options()
        for choice in itertools.product(*[opts for _, opts in options]):
            levels = tuple((r, n) for (r, _), n in zip(options, choice) if n)
            loop_ranks = []
            for r, n in levels:
                if r in self.sem.splits:
                    loop_ranks.append(self.sem.splits[r][0])
                else:
                    loop_ranks.extend(f"{r}{n - j}" for j in range(n))
            batch_loops = [x for x in loop_ranks if x.rstrip("0123456789") in self.batch]
            free = [x for x in loop_ranks if x not in batch_loops]
            for order in itertools.permutations(free):
                if not self._levels_nest(order):
                    continue
                for fusion in self.fusions():
                    out.append(Family(levels, tuple(batch_loops) + order, fusion))
        return out

    def _levels_nest(self, order: tuple[str, ...]) -> bool:
        by_rank: dict[str, list[int]] = {}
        for name in order:
            base = name.rstrip("0123456789")
            by_rank.setdefault(base, []).append(int(name[len(base):] or 0))
        return all(levels == sorted(levels, reverse=True) for levels in by_rank.values())

    def mapping(self, family: Family, tiles: dict[str, tuple[int, ...]]) -> Mapping:
        partitioning = {r: tiles[r] for r, _ in family.levels}
        spacetime, binding = self.placement(family)
        return Mapping(partitioning=partitioning, loop_order={"default": family.order},
                       spacetime=spacetime, fusion=family.fusion, binding=binding, file="<search>")

    def placement(self, family: Family) -> tuple[dict[str, SpaceTime], dict[str, str]]:
        """Space ranks and unit per Einsum, by rule: the two largest ranks it iterates go on a 2D
        unit, the largest on a 1D unit (by the size of the rank a tile comes from; a whole rank
        wins a tie, its extent being known), and an Einsum goes to the first unit able to do its
        operations."""
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
        from .model.compute import point_ops

        try:
            kinds = point_ops(info.statement, info.reduce_op, bool(info.reduced), self.target)
        except CascadeError:
            return False
        return all(k in self.target.units[unit].ops for k in kinds)


def search(spec, target, objective: str = "latency", budget_s: float = 60.0, top: int = 5,
           progress: Callable[[int, int], None] | None = None, whole_up_to: int = 128) -> SearchResult:
    """The best `top` mappings of `spec` on `target` for the objective (latency, traffic, energy).
    Ranks of `whole_up_to` elements or fewer are never split."""
    import sympy as sp

    from .model.symbolic import cost_formulas, footprint_formula
    from .model.symbols import SymbolTable
    from .target import Target, load_target

    if objective not in ("latency", "traffic", "energy"):
        raise CascadeError(f"--objective {objective}: choose latency, traffic or energy")
    tgt = target if isinstance(target, Target) else load_target(target)
    if objective == "energy" and not tgt.energy:
        raise CascadeError(f"--objective energy: target {tgt.name} gives no per-access energies")
    if tgt.kind == "grid":
        from .search_grid import search_grid

        return search_grid(spec, tgt, objective, budget_s, top, progress, whole_up_to)
    if tgt.kind != "spatial":
        raise CascadeError(f"search supports spatial and grid targets; {tgt.name} is a {tgt.kind} target")
    space = _Space(spec, tgt, whole_up_to)
    families = space.families()
    start = time.perf_counter()
    best: list[Candidate] = []
    scored = candidates = 0
    for family in within_budget(families, start, budget_s, progress):
        probe = {r: _probe_tiles(spec.shapes[r], n) for r, n in family.levels}
        try:
            mc = spec.bind(space.mapping(family, probe))
            formulas = cost_formulas(mc, tgt)
        except CascadeError:
            continue
        table = SymbolTable(mc)
        table.symbols.update(formulas.symbols)
        table.values.update(formulas.values)
        footprint = footprint_formula(mc, table) * tgt.word_bytes
        names = sorted(set(formulas.symbols) | set(table.symbols))
        args = [table.symbols.get(n, formulas.symbols.get(n)) for n in names]
        objective_expr = formulas.latency_s if objective == "latency" else formulas.dram_bytes
        fn = sp.lambdify(args, (objective_expr, formulas.latency_s, formulas.dram_bytes, footprint), modules="numpy")
        grid, tiles_of = _grid(spec, family, table.values)
        values = [np.broadcast_to(np.asarray(grid.get(n, table.values.get(n, 0)), dtype=float), grid["_shape"])
                  for n in names]
        obj, lat, traffic, foot = (np.broadcast_to(np.asarray(x, dtype=float), grid["_shape"]) for x in fn(*values))
        feasible = foot <= tgt.buffer_bytes
        scored += 1
        candidates += int(np.prod(grid["_shape"]))
        if not feasible.any():
            continue
        masked = np.where(feasible, obj, np.inf)
        # ties on the objective go to the other of latency and traffic, then to a smaller footprint
        secondary = lat if objective == "traffic" else traffic
        order = np.lexsort((foot.ravel(), secondary.ravel(), masked.ravel()))
        for flat in order[:top]:
            idx = np.unravel_index(flat, masked.shape)
            if not np.isfinite(masked[idx]):
                break
            tiles = tiles_of(idx)
            best.append(Candidate(float(obj[idx]), float(lat[idx]), float(traffic[idx]), float(foot[idx]),
                                  family, tiles, space.mapping(family, tiles)))
        best.sort(key=lambda c: (c.objective, c.dram_bytes if objective != "traffic" else c.latency_s,
                                 c.footprint_bytes))
        del best[top:]
    return SearchResult(best, scored, len(families), candidates, time.perf_counter() - start,
                        compulsory_bytes(spec, tgt.word_bytes), objective)


def within_budget(families: list, start: float, budget_s: float,
                  progress: Callable[[int, int], None] | None):
    """The families in order while `budget_s` seconds since `start` last, reporting progress."""
    for done, family in enumerate(families):
        if time.perf_counter() - start > budget_s:
            return
        if progress:
            progress(done, len(families))
        yield family


def _probe_tiles(size: int, levels: int) -> tuple[int, ...]:
    inner = max(1, min(size, 2))
    return (inner * 2, inner) if levels == 2 else (inner,)


def _grid(spec, family: Family, values: dict[str, int]):
    """The tile-shape candidates of a family as broadcastable arrays keyed by symbol name."""
    axes: list[tuple[str, list[tuple[tuple[int, ...], dict[str, int]]]]] = []
    for rank, n in family.levels:
        size = spec.shapes[rank]
        options: list[tuple[tuple[int, ...], dict[str, int]]] = []
        if rank in spec.semantics.splits:
            inner = spec.semantics.splits[rank][1]
            for t in tile_values(size):
                options.append(((t,), {inner: t}))
        elif n == 1:
            for t in tile_values(size):
                options.append(((t,), {f"{rank}0": t}))
        else:
            for t in tile_values(size, 2):
                for k in tile_values(max(1, -(-size // t)), 2):
                    if k > 1:
                        options.append(((t * k, t), {f"{rank}0": t, f"{rank}1": k}))
        axes.append((rank, options))
    shape = tuple(len(opts) for _, opts in axes)
    grid: dict[str, Any] = {"_shape": shape}
    for i, (rank, opts) in enumerate(axes):
        names = sorted({k for _, syms in opts for k in syms})
        for name in names:
            arr = np.array([syms.get(name, 1) for _, syms in opts], dtype=float)
            view = [1] * len(shape)
            view[i] = len(opts)
            grid[name] = arr.reshape(view)

    def tiles_of(idx) -> dict[str, tuple[int, ...]]:
        return {rank: opts[idx[i]][0] for i, (rank, opts) in enumerate(axes)}

    return grid, tiles_of
