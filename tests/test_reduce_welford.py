"""R2, roll by shifting (`cascade.transform.shift`): mean then variance, LayerNorm, a masked
variance with a filtered count and a third moment, derived as running central moments about the
running mean (Welford/Chan's merge). Values against plain NumPy (np.var, np.mean of cubes) at a
large mean; float32 error against the original's at mean 1e4, element-wise (tile 1), tiled and
ragged; and the naive one-pass moments, which the 10x bound rejects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cascade.api import load, loads
from cascade.transform.verify import float32_ratio

CORPUS = Path(__file__).resolve().parent / "cascades" / "reduce"


@pytest.mark.parametrize("name", ["variance", "layernorm", "masked_variance", "third_moment"])
def test_shift_rule_and_its_certificate(name):
    spec = load(CORPUS / f"{name}.einsum")
    _, cert = spec.reduce("M", 16)
    step = next(s for s in cert.steps if s.rule == "R2")
    assert any(i.startswith("R2 expand") for i in step.identities)
    assert any(i.startswith("R2 repair") for i in step.identities)
    final = next(i for i in step.identities if i.startswith("R2 final"))
    if name in ("variance", "layernorm"):
        assert "-A_1**2/M + A_2" in final  # the corrected two-pass formula, derived


@pytest.mark.parametrize("m, tile", [(300, 1), (300, 16), (37, 5), (300, 300)])
def test_variance_against_numpy_at_a_large_mean(m, tile):
    spec = load(CORPUS / "variance.einsum", {"M": m, "P": 3})
    derived, _ = spec.reduce("M", tile)
    rng = np.random.default_rng(7)
    x = 1e4 + rng.standard_normal((m, 3))
    got = derived.run({"X": x})["VAR"]
    np.testing.assert_allclose(got, np.var(x, axis=0), rtol=1e-9)
    third, _ = load(CORPUS / "third_moment.einsum", {"M": m, "P": 3}).reduce("M", tile)
    want = np.mean((x - x.mean(axis=0)) ** 3, axis=0)
    np.testing.assert_allclose(third.run({"X": x})["K3"], want, rtol=1e-6, atol=1e-9)


def test_masked_variance_against_numpy_prefixes():
    spec = load(CORPUS / "masked_variance.einsum", {"M": 23, "P": 23})
    derived, _ = spec.reduce("M", 4)
    rng = np.random.default_rng(3)
    x = 1e4 + rng.standard_normal((23, 23))
    got = derived.run({"X": x})["VAR"]
    want = np.array([np.var(x[: p + 1, p]) for p in range(23)])
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name, m, tile", [("variance", 300, 1), ("variance", 300, 16), ("variance", 37, 5),
                                           ("layernorm", 300, 1), ("layernorm", 37, 5),
                                           ("masked_variance", 40, 3), ("third_moment", 64, 16)])
def test_float32_error_within_10x_at_mean_1e4(name, m, tile):
    spec = load(CORPUS / f"{name}.einsum", {"M": m, "P": 4} if name != "masked_variance" else {"M": m, "P": m})
    derived, _ = spec.reduce("M", tile)
    shapes = {**spec.shapes, "M0": tile}
    orig32, new32 = float32_ratio(spec.cascade, derived.cascade, shapes, "large mean")
    assert new32 <= 10 * orig32, (orig32, new32)


def test_naive_moments_fail_the_10x_bound():
    """The bound has teeth: sum x^2 - (sum x)^2 / M, one pass and algebraically equal, loses
    float32 precision at mean 1e4 (why D2 is not used for a shift form)."""
    text = (CORPUS / "variance.einsum").read_text()
    naive = loads("cascade naive\nshape M = 300, P = 4\ninput X[M, P]\noutput VAR[P]\n"
                  "S[p] = X[m, p]\nSS[p] = X[m, p] * X[m, p]\nVAR[p] = (SS[p] - S[p] * S[p] / M) / M\n")
    spec = loads(text, {"M": 300, "P": 4})
    orig32, naive32 = float32_ratio(spec.cascade, naive.cascade, {"M": 300, "P": 4}, "large mean")
    assert naive32 > 10 * orig32
