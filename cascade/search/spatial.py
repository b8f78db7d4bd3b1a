"""Mapping search on spatial targets: enumerate legal mapping families of a cascade lazily,
visit them best lower bound first, prune by bound, score tile shapes vectorised.

A *family* fixes the structure of a mapping: which ranks are split and into how many levels,
the loop order, the fusion groups, and (by rule) the space ranks and the binding. Its cost is
one lambdified formula in the tile shapes (`cascade.model.symbolic`), so its tile-shape
candidates are scored with NumPy, in chunks so that the deadline is checked as they go, and
candidates whose on-chip footprint exceeds the buffer are dropped before ranking.

Branch and bound: every fusion choice gets a lower bound on the objective of all its families
(`cascade.search.bounds`), computed once before any family is scored; fusion choices are
visited lowest bound first, and the rest of a fusion choice is skipped as soon as its bound
cannot enter the best `top` (`cascade.search.ranking.cannot_enter`, ties within 1e-9 counted).
Within a fusion choice each family has its own bound, its relaxation (`cascade.search.relax`:
traffic, latency bound and footprint of every tile-shape candidate, without the formulas);
the families are visited best bound first, the tie-break winner first
(`cascade.search.order`), and one is skipped when none of its candidates fits the buffer or
could rank ahead of the `top`-th best. `prune` False keeps that order and scores every family.
When every family was scored or pruned the result is proved optimal within the model
(`complete`); when the deadline cut it short it says the lowest bound left (`best_bound`).
The deadline covers the whole call, set-up included; a family is started only while the time
left exceeds the longest one has taken so far (the first always starts).

Time to best (`seconds_to_best`, from the start of the call) is when the reported best was
found: a candidate tying the leader on every key (within the tolerance) leaves it in place and
does not count; one that ranks ahead of it, on the objective or on a tie-break, replaces it
and does.

Rules (stated, not searched): a rank shared by every input and output and never reduced (a
batch rank such as B or H) is a loop outermost (tile shape 1 or more); other ranks of
`whole_up_to` (128) or fewer elements stay whole; the innermost tiles of the two largest ranks an
Einsum keeps or reduces are its space ranks; an Einsum whose space has two ranks runs on a 2D
unit, one with a single space rank on a 1D unit, when the target has both and they can do its
operations.

Grid targets (`kind: grid`) are searched by `cascade.search.grid`, which reuses these families
(`cascade.search.space`); `cascade.search.dispatch` picks one by the target's kind.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..errors import CascadeError
from .bounds import Bound, family_bound
from .budget import Deadline, Progress
from .order import probe_tiles, relax_of, tile_grid, visit_order
from .ranking import cannot_enter, rank, tolerant_top
from .relax import could_enter
from .space import Candidate, Family, SearchResult, Space, compulsory_bytes, distinct_accumulate

CHUNK = 1 << 18  # tile-shape candidates evaluated at once (the deadline is checked between chunks)


def search_spatial(spec, tgt, objective: str, deadline: Deadline, top: int = 5,
                   progress: Callable[[Progress], None] | None = None, whole_up_to: int = 128,
                   prune: bool = True) -> SearchResult:
    """The best `top` mappings of `spec` on `tgt` for the objective (latency, traffic, energy)
    before `deadline`. Ranks of `whole_up_to` elements or fewer are never split. With `prune`
    False every family is scored (for checking that pruning never drops the optimum)."""
    space = Space(spec, tgt, whole_up_to)
    fusions = space.fusions()
    per_fusion = space.count_families([fusions[0]]) if fusions else 0
    total = per_fusion * len(fusions)
    classes: list[tuple[tuple[float, float], int, Any]] = []
    for i, fusion in enumerate(fusions):
        if deadline.expired():
            break
        bound = _bound(spec, space, fusion, tgt)
        classes.append(((bound.keys(objective) if bound else (0.0, 0.0)), i, fusion))
    bounded_all = len(classes) == len(fusions)
    classes.sort(key=lambda c: (c[0], c[1]))

    best: list[Candidate] = []
    scored = pruned = refused = candidates = 0
    longest, started = 0.0, 0  # the longest a family has taken so far; families started
    cut_at: float | None = None  # the bound of the first fusion choice left unfinished
    to_best: float | None = None  # when the current best was found

    def report(bound_now: float | None) -> None:
        if progress:
            progress(Progress(scored + pruned + refused, total, best[0].objective if best else None,
                              bound_now, deadline.elapsed()))

    for keys, _, fusion in classes:
        done = 0
        for family, relax in visit_order(spec, space, fusion, tgt, objective, deadline):
            full = len(best) == top
            if prune and full and cannot_enter(keys[0], keys[1], best[-1], objective):
                break
            if deadline.expired() or (started and not deadline.allows(longest)):
                cut_at = keys[0]
                break
            if prune and relax is None and full:
                relax = relax_of(spec, space, family, tgt)
            if relax is False:  # the binding refuses it, or the scorer would skip it as a duplicate
                done += 1
                refused += 1
                continue
            if prune and relax is not None and (
                    not relax.fits or (full and not could_enter(relax, objective, best[-1]))):
                done += 1  # no candidate fits, or none can enter the best
                pruned += 1
                continue
            began, started = time.perf_counter(), started + 1
            found, n, finished = _score(spec, space, family, tgt, objective, top, deadline)
            longest = max(longest, time.perf_counter() - began)
            candidates += n
            done += 1
            if found is None:
                refused += 1
            else:
                scored += finished
                leader = best[0] if best else None
                best = rank(best + found, objective, top)
                if best and best[0] is not leader:  # ahead of the leader, or winning a tie-break
                    to_best = deadline.elapsed()
            if not finished:
                cut_at = keys[0]
                break
            report(keys[0])
        if cut_at is not None:
            break
        pruned += per_fusion - done
    complete = cut_at is None and bounded_all
    best_bound = None if complete or not bounded_all else cut_at
    report(best_bound)
    return SearchResult(best, scored, total, candidates, deadline.elapsed(), compulsory_bytes(spec, tgt.word_bytes),
                        objective, pruned, complete, best_bound, to_best)


def _bound(spec, space: Space, fusion, tgt) -> Bound | None:
    """The lower bound of every family with this fusion, from its first family bound as a probe;
    None when the binding refuses the probe (the fusion is then visited without a bound)."""
    probe = next(space.iter_families([fusion]), None)
    if probe is None:
        return None
    try:
        mc = spec.bind(space.mapping(probe, probe_tiles(spec, probe)))
        return family_bound(mc, tgt)
    except CascadeError:
        return None


def _score(spec, space: Space, family: Family, tgt, objective: str, top: int, deadline: Deadline):
    """The best `top` candidates of one family, the number of tile shapes scored, and whether all
    were (the deadline may cut a large family short); (None, 0, True) if the binding refuses it.
    A family that sets `accumulate` but keeps no accumulator the default would not is skipped as
    a duplicate (None). The footprint is evaluated first: the cost formulas are built only for a family with a tile
    shape that fits the buffer, and evaluated only on those that fit."""
    import sympy as sp

    from ..model.symbolic import cost_formulas, footprint_formula
    from ..model.symbols import SymbolTable
    from ..model.tilesum import NUMPY as TILESUM_NUMPY

    try:
        mc = spec.bind(space.mapping(family, probe_tiles(spec, family)))
    except CascadeError:
        return None, 0, True
    if family.accumulate and not distinct_accumulate(mc):
        return None, 0, True  # the family without the key again
    table = SymbolTable(mc)
    footprint = footprint_formula(mc, table, tgt.buffer_in_place) * tgt.word_bytes
    foot_names = sorted(table.symbols)
    foot_fn = sp.lambdify([table.symbols[n] for n in foot_names], footprint, modules="numpy")
    grid, tiles_of = tile_grid(spec, family)
    shape = grid["_shape"]
    size = int(np.prod(shape, dtype=object))
    cost = None  # (names, function, values): built on the first chunk with a candidate that fits

    def values_at(names, values, flat):
        ix = np.unravel_index(flat, shape) if shape else ()
        return [grid[n].reshape(-1)[ix[int(np.argmax(grid[n].shape))]] if n in grid else
                np.full(flat.size, float(values.get(n, 0))) for n in names]

    found: list[Candidate] = []
    done = 0
    while done < size:
        if done and deadline.expired():
            return found, done, False
        flat = np.arange(done, min(size, done + CHUNK), dtype=np.int64)
        done += flat.size
        foot = np.broadcast_to(np.asarray(foot_fn(*values_at(foot_names, table.values, flat)), dtype=float),
                               flat.shape)
        fits = foot <= tgt.buffer_bytes
        if not fits.any():
            continue
        flat, foot = flat[fits], foot[fits]
        if cost is None:
            try:
                formulas = cost_formulas(mc, tgt)
            except CascadeError:
                return None, 0, True
            names = sorted(formulas.symbols)
            objective_expr = formulas.latency_s if objective == "latency" else formulas.dram_bytes
            fn = sp.lambdify([formulas.symbols[n] for n in names],
                             (objective_expr, formulas.latency_s, formulas.dram_bytes),
                             modules=[TILESUM_NUMPY, "numpy"])  # masked loads: TileSum (model.tilesum)
            cost = (names, fn, {**table.values, **formulas.values})
        names, fn, values = cost
        obj, lat, traffic = (np.broadcast_to(np.asarray(x, dtype=float), flat.shape)
                             for x in fn(*values_at(names, values, flat)))
        ok = np.nonzero(np.isfinite(obj))[0]
        secondary = lat if objective == "traffic" else traffic
        for j in tolerant_top([obj, secondary, foot], [True, True, True], ok, top):
            tiles = tiles_of(np.unravel_index(int(flat[j]), shape) if shape else ())
            found.append(Candidate(float(obj[j]), float(lat[j]), float(traffic[j]), float(foot[j]),
                                   family, tiles, space.mapping(family, tiles)))
        found = rank(found, objective, top)
    return found, done, True
