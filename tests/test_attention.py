"""Every bundled spec against plain NumPy: the attention cascades (3/2/1-pass, single head and
multi-head) equal softmax(K^T Q) V, `scores_softmax` equals the softmax scores, and the softmax
and matmul specs equal their textbook formulas, at several shapes including M not divisible by
M0 and at the specs' own default shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cascade

SPECS = Path(__file__).resolve().parent.parent / "specs"
ATTENTION = SPECS / "attention"
RTOL, ATOL = 1e-9, 1e-12

SINGLE_HEAD = ["attention_3pass", "attention_2pass", "attention_1pass"]
MULTI_HEAD = ["mha_3pass", "mha_2pass", "mha_1pass"]

# M0 is used only by the split (1-pass) specs; the others ignore it.
SHAPES = [
    {"E": 4, "F": 3, "M": 10, "P": 7, "M0": 4},  # ragged: 10 = 4 + 4 + 2
    {"E": 8, "F": 5, "M": 16, "P": 5, "M0": 4},  # M0 divides M
    {"E": 3, "F": 2, "M": 5, "P": 3, "M0": 8},  # one tile, larger than M
    {"E": 2, "F": 4, "M": 13, "P": 2, "M0": 1},  # tiles of one key
    {"E": 1, "F": 1, "M": 1, "P": 1, "M0": 1},
]
MHA_SHAPES = [
    {"B": 2, "H": 3, "E": 4, "F": 3, "M": 11, "P": 6, "M0": 4},
    {"B": 1, "H": 2, "E": 5, "F": 2, "M": 12, "P": 4, "M0": 3},
    {"B": 3, "H": 1, "E": 2, "F": 2, "M": 7, "P": 9, "M0": 7},
]


def load(path: Path, shapes: dict[str, int]) -> cascade.Spec:
    """The spec at `shapes`, keeping only the ranks it has (M0 only exists where M is split)."""
    ranks = set(cascade.load(path).shapes)
    return cascade.load(path, shapes={r: n for r, n in shapes.items() if r in ranks})


def attention_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """softmax over keys m of sum_e Q[e, p] K[e, m], applied to V[f, m]: AV[f, p]."""
    scores = np.einsum("ep,em->pm", q, k)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights = weights / weights.sum(axis=1, keepdims=True)
    return np.einsum("pm,fm->fp", weights, v)


def mha_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.empty(q.shape[:2] + (v.shape[2], q.shape[3]))
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            out[b, h] = attention_numpy(q[b, h], k[b, h], v[b, h])
    return out


def softmax_over_rows(x: np.ndarray) -> np.ndarray:
    """softmax over axis 0 (m) of every column p."""
    e = np.exp(x - x.max(axis=0))
    return e / e.sum(axis=0)


@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: "M{M}-M0{M0}-P{P}".format(**s))
@pytest.mark.parametrize("name", SINGLE_HEAD)
def test_attention_equals_softmax_qk_v(name: str, shapes: dict[str, int]):
    spec = load(ATTENTION / f"{name}.einsum", shapes)
    inputs = spec.random_inputs(seed=11)
    got = spec.run(inputs)["AV"]
    np.testing.assert_allclose(got, attention_numpy(inputs["Q"], inputs["K"], inputs["V"]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shapes", MHA_SHAPES, ids=lambda s: "B{B}-H{H}-M{M}-M0{M0}".format(**s))
@pytest.mark.parametrize("name", MULTI_HEAD)
def test_mha_equals_softmax_qk_v_per_head(name: str, shapes: dict[str, int]):
    spec = load(ATTENTION / f"{name}.einsum", shapes)
    inputs = spec.random_inputs(seed=12)
    got = spec.run(inputs)["AV"]
    np.testing.assert_allclose(got, mha_numpy(inputs["Q"], inputs["K"], inputs["V"]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", SINGLE_HEAD + MULTI_HEAD)
def test_attention_at_default_shapes(name: str):
    spec = cascade.load(ATTENTION / f"{name}.einsum")
    inputs = spec.random_inputs(seed=0)
    got = spec.run(inputs)["AV"]
    want = (attention_numpy if name in SINGLE_HEAD else mha_numpy)(inputs["Q"], inputs["K"], inputs["V"])
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", SINGLE_HEAD)
def test_attention_is_stable_for_large_scores(name: str):
    """Scores of several hundred overflow a naive exp; every cascade subtracts a (running) max.
    Increasing keys make the running max of the 1-pass cascade grow tile after tile."""
    spec = load(ATTENTION / f"{name}.einsum", {"E": 3, "F": 2, "M": 11, "P": 4, "M0": 3})
    rng = np.random.default_rng(5)
    q = 40 * rng.standard_normal((3, 4))
    k = np.cumsum(np.abs(rng.standard_normal((3, 11))), axis=1) * np.sign(q[:, :1])
    v = rng.standard_normal((2, 11))
    got = spec.run({"Q": q, "K": k, "V": v})["AV"]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, attention_numpy(q, k, v), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("shapes", [{}, {"E": 3, "M": 6, "P": 4}, {"E": 1, "M": 1, "P": 3}], ids=str)
def test_scores_softmax(shapes: dict[str, int]):
    spec = cascade.load(ATTENTION / "scores_softmax.einsum", shapes=shapes)
    inputs = spec.random_inputs(seed=4)
    q, k = inputs["Q"], inputs["K"]
    scores = (k.T @ q) / np.sqrt(q.shape[0])
    np.testing.assert_allclose(spec.run(inputs)["A"], softmax_over_rows(scores), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["softmax_3pass", "softmax_online"])
@pytest.mark.parametrize("shapes", [{}, {"M": 7, "P": 3}, {"M": 1, "P": 2}], ids=str)
def test_softmax_specs(name: str, shapes: dict[str, int]):
    spec = cascade.load(SPECS / f"{name}.einsum", shapes=shapes)
    x = spec.random_inputs(seed=9)["X"]
    np.testing.assert_allclose(spec.run({"X": x})["Y"], softmax_over_rows(x), rtol=RTOL, atol=ATOL)


def test_softmax_online_with_increasing_inputs():
    """A running max that grows at every step: each step rescales the running denominator."""
    spec = cascade.load(SPECS / "softmax_online.einsum", shapes={"M": 9, "P": 2})
    x = np.stack([np.linspace(-50, 400, 9), np.linspace(300, -20, 9)], axis=1)
    y = spec.run({"X": x})["Y"]
    np.testing.assert_allclose(y, softmax_over_rows(x), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("shapes", [{}, {"K": 3, "M": 5, "N": 2}, {"K": 1, "M": 1, "N": 1}], ids=str)
def test_matmul(shapes: dict[str, int]):
    spec = cascade.load(SPECS / "matmul.einsum", shapes=shapes)
    inputs = spec.random_inputs(seed=8)
    a, b = inputs["A"], inputs["B"]
    np.testing.assert_allclose(spec.run(inputs)["Z"], a.T @ b, rtol=RTOL, atol=ATOL)


def test_encoder_linear():
    spec = cascade.load(SPECS / "transformer" / "encoder_linear.einsum", shapes=dict(T=7, D=5, N=4, S=6))
    i = spec.random_inputs(seed=2)
    out = spec.run(i)
    np.testing.assert_allclose(out["Q"], i["WQ"].T @ i["X"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["V"], i["WV"].T @ i["X"], rtol=RTOL, atol=ATOL)
    ffn = i["W2"].T @ (i["W1"].T @ (i["WZ"].T @ i["AV"]))
    np.testing.assert_allclose(out["FF"], ffn, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shapes", [{"B": 1, "H": 2, "M": 7, "P": 7, "M0": 3}, {"B": 2, "H": 1, "M": 10, "P": 6}],
                         ids=str)
def test_mha_1pass_causal_against_masked_numpy(shapes):
    """Key m is seen by query p only when m <= p; rows with no key never occur (m = 0 <= p)."""
    spec = load(ATTENTION / "mha_1pass_causal.einsum", shapes)
    inputs = spec.random_inputs(seed=12)
    q, k, v = inputs["Q"], inputs["K"], inputs["V"]
    want = np.empty(q.shape[:2] + (v.shape[2], q.shape[3]))
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            scores = q[b, h].T @ k[b, h]  # [p, m]
            scores[np.arange(scores.shape[1])[None, :] > np.arange(scores.shape[0])[:, None]] = -np.inf
            w = np.exp(scores - scores.max(axis=1, keepdims=True))
            want[b, h] = (w / w.sum(axis=1, keepdims=True) @ v[b, h].T).T
    np.testing.assert_allclose(spec.run(inputs)["AV"], want, rtol=RTOL, atol=ATOL)


def test_every_bundled_spec_is_tested_here():
    from test_zoo import ZOO  # the attention/norm/loss zoo of issue 12 is tested in test_zoo.py

    tested = set(SINGLE_HEAD + MULTI_HEAD) | {"scores_softmax", "softmax_3pass", "softmax_online", "matmul",
                                              "encoder_linear", "mha_1pass_causal"} | set(ZOO)
    assert {p.stem for p in SPECS.rglob("*.einsum")} == tested
