"""Per-family bounds by relaxation (`cascade.search.relax`) and the visiting order they give
(`cascade.search.order`): the relaxation's traffic and footprint are the family's own formulas
(lambdified by sympy, as the scorer does) at every candidate that fits, its latency never above
them; pruning by it never drops the optimum on GEMM spaces (pruning on vs off); and on GEMM
1024^3 the family winning every tie-break is visited first, so one family is scored."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascade
from cascade.model.symbolic import cost_formulas, footprint_formula
from cascade.model.symbols import SymbolTable
from cascade.model.target import load_target
from cascade.search import search
from cascade.search.order import probe_tiles, tile_grid
from cascade.search.ranking import close
from cascade.search.relax import relax_family
from cascade.search.space import Space
from test_search_prune import TINY, _load, small_cascades

ROOT = Path(__file__).resolve().parent.parent
MATMUL = ROOT / "specs" / "matmul.einsum"
PEER = ROOT / "specs" / "targets" / "peer_256.yaml"


def _formulas_at_grid(mc, target, grid):
    """Latency, DRAM bytes and footprint (bytes) of every grid candidate, from sympy's formulas."""
    import sympy as sp

    table = SymbolTable(mc)
    foot = footprint_formula(mc, table, target.buffer_in_place) * target.word_bytes
    fo = cost_formulas(mc, target)
    syms = {**table.symbols, **fo.symbols}
    values = {**table.values, **fo.values}
    names = sorted(syms)
    fn = sp.lambdify([syms[n] for n in names], (fo.latency_s, fo.dram_bytes, foot), modules="numpy")
    shape = grid["_shape"]
    args = [np.broadcast_to(grid[n], shape) if n in grid else np.full(shape, float(values[n])) for n in names]
    return [np.broadcast_to(np.asarray(x, dtype=float), shape) for x in fn(*args)]


def _check_relaxation(spec, target, families):
    space = Space(spec, target, 8 if target is TINY else 128)
    checked = 0
    for family in families(space):
        try:
            mc = spec.bind(space.mapping(family, probe_tiles(spec, family)))
        except cascade.CascadeError:
            continue
        grid, _ = tile_grid(spec, family)
        relax = relax_family(mc, target, grid)
        assert relax is not None, family
        latency, dram, foot = _formulas_at_grid(mc, target, grid)
        fits = foot <= target.buffer_bytes
        assert relax.fits == np.count_nonzero(fits)
        np.testing.assert_allclose(relax.footprint_bytes[fits], foot[fits], rtol=1e-12)
        np.testing.assert_allclose(relax.dram_bytes[fits], dram[fits], rtol=1e-12)
        assert np.all(relax.latency_s[fits] <= latency[fits] * (1 + 1e-12)), family
        for key in (relax.footprint_bytes, relax.dram_bytes, relax.latency_s):  # no candidate where none fits
            assert np.all(np.isinf(key[~fits]))
        checked += 1
    assert checked


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=small_cascades())
def test_relaxation_is_the_formulas_on_random_cascades(tmp_path_factory, text):
    spec = _load(tmp_path_factory, text)
    _check_relaxation(spec, TINY, lambda space: [
        f for fusion in space.fusions() for f in itertools.islice(space.iter_families([fusion]), 3)])


def test_relaxation_is_the_formulas_on_gemm_1024_and_exact_in_latency():
    """One family per choice of split levels (the first loop order of each), on peer_256:
    traffic and footprint equal, and latency too (a GEMM's operations are its points)."""
    spec = cascade.load(MATMUL, dict(M=1024, K=1024, N=1024))
    target = load_target(PEER)

    def one_per_levels(space):
        seen = {}
        for f in space.iter_families():
            seen.setdefault((f.levels, f.accumulate), f)
        return [f for (levels, _), f in seen.items() if sum(n for _, n in levels) <= 4]
    _check_relaxation(spec, target, one_per_levels)


def test_relaxation_is_the_formulas_on_an_in_place_buffer():
    """flat_cloud shares storage by liveness (`buffer: {in_place: true}`): the relaxation's
    footprint is the model's, sharing included, so pruning by it stays exact there too."""
    spec = cascade.load(ROOT / "specs" / "attention" / "mha_3pass.einsum", dict(B=1, H=2, M=512, P=512))
    target = load_target(ROOT / "specs" / "targets" / "flat_cloud.yaml")
    assert target.buffer_in_place

    def fused_first(space):
        fusions = sorted(space.fusions(), key=len)[:3]  # the fewest groups: the most sharing
        return [f for fusion in fusions for f in itertools.islice(space.iter_families([fusion]), 2)]
    _check_relaxation(spec, target, fused_first)


@st.composite
def gemm_shapes(draw):
    """Two ranks split (9 to 14), one kept whole (2 to 8), which one drawn."""
    whole = draw(st.sampled_from("MKN"))
    return {r: draw(st.integers(2, 8) if r == whole else st.integers(9, 14)) for r in "MKN"}


@settings(max_examples=3, deadline=None)
@given(shapes=gemm_shapes(), objective=st.sampled_from(["latency", "traffic"]))
def test_pruning_never_drops_the_optimum_on_gemm(shapes, objective):
    spec = cascade.load(MATMUL, shapes)
    on = search(spec, TINY, objective, budget_s=600, top=2, whole_up_to=8)
    off = search(spec, TINY, objective, budget_s=600, top=2, whole_up_to=8, prune=False)
    assert on.complete and off.complete and off.families_pruned == 0
    assert on.families_scored < off.families_scored, shapes  # per-family bounds do prune GEMM
    assert len(on.best) == len(off.best)
    for a, b in zip(on.best, off.best):
        assert close(a.objective, b.objective), shapes
        assert close(a.dram_bytes, b.dram_bytes) and close(a.latency_s, b.latency_s), shapes
        assert close(a.footprint_bytes, b.footprint_bytes), shapes
    assert on.best[0].mapping == off.best[0].mapping  # the same order, so the same tie-break winner


def test_gemm_1024_scores_only_the_family_that_wins_every_tie_break():
    """GEMM 1024^3 on peer_256: every family reaches the floor and the compute bound (6 MiB fit
    in 16 MiB), so the tie-breaks decide: least footprint, which is A whole beside one column
    of B (K x 1). Visited first, it leaves nothing to score."""
    spec = cascade.load(MATMUL, dict(M=1024, K=1024, N=1024))
    result = search(spec, PEER, "traffic", budget_s=300, top=1)
    best = result.best[0]
    assert result.complete and result.families_scored == 1
    assert result.families_pruned > 0.9 * result.families_total  # the rest: refused, or duplicates
    assert best.dram_bytes == result.compulsory_bytes
    assert best.latency_s == pytest.approx(1024**3 / (256 * 256) / 940e6, rel=1e-12)
    assert best.footprint_bytes == (1024 * 1024 + 1024) * 2
    assert result.seconds_to_best <= result.seconds


def test_time_to_best_is_when_the_final_leader_was_found_not_a_later_tie(monkeypatch):
    """Every family scored (pruning off) on a small GEMM, several tying the best on the objective:
    the time to best falls between the end of the family that gave the reported best and the end
    of the next; the ties scored after it do not move it."""
    import cascade.search.spatial as spatial

    real, ends = spatial._score, []

    def timed(spec, space, family, tgt, objective, top, deadline):
        out = real(spec, space, family, tgt, objective, top, deadline)
        ends.append((deadline.elapsed(), family, out[0][0].objective if out[0] else None))
        return out
    monkeypatch.setattr(spatial, "_score", timed)
    spec = cascade.load(MATMUL, dict(M=12, K=4, N=12))
    result = search(spec, TINY, "traffic", budget_s=600, top=1, whole_up_to=8, prune=False)
    leader = next(i for i, (_, family, _) in enumerate(ends) if family == result.best[0].family)
    ties = [i for i, (_, _, obj) in enumerate(ends) if obj is not None and close(obj, result.best[0].objective)]
    assert any(i > leader for i in ties)  # ties were scored after the leader
    assert ends[leader][0] <= result.seconds_to_best
    if leader + 1 < len(ends):
        assert result.seconds_to_best < ends[leader + 1][0]
