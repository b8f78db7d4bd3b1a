"""Mapping search on grid targets (`kind: grid`, e.g. Tenstorrent Grayskull): the grid's mapping
families, its placement rule, its tile-shape candidates, and scoring them one at a time.

The families are the spatial search's (`cascade.search.space.Space`: splits, loop orders, fusion
groups), each taken with one or with two space ranks per Einsum. The grid model
(`cascade.model.grayskull`) is numeric, not a formula, so every candidate is costed with
`Spec.estimate`; one it refuses (a group whose L1 per core overflows) is pruned. Families are
scored in a fixed order, fewer programs first, then splits of one level before those of two, until
the budget runs out; for latency, a family whose programs' dispatch alone exceeds the `top`-th
best is skipped (every candidate of it would be slower).

Rules (stated, not searched):
- space: a grid spreads loop ranks over its cores, so an Einsum puts in space the outer level of
  split ranks it iterates (P1, M1; M2 of a rank split twice; the outer part of the cascade's own
  split; never an iterative rank): of those, the one or two (the family says which) of largest
  rank size, a tie going to the outer loop. Two are listed in loop order, so the model spreads the
  outer along grid rows and the inner along grid columns; one is spread over all compute cores.
- binding: a contraction (a sum of products) runs on the capable unit with the fewest operations
  (Grayskull's matrix unit), every other Einsum on the capable unit with the most (its vector
  unit), as the bundled Grayskull mappings bind them.
- a rank split twice has its outer level in space, with the smallest outer tile that fits its
  grid dimension (filling it); its middle level runs in time.

Candidates, restricted so that scores_softmax at n = 1024..4096 is searched whole in 2 to 40 s:
the tile shapes of `tile_values`, only multiples of the grid's tile edge (32) for a rank that is
one of the last two of an input or output (the ranks a tile covers) and whose size is a multiple
of it; every outer level has at least two iterations; a space level has at most as many as its
grid dimension (rows, columns, or all compute cores), so no core runs a folded remainder.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import CascadeError, InternalError
from ..mapping.mapping_file import SpaceTime
from .budget import Deadline, Progress
from .ranking import rank
from .space import Candidate, Family, SearchResult, Space, compulsory_bytes, tile_values, within_budget


@dataclass(frozen=True)
class GridFamily(Family):
    width: int = 2  # space ranks per Einsum, at most


@dataclass(frozen=True)
class GridCandidate(Candidate):
    def space(self) -> list[str]:
        out: list[str] = []
        for st in self.mapping.spacetime.values():
            out.extend(r for r in st.space if r not in out)
        return out

    def describe(self) -> str:
        """`P:128 M:128 / P1 M1 / fused / space P1 M1`: tiles, loop order, fusion, space ranks."""
        return f"{super().describe()} / space {' '.join(self.space()) or 'none'}"

    def to_json(self) -> dict[str, Any]:
        return dict(super().to_json(), space=self.space(), l1_bytes_per_core=self.footprint_bytes)


class GridSpace(Space):
    def __init__(self, spec, target, whole_up_to: int = 128):
        from ..model.grayskull import grid_of

        super().__init__(spec, target, whole_up_to)
        self.grid = grid_of(target)
        declared = self.sem.cascade.inputs + self.sem.cascade.outputs
        self.tiled = {r for d in declared for r in d.ranks[-2:]}  # the ranks a core's 32x32 tiles cover

    def families(self, deadline=None) -> list[GridFamily]:  # type: ignore[override]
        """The spatial search's families with one or two space ranks, less those with a rank split
        twice whose outer level is not in space or with no tile candidates; fewer programs first,
        then fewer split levels. Listing stops when `deadline` (if any) expires."""
        out = []
        for family in self.iter_families(fusion_first=False):
            if deadline is not None and deadline.expired():
                break
            widths = (2, 1) if max((len(self.outer_levels(s, family)) for s in self.einsums), default=0) > 1 else (2,)
            for width in widths:
                grid_family = GridFamily(family.levels, family.order, family.fusion, width=width)
                space = self.space_ranks(grid_family)
                twice = {r for r, n in family.levels if n == 2}
                has_tiles = all(opts for _, opts in self.tile_options(grid_family))
                if has_tiles and twice <= {self.rank_of(r) for r in space}:
                    out.append(grid_family)
        return sorted(out, key=lambda f: (self.programs(f), max((n for _, n in f.levels), default=0)))

    def accumulate_options(self, levels) -> tuple[bool, ...]:
        """Only the default: the grid model keeps a core's partial results where its mapping's
        default puts them (GridFamily does not carry the choice)."""
        return (False,)

    def programs(self, family: Family) -> int:
        return len(family.fusion) or len(self.einsums)

    def rank_of(self, loop: str) -> str:
        for rank, (outer, _) in self.sem.splits.items():
            if loop == outer:
                return rank
        return loop.rstrip("0123456789")

    def outer_levels(self, info, family: Family) -> list[str]:
        """The outer level of every split rank an Einsum iterates, largest rank first (ties: outer loop)."""
        split = dict(family.levels)
        found: list[str] = []
        for v in info.variables:
            r = v.upper()
            if r in self.split_parts:
                r = next(w for w, parts in self.sem.splits.items() if r in parts)
            if r in self.iterative or not split.get(r):
                continue
            loop = self.sem.splits[r][0] if r in self.sem.splits else f"{r}{split[r]}"
            if loop in family.order and loop not in found:
                found.append(loop)
        return sorted(found, key=lambda x: (-self.shapes[self.rank_of(x)], family.order.index(x)))

    def space_of(self, info, family: GridFamily) -> tuple[str, ...]:
        chosen = self.outer_levels(info, family)[: family.width]
        return tuple(sorted(chosen, key=family.order.index))

    def space_ranks(self, family: GridFamily) -> list[str]:
        out: list[str] = []
        for s in self.einsums:
            out.extend(r for r in self.space_of(s, family) if r not in out)
        return out

    def placement(self, family: Family) -> tuple[dict[str, SpaceTime], dict[str, str]]:
        if not isinstance(family, GridFamily):
            raise InternalError(f"grid placement of a family without a space width: {family}")
        units = self.target.units
        spacetime, binding = {}, {}
        for s in self.einsums:
            spacetime[s.name] = SpaceTime(self.space_of(s, family), ())
            capable = [u for u in units if self._capable(s, u)] or list(units)
            fewest = self._contraction(s)
            binding[s.name] = min(capable, key=lambda u: len(units[u].ops) * (1 if fewest else -1))
        return spacetime, binding

    def _contraction(self, info) -> bool:
        from ..model.compute import point_ops

        try:
            ops = point_ops(info.statement, info.reduce_op, bool(info.reduced), self.target)
        except CascadeError:
            return False
        return bool(info.reduced) and info.reduce_op == "sum" and dict(ops) == {"mac": 1}

    def bounds(self, family: GridFamily) -> dict[str, int]:
        """The most iterations each space level may have: its grid dimension."""
        space = self.space_ranks(family)
        g = self.grid
        if len(space) == 1:
            return {space[0]: g.cores}
        return dict(zip(space, g.compute))

    def tile_options(self, family: GridFamily) -> list[tuple[str, list[tuple[int, ...]]]]:
        """Per split rank, the tile shapes (outermost first, as in uniform_shape) to try."""
        bounds = self.bounds(family)
        edge = self.grid.tile[0]
        axes: list[tuple[str, list[tuple[int, ...]]]] = []
        for rank, n in family.levels:
            size = self.shapes[rank]
            loop = self.sem.splits[rank][0] if rank in self.sem.splits else f"{rank}{n}"
            bound = bounds.get(loop, size)
            values = tile_values(size)
            if size % edge == 0 and rank in self.tiled:
                values = [t for t in values if t % edge == 0]
            values = [t for t in values if t < size]  # an outer level iterates at least twice
            fits = [t for t in values if -(-size // t) <= bound]
            if n == 1:
                axes.append((rank, [(t,) for t in fits]))
            else:
                outer = fits[:1]  # fill the grid dimension
                axes.append((rank, [(o, t) for o in outer for t in values if t < o and o % t == 0]))
        return axes


def search_grid(spec, target, objective: str, deadline: Deadline, top: int = 5,
                progress: Callable[[Progress], None] | None = None, whole_up_to: int = 128) -> SearchResult:
    """The best `top` mappings of `spec` on a grid target for latency or traffic, before `deadline`."""
    if objective not in ("latency", "traffic"):
        raise CascadeError(f"--objective {objective}: the grid model of {target.name} gives latency and traffic; "
                           "choose one of them")
    space = GridSpace(spec, target, whole_up_to)
    families = space.families(deadline)
    listed = not deadline.expired()
    best: list[GridCandidate] = []
    scored = candidates = 0
    for family in within_budget(families, deadline, progress, len(families)):
        axes = space.tile_options(family)
        first = next(itertools.product(*[opts for _, opts in axes]), None)
        if first is None:
            continue
        floor = space.programs(family) * space.grid.dispatch_s  # every program pays its dispatch
        if objective == "latency" and len(best) == top and floor > best[-1].objective:
            scored += 1  # none of its candidates can enter the best
            continue
        try:  # a family the binding refuses is not scored
            spec.bind(space.mapping(family, dict(zip([r for r, _ in axes], first))))
        except CascadeError:
            continue
        complete = True
        for combo in itertools.product(*[opts for _, opts in axes]):
            if deadline.expired():
                complete = False
                break
            tiles = dict(zip([r for r, _ in axes], combo))
            mapping = space.mapping(family, tiles)
            candidates += 1
            try:
                report = spec.estimate(mapping, target)
            except CascadeError:  # the L1 of a core overflows
                continue
            value = report.latency_s if objective == "latency" else report.dram_bytes
            best.append(GridCandidate(value, report.latency_s, report.dram_bytes,
                                      float(report.extra["l1_bytes_per_core"]), family, tiles, mapping))
        scored += complete
        # ties (within 1e-9) on the objective go to the other of latency and traffic, then to less L1
        best = rank(best, objective, top)
    done = listed and scored == len(families)
    return SearchResult(list(best), scored, len(families), candidates, deadline.elapsed(),
                        compulsory_bytes(spec, target.word_bytes), objective, complete=done)

