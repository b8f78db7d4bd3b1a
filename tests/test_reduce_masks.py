"""`cascade reduce` with masks that bound m from below (sliding windows, strictly causal
windows) and with index values in the bodies: the result equals the 3-pass reference wherever
that is defined, at shapes where leading tiles and whole rows are masked, ragged tiles
included; the tile filters are what keeps NaN out (removing them brings it back)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade.api import load, loads
from cascade.lang import ir
from cascade.lang.show import show
from cascade.transform.masks import bounds, fiber_guard, tile_filter
from cascade.errors import SpecError
from cascade.transform.reduce import reduce_passes
from cascade.transform.verify import verify

CORPUS = Path(__file__).resolve().parent / "cascades" / "reduce"
# P >= M so that queries past the window's reach see leading tiles fully masked; P > M leaves
# rows whose window lies beyond the keys (an empty fiber: the reference gives 0 there)
SHAPES = [{"E": 3, "F": 2, "M": 37, "P": 37, "M0": 4}, {"E": 3, "F": 2, "M": 37, "P": 50, "M0": 5},
          {"E": 2, "F": 2, "M": 7, "P": 9, "M0": 3}, {"E": 2, "F": 2, "M": 20, "P": 20, "M0": 1},
          {"E": 2, "F": 2, "M": 20, "P": 24, "M0": 25}]


@pytest.mark.parametrize("name", ["sliding_window", "strictly_causal_window"])
def test_windows_equal_the_reference_where_tiles_and_rows_are_masked(name):
    spec = load(CORPUS / f"{name}.einsum")
    derived, cert = spec.reduce("M", 4)
    assert (cert.passes_before, cert.passes_after) == (3, 1)
    trials = verify(spec.cascade, derived.cascade, "M", SHAPES)
    assert all(t.ok for t in trials), [t for t in trials if not t.ok]
    shapes = {k: v for k, v in SHAPES[1].items() if k != "M0"}
    spec = load(CORPUS / f"{name}.einsum", shapes)
    derived, _ = spec.reduce("M", SHAPES[1]["M0"])
    inputs = spec.random_inputs(seed=2)
    want, got = spec.run(inputs)["AV"], derived.run(inputs)["AV"]
    assert np.all(np.isfinite(got)) and np.all(want[:, 45:] == 0) and np.all(got[:, 45:] == 0)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # without the tile filters, a leading empty tile's local max is a max over nothing: absent
    # under the language's rule (issue 12), so its step carries the running values and the
    # result is still the reference; the filters only spare the work
    bare = replace(derived.cascade, statements=tuple(
        replace(s, filters=tuple(c for c in s.filters if "m0" in _vars(c)))
        if isinstance(s, ir.Einsum) and s.reduction is None and _local(s) else s
        for s in derived.cascade.statements))
    assert bare != derived.cascade
    broken = loads(show(bare), shapes).run(inputs)["AV"]
    np.testing.assert_allclose(broken, want, rtol=1e-9, atol=1e-12)


def _vars(cmp: ir.Compare) -> set[str]:
    return {v.var for v in ir.affine_vars(cmp.left) + ir.affine_vars(cmp.right)}


def _local(stmt: ir.Einsum) -> bool:
    """A local reduction over the tile (reads m0, keeps m1 only)."""
    return "m0" not in stmt.lhs.variables and any("m0" in a.variables for a in ir.expr_reads(stmt.expr))


def _cmp(text_left: ir.Affine, op: str, right: ir.Affine) -> ir.Compare:
    return ir.Compare(op, text_left, right)


M, P = ir.AffVar("m"), ir.AffVar("p")


def test_bounds_and_projections_against_enumeration():
    window = [_cmp(M, "<", P), _cmp(ir.AffBin("-", P, ir.AffConst(8)), "<", M)]
    assert [k for c in window for k, _ in bounds(c, "m")] == ["upper", "lower"]
    guard = fiber_guard(window, "m", "M")
    tile = tile_filter(window, "m", "M", "m1", "M0")
    for m_size, m0 in ((37, 4), (20, 7), (5, 8)):
        for p in range(0, m_size + 12):
            present = [m for m in range(m_size) if m < p and p - 8 < m]
            assert _holds(guard, {"p": p, "M": m_size}) == bool(present)
            for m1 in range(-(-m_size // m0)):
                in_tile = [m for m in present if m1 * m0 <= m < (m1 + 1) * m0]
                assert _holds(tile, {"p": p, "M": m_size, "m1": m1, "M0": m0}) == bool(in_tile), (p, m1)


def test_filters_with_no_exact_projection_are_refused(tmp_path):
    path = tmp_path / "stride.einsum"
    path.write_text((CORPUS / "sliding_window.einsum").read_text().replace("p - 8 < m", "p < 2 * m"))
    with pytest.raises(SpecError, match="coefficient 2 on m"):
        load(path).reduce("M")


def _holds(cmps: list[ir.Compare], env: dict[str, int]) -> bool:
    ops = {"<": int.__lt__, "<=": int.__le__, "==": int.__eq__, ">=": int.__ge__, ">": int.__gt__}
    return all(ops[c.op](_value(c.left, env), _value(c.right, env)) for c in cmps)


def _value(aff: ir.Affine, env: dict[str, int]) -> int:
    match aff:
        case ir.AffVar(var=v):
            return env[v]
        case ir.AffConst(value=c):
            return c
        case ir.AffShape(rank=r):
            return env[r]
        case ir.AffNeg(operand=o):
            return -_value(o, env)
        case ir.AffBin(op=op, left=l, right=r):
            a, b = _value(l, env), _value(r, env)
            return a + b if op == "+" else a - b if op == "-" else a * b
    raise TypeError(aff)


def test_alibi_with_index_values_is_derived_with_the_coordinate_tiled():
    spec = load(CORPUS / "alibi_index_values.einsum", {"M": 23, "P": 23})
    derived, cert = spec.reduce("M", 5)
    text = derived.show()
    assert "(p - (m1 * M0 + m0))" in text and "pow(2, -8 * (h + 1) / H)" in text
    inputs = spec.random_inputs(seed=5)
    np.testing.assert_allclose(derived.run(inputs)["AV"], spec.run(inputs)["AV"], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ random bodies under masks

LEAVES = ["XF[m, p]", "Y[m, p]", "GM[p]", "S[p]", "C[p]", "2", "SN[m, p]", "0.1 * (p - m)"]
FILTERS = ["m <= p and p - 3 < m", "p - 2 < m", "m < p", "m <= p + 1 and p < m + 4"]


@st.composite
def bodies(draw, depth=3):
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(LEAVES))
    kind = draw(st.sampled_from(["+", "-", "*", "/", "exp", "log", "abs", "max"]))
    if kind in ("exp", "log", "abs"):
        return f"{kind}({draw(bodies(depth - 1))})"
    a, b = draw(bodies(depth - 1)), draw(bodies(depth - 1))
    return f"max({a}, {b})" if kind == "max" else f"({a} {kind} {b})"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies(), op=st.sampled_from(["sum", "max"]), where=st.sampled_from(FILTERS))
def test_random_bodies_under_masks_refuse_cleanly_or_verify(body, op, where):
    """Windows that empty leading tiles and whole rows (P > M), a filtered XF beside an
    unfiltered Y: each body is refused at its line or equal to the reference where defined."""
    text = (f"cascade fuzz\nshape M = 8, P = 9\ninput X[M, P], Y[M, P], C[P]\noutput Z[P]\n"
            f"XF[m, p] = X[m, p] where {where}\nGM[p] = XF[m, p] :: max(m)\nS[p] = Y[m, p]\n"
            f"SN[m, p] = exp(XF[m, p] - GM[p])\nZ[p] = {body} :: {op}(m)\n")
    try:
        spec = loads(text)
    except SpecError:
        return
    try:
        derived, _ = reduce_passes(spec.cascade, "M", 3)
    except SpecError as exc:
        assert exc.first.span is not None and "cannot reduce" in exc.first.message
        return
    shapes = [{"M": 7, "M0": 3, "P": 9}, {"M": 5, "M0": 1, "P": 7}, {"M": 16, "M0": 4, "P": 19}]
    trials = verify(spec.cascade, derived, "M", shapes, scales=("unit",))
    assert all(t.ok for t in trials), (body, op, where, trials, show(derived))


def test_windowed_max_of_an_empty_window_is_minus_inf_as_in_the_reference():
    spec = load(CORPUS / "windowed_max_shift.einsum", {"M": 20, "P": 30})
    derived, cert = spec.reduce("M", 3)
    assert [s.rule for s in cert.steps] == ["D3"]
    inputs = spec.random_inputs(seed=1)
    want, got = spec.run(inputs)["Z"], derived.run(inputs)["Z"]
    assert np.all(want[27:] == -np.inf) and np.array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[:27], want[:27], rtol=1e-12)


@pytest.mark.parametrize("name", ["sliding_window", "strictly_causal_window", "windowed_max_shift",
                                  "masked_variance", "alibi_index_values"])
def test_generated_executor_runs_the_derived_masked_cascades(name):
    spec = load(CORPUS / f"{name}.einsum", {"M": 37, "P": 37})
    derived, _ = spec.reduce("M", 8)  # 5 tiles, the last ragged; leading tiles of late rows masked
    inputs = spec.random_inputs(seed=4)
    out = derived.executor(None).run(**inputs)
    for key, want in spec.run(inputs).items():
        np.testing.assert_allclose(out[key], want, rtol=1e-9, atol=1e-12)
