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

Grid targets (`kind: grid`) are searched by `cascade.search.grid`, which reuses these families
(`cascade.search.space`); `cascade.search.dispatch` picks one by the target's kind.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..errors import CascadeError
from .space import Candidate, Family, SearchResult, Space, compulsory_bytes, tile_values, within_budget


def search_spatial(spec, tgt, objective: str = "latency", budget_s: float = 60.0, top: int = 5,
           progress: Callable[[int, int], None] | None = None, whole_up_to: int = 128) -> SearchResult:
    """The best `top` mappings of `spec` on `target` for the objective (latency, traffic, energy).
    Ranks of `whole_up_to` elements or fewer are never split."""
    import sympy as sp

    from ..model.symbolic import cost_formulas, footprint_formula
    from ..model.symbols import SymbolTable

    space = Space(spec, tgt, whole_up_to)
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
