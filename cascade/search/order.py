"""The order the spatial search visits the families of one fusion choice in (`visit_order`), and
their tile grids (`tile_grid`, `grid_size`).

Families are bounded cheapest first (fewest tile-shape candidates), each by its relaxation
(`cascade.search.relax`), a tier of families with as many candidates at a time (the first tier
always, the next ones while EAGER_POINTS candidates are not exceeded in all), until the deadline
passes; the bounded ones are visited first, best bound first by `Relaxation.order_key` (least
objective, then least secondary key and least footprint among the candidates reaching it, then
fewer loops), so that the family winning the tie-breaks comes before those it ties with; then
the rest, cheapest first, each relaxed when it is visited. A family of over RELAX_LIMIT
candidates is not relaxed: it is scored, unbounded. A fusion choice of more than
LIST_LIMIT families is visited lazily, in the order `Space.iter_families` lists it.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

import numpy as np

from ..errors import CascadeError
from .relax import Relaxation, relax_family
from .space import Family, Space, distinct_accumulate, tile_values

EAGER_POINTS = 2_000_000  # tile-shape candidates relaxed, at most, before the first family is scored
LIST_LIMIT = 20_000  # families of one fusion choice listed (and ordered) at once
RELAX_LIMIT = 2_000_000  # a family of more candidates is not relaxed (its arrays would be too large)


def visit_order(spec, space: Space, fusion, tgt, objective: str, deadline) -> Iterator[tuple[Family, Any]]:
    """(family, its Relaxation, or None when not computed yet, or False when refused) for every
    family of `fusion`, in the order of the module docstring."""
    if space.count_families([fusion]) > LIST_LIMIT:
        for family in space.iter_families([fusion]):
            yield family, None
        return
    families = list(space.iter_families([fusion]))
    sizes = [grid_size(spec, f, space.grid_sizes) for f in families]
    by_size = sorted(range(len(families)), key=lambda i: (sizes[i], i))
    eager: list[int] = []
    rest: list[int] = []
    for size, tier in itertools.groupby(by_size, key=lambda i: sizes[i]):
        members = list(tier)  # families of one grid size: bounded all or none
        if rest or (eager and sum(sizes[i] for i in eager) + size * len(members) > EAGER_POINTS):
            rest += members
        else:
            eager += members
    bounded: list[tuple[tuple, int, Family, Any]] = []
    for n, i in enumerate(eager):
        if deadline.expired():
            rest = eager[n:] + rest
            break
        relax = relax_of(spec, space, families[i], tgt)
        if relax is None:  # bound unknown: visit it first
            key: tuple = (-np.inf, -np.inf, -np.inf, len(families[i].order))
        elif relax is False:  # refused or a duplicate: nothing to score, costs nothing
            key = (-np.inf, -np.inf, -np.inf, -1)
        else:
            key = relax.order_key(objective)
        bounded.append((key, i, families[i], relax))
    bounded.sort(key=lambda b: (b[0], b[1]))
    for _, _, family, relax in bounded:
        yield family, relax
    for i in rest:
        yield families[i], None


def relax_of(spec, space: Space, family: Family, tgt) -> Relaxation | None | bool:
    """The family's relaxation; False when its binding is refused or it is the family without
    `accumulate` again (`distinct_accumulate`: the scorer skips it too); None when it cannot
    be relaxed (the count needs what `relax` does not provide, or it has over RELAX_LIMIT
    candidates)."""
    if grid_size(spec, family, space.grid_sizes) > RELAX_LIMIT:
        return None
    try:
        mc = spec.bind(space.mapping(family, probe_tiles(spec, family)))
    except CascadeError:
        return False
    if family.accumulate and not distinct_accumulate(mc):
        return False
    if family.levels not in space.tile_grids:
        space.tile_grids[family.levels] = tile_grid(spec, family)[0]
    return relax_family(mc, tgt, space.tile_grids[family.levels])


def probe_tiles(spec, family: Family) -> dict[str, tuple[int, ...]]:
    """Tile shapes to bind a family with before its tiles are chosen (the formulas are in
    symbols; these only make the binding legal)."""
    out = {}
    for rank, n in family.levels:
        inner = max(1, min(spec.shapes[rank], 2))
        out[rank] = (inner * 2, inner) if n == 2 else (inner,)
    return out


def _options(spec, rank: str, n: int) -> list[tuple[tuple[int, ...], dict[str, int]]]:
    size = spec.shapes[rank]
    if rank in spec.semantics.splits:
        inner = spec.semantics.splits[rank][1]
        return [((t,), {inner: t}) for t in tile_values(size)]
    if n == 1:
        return [((t,), {f"{rank}0": t}) for t in tile_values(size)]
    return [((t * k, t), {f"{rank}0": t, f"{rank}1": k})
            for t in tile_values(size, 2) for k in tile_values(max(1, -(-size // t)), 2) if k > 1]


def grid_size(spec, family: Family, cache: dict | None = None) -> int:
    """How many tile-shape candidates the family has (`cache`: counts per rank and levels)."""
    cache = {} if cache is None else cache
    n = 1
    for key in family.levels:
        if key not in cache:
            cache[key] = len(_options(spec, *key))
        n *= cache[key]
    return n


def tile_grid(spec, family: Family):
    """The tile-shape candidates of a family as broadcastable arrays keyed by symbol name (and
    `_shape`, the grid's shape), and the function from a grid index to the tiles per rank."""
    axes = [(rank, _options(spec, rank, n)) for rank, n in family.levels]
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
