"""The reference evaluator against independent plain-NumPy implementations.

Every cascade of the corpus in `tests/cascades/` has a NumPy function here, written without the
evaluator's machinery (direct formulas, Python loops, `np.cumsum`, `np.maximum.accumulate`,
`ufunc.reduceat` for ragged tiles, ...). Each is checked at float64 at two or three shapes,
including ragged splits. Then the absent-point semantics (identities of empty reductions,
absent output points read as 0) and the evaluator's internal paths (chunked reductions, the
`np.einsum` fast path) are checked on their own.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascade
from cascade import reference
from cascade.lang import ir

CORPUS = Path(__file__).parent / "cascades"
RTOL, ATOL = 1e-9, 1e-12

# name -> (reference function, shape overrides to test besides the spec's defaults)
REFERENCES: dict[str, tuple] = {}


def reference_for(name: str, *shape_sets: dict[str, int]):
    def register(fn):
        REFERENCES[name] = (fn, ({},) + shape_sets)
        return fn

    return register


def tile_starts(m: int, m0: int) -> np.ndarray:
    return np.arange(0, m, m0)


def softmax_columns(s: np.ndarray) -> np.ndarray:
    """Softmax of each column of s (over axis 0), written out directly."""
    e = np.exp(s - s.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


# ------------------------------------------------------------------ normalisations


@reference_for("layernorm", {"E": 5, "P": 3}, {"E": 1, "P": 2})
def _layernorm(x, g, bt, s):
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    return {"Y": (x - mu) / np.sqrt(var + 1e-5) * g[:, None] + bt[:, None]}


@reference_for("rmsnorm", {"B": 1, "E": 3, "P": 2}, {"B": 3, "E": 7, "P": 1})
def _rmsnorm(x, g, s):
    rms = np.sqrt(np.mean(x**2, axis=1) + 1e-6)
    return {"Y": g[None, :, None] * x / rms[:, None, :]}


@reference_for("softmax_vector", {"M": 1}, {"M": 33})
def _softmax_vector(x, s):
    e = np.exp(x - np.max(x))
    return {"Y": e / np.sum(e)}


@reference_for("softmax_middle_rank", {"B": 1, "M": 2, "P": 3}, {"B": 2, "M": 9, "P": 1})
def _softmax_middle_rank(x, s):
    y = np.empty_like(x)
    for b in range(x.shape[0]):
        for p in range(x.shape[2]):
            col = x[b, :, p]
            w = np.exp(col - col.max())
            y[b, :, p] = w / w.sum()
    return {"Y": y}


@reference_for("log_softmax", {"P": 1, "N": 2}, {"P": 6, "N": 17})
def _log_softmax(x, s):
    return {"Y": np.log(np.exp(x) / np.exp(x).sum(axis=1, keepdims=True))}


# ------------------------------------------------------------------ masked attention


def _masked_attention(q, k, v, keys_of) -> np.ndarray:
    """Attention one query at a time over the keys `keys_of(p)` selects; 0 where none."""
    out = np.zeros((v.shape[0], q.shape[1]))
    for p in range(q.shape[1]):
        keys = [m for m in range(k.shape[1]) if keys_of(m, p)]
        if keys:
            scores = np.array([q[:, p] @ k[:, m] for m in keys])
            w = np.exp(scores - scores.max())
            out[:, p] = v[:, keys] @ (w / w.sum())
    return out


@reference_for("causal_attention", {"M": 5, "P": 9}, {"M": 9, "P": 4, "E": 1, "F": 2})
def _causal_attention(q, k, v, s):
    return {"AV": _masked_attention(q, k, v, lambda m, p: m <= p)}


@reference_for("sliding_window_attention", {"M": 7, "P": 4}, {"M": 3, "P": 9})
def _sliding_window_attention(q, k, v, s):
    return {"AV": _masked_attention(q / np.sqrt(s["E"]), k, v, lambda m, p: p - 4 < m <= p)}


@reference_for("causal_attention_1pass", {"M0": 5}, {"M": 9, "P": 12, "M0": 3}, {"M": 7, "P": 3, "M0": 2})
def _causal_attention_1pass(q, k, v, s):
    return {"AV": _masked_attention(q, k, v, lambda m, p: m <= p)}


@reference_for("mha_causal_2pass", {"M": 6, "P": 6}, {"B": 1, "H": 3, "M": 10, "P": 2})
def _mha_causal_2pass(q, k, v, s):
    b_, h_ = q.shape[:2]
    shift = s["M"] - s["P"]
    out = np.stack([np.stack([_masked_attention(q[b, h] / np.sqrt(s["E"]), k[b, h], v[b, h],
                                                lambda m, p: m <= p + shift)
                              for h in range(h_)]) for b in range(b_)])
    return {"AV": out}


@reference_for("mha_window_1pass", {"M0": 4}, {"B": 1, "H": 1, "M": 13, "P": 7, "M0": 5},
               {"M": 6, "P": 6, "M0": 6})
def _mha_window_1pass(q, k, v, s):
    b_, h_ = q.shape[:2]
    out = np.stack([np.stack([_masked_attention(q[b, h], k[b, h], v[b, h], lambda m, p: p - 5 < m <= p)
                              for h in range(h_)]) for b in range(b_)])
    return {"AV": out}


# ------------------------------------------------------------------ products


@reference_for("elementwise_chain", {"M": 1, "N": 1}, {"M": 3, "N": 8})
def _elementwise_chain(a, b, c, s):
    return {"Z": a * b * c[None, :]}


@reference_for("matmul_chain", {"I": 1, "K": 2, "N": 1, "O": 4}, {"I": 5, "K": 3, "N": 7, "O": 2})
def _matmul_chain(a, b, c, s):
    return {"Z": (a @ b) @ c, "W": 2 * s["K"] * (a @ (b @ c))}


@reference_for("gemv", {"M": 1, "K": 4}, {"M": 12, "K": 1})
def _gemv(a, x, b, s):
    y = np.array([2 * sum(a[m, kk] * x[kk] for kk in range(a.shape[1])) + b[m] for m in range(a.shape[0])])
    return {"Y": y}


@reference_for("dot_product", {"K": 1}, {"K": 40})
def _dot_product(x, y, s):
    return {"D": np.array(np.dot(x, y)), "N2": np.array(np.linalg.norm(x - y) ** 2)}


@reference_for("outer_product", {"M": 1, "N": 3}, {"M": 4, "N": 1})
def _outer_product(x, y, s):
    return {"Z": np.outer(x, y) + x[:, None]}


@reference_for("mttkrp", {"I": 2, "J": 1, "K": 4, "R": 3}, {"I": 5, "J": 3, "K": 2, "R": 1})
def _mttkrp(x, b, c, s):
    i_, j_, k_ = x.shape
    khatri_rao = (b[:, None, :] * c[None, :, :]).reshape(j_ * k_, -1)
    return {"Z": x.reshape(i_, j_ * k_) @ khatri_rao}


@reference_for("ttm", {"I": 2, "J": 1, "K": 3, "R": 4}, {"I": 1, "J": 5, "K": 1, "R": 2})
def _ttm(x, u, s):
    return {"Z": np.tensordot(u, x, axes=([1], [2]))}


@reference_for("batched_matmul", {"B": 1, "H": 1, "M": 3, "K": 2, "N": 4}, {"B": 3, "H": 2, "M": 1, "K": 6, "N": 2})
def _batched_matmul(a, x, sc, s):
    return {"Z": sc[None, :, None, None] * np.matmul(a, x)}


@reference_for("split_reduction", {"M0": 5}, {"M": 9, "M0": 2}, {"M": 3, "M0": 4})
def _split_reduction(a, x, s):
    return {"Y": a.T @ x, "MX": (a * x[:, None]).max(axis=0)}


# ------------------------------------------------------------------ reductions and filters


@reference_for("reductions_min_max_prod", {"M": 1, "N": 2, "P": 1}, {"M": 6, "N": 3, "P": 5})
def _reductions(x, s):
    return {"MX": x.max(axis=(0, 1)), "MN": x.min(axis=0), "PR": x.prod(axis=(0, 2)),
            "SM": np.abs(x).sum(axis=(0, 1))}


@reference_for("empty_reductions", {"M": 2, "P": 5}, {"M": 6, "P": 1})
def _empty_reductions(x, s):
    m_, p_ = x.shape
    out = {"S": np.zeros(p_), "MX": np.full(p_, -np.inf), "MN": np.full(p_, np.inf), "PR": np.ones(p_)}
    for p in range(p_):
        for m in range(min(p, m_)):
            out["S"][p] += x[m, p]
            out["MX"][p] = max(out["MX"][p], x[m, p])
            out["MN"][p] = min(out["MN"][p], x[m, p])
            out["PR"][p] *= x[m, p]
    return out


@reference_for("absent_propagation", {"M": 6, "P": 3}, {"M": 1, "P": 1})
def _absent_propagation(x, s):
    m_, p_ = x.shape
    upper = np.arange(m_)[:, None] <= np.arange(p_)[None, :]
    u = np.where(upper, np.exp(x) + 1, 0.0)
    row = np.array([min([np.exp(x[m, p]) + 1 for p in range(m, p_)], default=np.inf) for m in range(m_)])
    return {"T": np.triu(x), "U": u, "W": np.where(upper, 2 - x * x, 0.0), "CS": u.sum(axis=0), "ROW": row}


@reference_for("filter_forms", {"M": 3, "P": 8}, {"M": 9, "P": 2})
def _filter_forms(x, s):
    m_, p_ = x.shape
    dg = np.array([x[p, p] if p < m_ else 0.0 for p in range(p_)])
    off, band, even, tail = np.zeros_like(x), np.zeros_like(x), np.full(p_, -np.inf), np.zeros(p_)
    for m in range(m_):
        for p in range(p_):
            if m != p and m >= 1:
                off[m, p] = x[m, p]
            if 2 * (m + 1) > p >= m - 1:
                band[m, p] = x[m, p]
            if 2 * m < m_ - p:
                even[p] = max(even[p], x[m, p])
            if m >= p_ - p:
                tail[p] += x[m, p]
    return {"DG": dg, "OFF": off, "BAND": band, "EVEN": even, "TAIL": tail}


@reference_for("banded_split", {"M0": 3}, {"M": 8, "P": 8, "M0": 4}, {"M": 5, "P": 12, "M0": 2})
def _banded_split(x, s):
    m_, p_ = x.shape
    band = np.abs(np.arange(m_)[:, None] - np.arange(p_)[None, :]) <= 1
    b = np.where(band, x, 0.0)
    below = np.arange(m_)[:, None] >= np.arange(p_)[None, :]
    return {"TS": np.add.reduceat(b, tile_starts(m_, s["M0"]), axis=0), "Y": 10 * b,
            "L": np.where(below, x, 0.0), "SL": np.where(below, np.exp(x), 0.0).sum(axis=0)}


# ------------------------------------------------------------------ recurrences


@reference_for("prefix_sum_inner_rank", {"M": 1}, {"P": 1, "M": 20})
def _prefix_sum(x, s):
    return {"Y": np.cumsum(x, axis=0), "TOT": x.sum(axis=0)}


@reference_for("running_max", {"N": 1}, {"B": 1, "N": 9, "P": 2})
def _running_max(x, x0, s):
    y = np.maximum(x0[:, None, :], np.maximum.accumulate(x, axis=1))
    return {"Y": y, "LAST": np.maximum(x0, x.max(axis=1))}


@reference_for("running_product_min", {"M": 1, "P": 1}, {"M": 8, "P": 2})
def _running_product_min(x, s):
    return {"CP": np.cumprod(x, axis=0), "CM": np.minimum.accumulate(x, axis=1),
            "PEND": np.prod(x, axis=0), "MEND": np.min(x, axis=1)}


@reference_for("ema_recurrence", {"T": 1, "K": 1}, {"T": 12, "D": 1, "K": 2})
def _ema(x, w, s):
    t_, k_ = s["T"], s["K"]
    y = np.zeros_like(x)
    state = np.zeros(x.shape[1])
    a = 0.0
    for t in range(t_):
        state = state * (1 - 1 / t_) + x[t] / t_
        y[t] = state
        a = k_ * 0.5 * a + w[t].sum()  # the sum over k covers 0.5 * A[t] too
    return {"Y": y, "G": a * state}


@reference_for("segmented_prefix_sum", {"M": 6, "M0": 3}, {"M": 5, "P": 1, "M0": 4}, {"M": 3, "M0": 1})
def _segmented_prefix_sum(x, s):
    m_, m0 = s["M"], s["M0"]
    m1 = -(-m_ // m0)
    padded = np.zeros((m1 * m0, x.shape[1]))
    padded[:m_] = x
    y = np.cumsum(padded.reshape(m1, m0, -1), axis=1)
    present = (np.arange(m1 * m0) < m_).reshape(m1, m0)
    y[~present] = 0.0  # past M the ragged tile is absent, and absent points read as 0
    last = np.where(present[:, -1:], y[:, -1], 0.0)  # R[m1, M0] exists only for a full tile
    return {"Y": y, "LAST": last}


@reference_for("online_logsumexp", {"M0": 5}, {"M": 4, "M0": 4}, {"M": 13, "P": 1, "M0": 1})
def _online_logsumexp(x, s):
    return {"LSE": np.logaddexp.reduce(x, axis=0)}


# ------------------------------------------------------------------ indexing, views, scalars


@reference_for("fixed_coordinate", {"M": 3, "P": 1}, {"M": 4, "P": 7})
def _fixed_coordinate(x, v, s):
    return {"Y": x - x[0][None, :] + x[:, -1][:, None] * v[2]}


@reference_for("split_input_view", {"M0": 5}, {"M": 7, "M0": 3}, {"M": 2, "M0": 4})
def _split_input_view(k, q, s):
    scores = k.T @ q
    starts = tile_starts(s["M"], s["M0"])
    return {"S": scores, "TS": np.add.reduceat(scores, starts, axis=0),
            "TM": np.maximum.reduceat(k.max(axis=0), starts)}


@reference_for("split_intermediate_merge", {"M0": 3}, {"M": 4, "M0": 4}, {"M": 11, "P": 1, "M0": 5})
def _split_intermediate_merge(x, s):
    t = 2 * x + 1
    u = t * x
    return {"Y": u - t, "Z": np.maximum.reduceat(u, tile_starts(s["M"], s["M0"]), axis=0)}


@reference_for("ragged_tile_sums", {"M0": 7}, {"M": 10, "M0": 4}, {"M": 12, "M0": 3})
def _ragged_tile_sums(x, s):
    starts = tile_starts(s["M"], s["M0"])
    counts = np.diff(np.append(starts, s["M"])).astype(float)
    ones = (np.arange(len(starts) * s["M0"]) < s["M"]).astype(float).reshape(len(starts), s["M0"])
    return {"TS": np.add.reduceat(x, starts), "TX": np.maximum.reduceat(x, starts),
            "TN": np.minimum.reduceat(x, starts), "TP": np.multiply.reduceat(x, starts),
            "CNT": counts, "TOTAL": np.array(x.sum()), "ONES": ones, "NONES": counts}


@reference_for("scalars_and_constants", {"M": 1, "N": 5}, {"M": 3, "N": 1})
def _scalars_and_constants(x, alpha, s):
    return {"Y": alpha * x + s["M"] / 2 - s["N"] / 25, "C": np.array(alpha**2 + 3),
            "LO": x.min(axis=0), "HI": x.max(axis=0)}


@reference_for("unary_ops", {"M": 1}, {"M": 21})
def _unary_ops(x, y, s):
    return {"A": 1 - x - y, "B": np.sqrt(np.abs(x)) * np.log1p(np.abs(y)),
            "C": np.maximum(x, y) - np.minimum(x, -y) / 3,
            "D": -np.exp(-np.abs(x * y)) - 2 * x + y}


@reference_for("output_reused", {"N": 2, "D": 1}, {"N": 9, "D": 4})
def _output_reused(x, s):
    mu = x.mean(axis=0)
    var = x.var(axis=0, ddof=1)
    return {"MU": mu, "XC": x - mu, "VAR": var, "Z": (x - mu) / np.sqrt(var)}


@reference_for("namespaces", {"M": 1, "E": 5}, {"M": 6, "E": 1})
def _namespaces(m_tensor, e_tensor, s):
    e_, m_ = m_tensor.shape
    p = np.array([sum(m_tensor[e, m] * e_tensor[m] / e_ + m_ for e in range(e_)) for m in range(m_)])
    return {"P": p, "K": np.array(e_tensor.max())}


@reference_for("broadcast", {"M": 1, "N": 1, "P": 1}, {"M": 5, "N": 2, "P": 3})
def _broadcast(x, z, a, s):
    return {"Y": np.broadcast_to(x[None, :, None] + z[None, None, :], (s["M"], s["N"], s["P"])),
            "W": np.full(s["M"], s["M"] - 0.25), "S": np.array(-2.5), "R": np.tile(a @ z, (s["M"], 1))}


# ------------------------------------------------------------------ the tests


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.einsum"))


def cases():
    for path in corpus_files():
        entry = REFERENCES.get(path.stem)
        for k, shapes in enumerate(entry[1] if entry else ({},)):
            yield pytest.param(path, shapes, id=f"{path.stem}-{k}")


def expected_outputs(spec: cascade.Spec, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fn, _ = REFERENCES[spec.name]
    args = [inputs[d.name] for d in spec.cascade.inputs]
    return fn(*args, dict(spec.shapes))


def assert_outputs_match(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        w = np.asarray(value, dtype=float)
        assert got[name].shape == w.shape, name
        np.testing.assert_allclose(got[name], w, rtol=RTOL, atol=ATOL, err_msg=name)


def test_corpus_is_large_and_fully_covered():
    names = {p.stem for p in corpus_files()}
    assert len(names) >= 25
    assert names == set(REFERENCES), "every corpus cascade needs a NumPy reference and vice versa"


@pytest.mark.parametrize("path, shapes", list(cases()))
def test_corpus_matches_numpy(path: Path, shapes: dict[str, int]):
    spec = cascade.load(path, shapes=shapes)
    assert spec.name == path.stem
    inputs = spec.random_inputs(seed=7)
    got = spec.run(inputs)
    assert_outputs_match(got, expected_outputs(spec, inputs))


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.stem)
def test_corpus_chunked_and_general_paths(path: Path, monkeypatch):
    """Tiny chunks and no np.einsum fast path: the general reduction loop gives the same."""
    spec = cascade.load(path)
    inputs = spec.random_inputs(seed=3)
    monkeypatch.setattr(reference, "CHUNK_ELEMENTS", 5)
    monkeypatch.setattr(reference, "_sum_of_products", lambda *args: None)
    assert_outputs_match(spec.run(inputs), expected_outputs(spec, inputs))


# ------------------------------------------------------------------ absent-point semantics


def test_empty_reductions_hold_their_identities():
    spec = cascade.load(CORPUS / "empty_reductions.einsum")
    out = spec.run(seed=1)
    assert out["S"][0] == 0.0
    assert out["MX"][0] == -np.inf
    assert out["MN"][0] == np.inf
    assert out["PR"][0] == 1.0
    assert np.all(np.isfinite(out["S"][1:]))


def test_absent_output_points_read_as_zero():
    spec = cascade.load(CORPUS / "absent_propagation.einsum")
    x = spec.random_inputs(seed=2)["X"]
    out = spec.run({"X": x})
    lower = np.tril_indices(x.shape[0], k=-1, m=x.shape[1])
    assert np.all(out["T"][lower] == 0.0)
    assert np.all(out["U"][lower] == 0.0)  # exp(absent) + 1 is absent, not exp(0) + 1
    assert np.all(out["U"][np.triu_indices(x.shape[0], m=x.shape[1])] > 1.0)


def test_row_with_no_present_point_is_min_identity():
    spec = cascade.load(CORPUS / "absent_propagation.einsum", shapes={"M": 5, "P": 2})
    row = spec.run(seed=0)["ROW"]
    assert np.all(np.isfinite(row[:2])) and np.all(row[2:] == np.inf)


def test_filter_on_kept_variables_removes_output_points():
    """Conjuncts that mention only left-side variables remove output points (read as 0, and
    absent to later maps); the others only thin out the reduction, which may be left empty."""
    spec = cascade.loads("""
        shape M = 3, P = 4
        input X[M, P]
        output Z[P], W[P], E[P]
        Z[p] = X[m, p] :: max(m) where p < 2
        W[p] = Z[p] + 1
        E[p] = X[m, p] :: max(m) where m < p - 1
    """)
    x = spec.random_inputs(seed=0)["X"]
    out = spec.run({"X": x})
    np.testing.assert_array_equal(out["Z"], [x[:, 0].max(), x[:, 1].max(), 0, 0])
    np.testing.assert_array_equal(out["W"], [x[:, 0].max() + 1, x[:, 1].max() + 1, 0, 0])
    np.testing.assert_array_equal(out["E"], [-np.inf, -np.inf, x[0, 2], x[:2, 3].max()])


def test_empty_window_gives_zero_not_nan():
    """A query whose window holds no key: SD = 0 and A is absent, so AV = sum of nothing = 0."""
    spec = cascade.load(CORPUS / "sliding_window_attention.einsum", shapes={"M": 2, "P": 8})
    av = spec.run(seed=0)["AV"]
    assert np.all(av[:, 5:] == 0.0)
    assert np.all(np.isfinite(av))


def test_ragged_tiles_do_not_leak():
    """The ragged last tile of an input read in a split view contributes nothing: reading past
    the rank's shape (say, a clipped coordinate re-reading X[6]) would change every result."""
    spec = cascade.loads("""
        shape M = 7, M0 = 4
        split M = M1 * M0
        input X[M]
        output S[M1], MX[M1], C[M1]
        S[m1] = X[m1, m0]
        MX[m1] = X[m1, m0] :: max(m0)
        C[m1] = 1 + 0 * X[m1, m0]
    """)
    x = np.arange(1.0, 8.0)
    out = spec.run({"X": x})
    np.testing.assert_array_equal(out["S"], [1 + 2 + 3 + 4, 5 + 6 + 7])
    np.testing.assert_array_equal(out["MX"], [4, 7])
    np.testing.assert_array_equal(out["C"], [4, 3])


def test_ragged_output_written_through_split_view():
    spec = cascade.loads("""
        shape M = 5, M0 = 2
        split M = M1 * M0
        input X[M]
        output Y[M], T[M1, M0]
        Y[m1, m0] = 3 * X[m1, m0]
        T[m1, m0] = X[m1, m0] + 1
    """)
    x = np.arange(5.0)
    out = spec.run({"X": x})
    np.testing.assert_array_equal(out["Y"], 3 * x)
    np.testing.assert_array_equal(out["T"], [[1, 2], [3, 4], [5, 0]])  # the absent point reads as 0


# ------------------------------------------------------------------ the Spec API around the evaluator


def test_partial_inputs_are_completed_with_seeded_random():
    spec = cascade.load(CORPUS / "gemv.einsum")
    rand = spec.random_inputs(seed=5)
    x = np.ones(spec.shapes["K"])
    got = spec.run({"X": x}, seed=5)["Y"]
    np.testing.assert_allclose(got, 2 * rand["A"].sum(axis=1) + rand["B"], rtol=RTOL)


def test_seed_reproducible_and_distinct():
    spec = cascade.load(CORPUS / "layernorm.einsum")
    a, b, c = spec.run(seed=1)["Y"], spec.run(seed=1)["Y"], spec.run(seed=2)["Y"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_wrong_input_shape_and_name_raise_input_error():
    spec = cascade.load(CORPUS / "gemv.einsum")
    with pytest.raises(cascade.InputError, match=r"input X has shape \(3,\), expected \(7,\)"):
        spec.run({"X": np.zeros(3)})
    with pytest.raises(cascade.InputError, match="unknown input Q"):
        spec.run({"Q": np.zeros(3)})


def test_with_shapes_changes_sizes_and_derives_split_outer():
    spec = cascade.load(CORPUS / "ragged_tile_sums.einsum").with_shapes(M=11, M0=5)
    assert spec.shapes["M1"] == 3
    assert spec.run(seed=0)["TS"].shape == (3,)


def test_integer_inputs_are_promoted_to_float():
    spec = cascade.load(CORPUS / "dot_product.einsum", shapes={"K": 3})
    out = spec.run({"X": np.array([1, 2, 3]), "Y": np.array([4, 5, 6])})
    assert out["D"].dtype == np.float64 and out["D"] == 32.0


def test_float32_inputs_stay_float32():
    spec = cascade.load(CORPUS / "softmax_vector.einsum")
    x = spec.random_inputs(seed=0, dtype=np.float32)["X"]
    y = spec.run({"X": x})["Y"]
    assert y.dtype == np.float32
    e = np.exp(x.astype(np.float64) - x.max())
    np.testing.assert_allclose(y, e / e.sum(), rtol=1e-5)


# ------------------------------------------------------------------ random cascades against a brute-force evaluator
#
# A second, independent oracle: the semantics of DESIGN.md section 2 spelled out one point at a
# time in plain Python (sharing nothing with cascade.reference but the parsed IR), run on random
# cascades of one or two Einsums with split views, fixed-coordinate reads, broadcasts, filters
# and every reduce operator. The rule it pins for filters: the conjuncts that mention only
# left-side variables (and the ragged bound of a split both of whose parts are kept) decide
# whether an output point exists at all; the others decide which points a reduction combines,
# and a reduction over no present point holds its identity.

IDENTITY = {"sum": 0.0, "max": -np.inf, "min": np.inf, "prod": 1.0}
COMBINE = {"sum": np.add, "max": np.maximum, "min": np.minimum, "prod": np.multiply}
MAP = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "max": np.maximum, "min": np.minimum,
       "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs}

UNION_IDENTITY = {"+": 0.0, "-": 0.0, "max": -np.inf, "min": np.inf}  # the README's merge table


def _read_vars(expr) -> set[str]:
    return {v for a in ir.expr_reads(expr) for v in a.variables}


def _affine(a, env, shapes) -> int:
    if isinstance(a, ir.AffVar):
        return env[a.var]
    if isinstance(a, ir.AffConst):
        return a.value
    if isinstance(a, ir.AffShape):
        return shapes[a.rank]
    if isinstance(a, ir.AffNeg):
        return -_affine(a.operand, env, shapes)
    left, right = _affine(a.left, env, shapes), _affine(a.right, env, shapes)
    return {"+": left + right, "-": left - right, "*": left * right}[a.op]


def _holds(cmp, env, shapes) -> bool:
    left, right = _affine(cmp.left, env, shapes), _affine(cmp.right, env, shapes)
    return {"<": left < right, "<=": left <= right, "==": left == right, "!=": left != right,
            ">=": left >= right, ">": left > right}[cmp.op]


def _locate(ranks, indices, env, shapes, splits):
    """The stored coordinate an access addresses, or None outside the tensor."""
    coords, i, t = [], 0, 0
    while t < len(ranks):
        rank, idx = ranks[t], indices[i]
        if isinstance(idx, ir.ConstIndex):
            coords.append(idx.value)
        elif isinstance(idx, ir.LastIndex):
            coords.append(shapes[rank] - 1)
        elif idx.var.upper() == rank:
            coords.append(env[idx.var] + idx.offset)
        elif rank in splits and idx.var.upper() == splits[rank][0]:  # M read as m1, m0
            coords.append(env[idx.var] * shapes[splits[rank][1]] + env[indices[i + 1].var])
            i += 1
        else:  # M1, M0 read as m
            tile = shapes[ranks[t + 1]]
            coords += [env[idx.var] // tile, env[idx.var] % tile]
            t += 1
        i, t = i + 1, t + 1
    if any(not 0 <= c < shapes[r] for c, r in zip(coords, ranks)):
        return None
    return tuple(coords)


def brute_force(c: ir.Cascade, shapes: dict[str, int], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    splits = {s.rank: s.parts for s in c.splits}
    ranks = {d.name: d.ranks for d in c.inputs + c.outputs}
    store = {name: {ix: arr[ix] for ix in np.ndindex(arr.shape)} for name, arr in inputs.items()}
    shown: dict[str, dict] = {}  # what an output reads: present values, and the identity of an empty reduction

    def value(expr, env):  # a float64, or None where absent
        if isinstance(expr, ir.Num):
            return np.float64(expr.value)
        if isinstance(expr, ir.ShapeScalar):
            return np.float64(shapes[expr.rank])
        if isinstance(expr, ir.Read):
            a = expr.access
            where = _locate(ranks[a.tensor], a.indices, env, shapes, splits)
            return None if where is None else store[a.tensor].get(where)
        if isinstance(expr, ir.Neg):
            v = value(expr.operand, env)
            return None if v is None else -v
        operands = (expr.left, expr.right) if isinstance(expr, ir.BinOp) else expr.args
        fn = expr.op if isinstance(expr, ir.BinOp) else expr.fn
        args = [value(x, env) for x in operands]
        if fn in UNION_IDENTITY and args.count(None) == 1:  # a union merge: the absent side may be the identity
            gone, there = (0, 1) if args[0] is None else (1, 0)
            if _read_vars(operands[gone]) <= _read_vars(operands[there]):
                args[gone] = UNION_IDENTITY[fn]
        return None if None in args else MAP[fn](*args)

    def ragged(env, among) -> bool:
        return any(o.lower() in among and i.lower() in among
                   and env[o.lower()] * shapes[i] + env[i.lower()] >= shapes[r] for r, (o, i) in splits.items())

    for stmt in c.statements:
        lhs = [ix.var for ix in stmt.lhs.indices]
        ranks.setdefault(stmt.lhs.tensor, tuple(v.upper() for v in lhs))
        reduced = list(dict.fromkeys(v for a in ir.expr_reads(stmt.expr) for v in a.variables if v not in lhs))
        op = stmt.reduction.op if stmt.reduction else "sum"
        kept_filters = [f for f in stmt.filters
                        if {v.var for v in ir.affine_vars(f.left) + ir.affine_vars(f.right)} <= set(lhs)]
        result = {}
        for point in itertools.product(*(range(shapes[v.upper()]) for v in lhs)):
            env = dict(zip(lhs, point))
            if ragged(env, lhs) or not all(_holds(f, env, shapes) for f in kept_filters):
                continue
            total, present = IDENTITY[op], False
            for inner in itertools.product(*(range(shapes[v.upper()]) for v in reduced)):
                full = {**env, **dict(zip(reduced, inner))}
                if ragged(full, full) or not all(_holds(f, full, shapes) for f in stmt.filters):
                    continue
                v = value(stmt.expr, full)
                if v is not None:
                    total, present = (COMBINE[op](total, v) if reduced else v), True
            where = _locate(ranks[stmt.lhs.tensor], stmt.lhs.indices, env, shapes, splits)
            if where is not None and present:
                result[where] = total
            if where is not None and (present or reduced):  # a reduction over nothing: absent, reads its identity
                shown.setdefault(stmt.lhs.tensor, {})[where] = total
        store[stmt.lhs.tensor] = result
    out = {}
    for d in c.outputs:
        arr = np.zeros(tuple(shapes[r] for r in d.ranks))
        for where, v in shown.get(d.name, {}).items():
            arr[where] = v
        out[d.name] = arr
    return out


def _no_recurrence(path: Path) -> bool:
    return not cascade.load(path).cascade.inits


@pytest.mark.parametrize("path", [p for p in corpus_files() if _no_recurrence(p)], ids=lambda p: p.stem)
def test_brute_force_agrees_on_corpus(path: Path):
    spec = cascade.load(path)
    small = {r: min(n, 5) for r, n in spec.shapes.items() if r in spec.cascade.shape_dict()}
    spec = cascade.load(path, shapes=small)
    inputs = spec.random_inputs(seed=13)
    assert_outputs_match(spec.run(inputs), brute_force(spec.cascade, dict(spec.shapes), inputs))


M_READS = ["A[m, n]", "A[0, n]", "A[M, n]", "A[m, N]", "D[m]", "D[1]", "B[n, p]", "B[n, 0]", "C[p]", "C[P]"]
SPLIT_READS = ["A[m1, m0, n]", "D[m1, m0]", "A[M, n]", "D[m1, m0]", "B[n, p]", "C[p]", "B[N, p]"]
AFFINE_TERMS = {"m": ["m", "2*m", "m + 1", "M - m"], "m1": ["m1", "M0*m1 + m0", "m1 + m0"], "m0": ["m0", "m0 - 1"],
                "n": ["n", "N - n", "2*n"], "p": ["p", "p + 1", "P - 1 - p"]}


def _variables_of(text: str) -> list[str]:
    return [v for v in ("m1", "m0", "m", "n", "p") if any(t.strip() == v for t in text[text.index("[") + 1:-1].split(","))]


@st.composite
def _expression(draw, reads: list[str]) -> str:
    leaves = reads + [draw(st.sampled_from(["0.5", "2", "3", "N", "M0"]))]
    text = draw(st.sampled_from(leaves))
    for read in reads:
        if read not in text:
            text = f"{text} {draw(st.sampled_from(['+', '-', '*']))} {read}"
    for _ in range(draw(st.integers(0, 2))):
        form = draw(st.sampled_from(["-({})", "exp({})", "abs({})", "sqrt(abs({}))", "log(1 + abs({}))", "({}) / 2",
                                     "max({}, {})", "min({}, {})", "({}) * {}", "{} - ({})"]))
        other = draw(st.sampled_from(leaves))
        text = form.format(text, other) if form.count("{}") == 2 else form.format(text)
    return text


@st.composite
def _einsum(draw, name: str, reads: list[str], extra_vars: list[str]) -> tuple[str, list[str]]:
    space = list(dict.fromkeys(v for r in reads for v in _variables_of(r)))
    lhs = draw(st.permutations(space))[: draw(st.integers(0, len(space)))]
    lhs += draw(st.lists(st.sampled_from([v for v in extra_vars if v not in space] or ["n"]), max_size=1)
                .map(lambda vs: [v for v in vs if v not in space]))
    reduced = [v for v in space if v not in lhs]
    text = f"{name}[{', '.join(lhs)}] = {draw(_expression(reads))}"
    if reduced:
        op = draw(st.sampled_from(["sum", "max", "min", "prod"]))
        if op != "sum" or draw(st.booleans()):
            text += f" :: {op}({', '.join(draw(st.permutations(reduced)))})"
    variables = space + [v for v in lhs if v not in space]
    filters = []
    for _ in range(draw(st.integers(0, 2)) if variables else 0):
        usable = [t for v in variables for t in AFFINE_TERMS[v] if all(w in variables for w in _words(t))]
        left, right = draw(st.sampled_from(usable)), draw(st.sampled_from(usable + ["0", "1", "2", "P"]))
        filters.append(f"{left} {draw(st.sampled_from(['<', '<=', '==', '!=', '>=', '>']))} {right}")
    if filters:
        text += " where " + " and ".join(filters)
    return text, lhs


def _words(term: str) -> list[str]:
    return [w for w in term.replace("*", " ").replace("+", " ").replace("-", " ").split() if w.islower()]


@st.composite
def random_cascades(draw) -> tuple[str, dict[str, int]]:
    shapes = {"M": draw(st.integers(1, 5)), "N": draw(st.integers(1, 3)), "P": draw(st.integers(1, 3)),
              "M0": draw(st.integers(1, 3))}
    split = draw(st.booleans())
    reads = draw(st.lists(st.sampled_from(SPLIT_READS if split else M_READS), min_size=1, max_size=3, unique=True))
    first, lhs = draw(_einsum("T", reads, ["n", "p"]))
    outputs, lines = [], [first]
    t_ranks = [v.upper() for v in lhs]
    merged = split and "m1" in lhs and lhs.index("m1") + 1 < len(lhs) and lhs[lhs.index("m1") + 1] == "m0"
    if merged and draw(st.booleans()):  # an output declared [.., M, ..] written through m1, m0
        t_ranks[lhs.index("m1"): lhs.index("m1") + 2] = ["M"]
        lhs = [v for v in lhs if v != "m0"]
        lhs[lhs.index("m1")] = "m"
        merged = False
    if draw(st.booleans()):
        outputs.append(f"T[{', '.join(t_ranks)}]")
    if not outputs or draw(st.booleans()):
        t_read = f"T[{', '.join(lhs)}]"
        if merged and draw(st.booleans()):  # read T[M1, M0, ..] as T[m, ..]
            i = lhs.index("m1")
            t_read = f"T[{', '.join(lhs[:i] + ['m'] + lhs[i + 2:])}]"
        extra = draw(st.lists(st.sampled_from(M_READS if "m" in _variables_of(t_read) or not split else SPLIT_READS),
                              max_size=1))
        second, y_lhs = draw(_einsum("Y", [t_read] + [r for r in extra if r != t_read], ["n", "p"]))
        lines.append(second)
        outputs.append(f"Y[{', '.join(v.upper() for v in y_lhs)}]")
    text = "\n".join([
        "cascade random", "shape " + ", ".join(f"{r} = {n}" for r, n in shapes.items()), "split M = M1 * M0",
        "input A[M, N], B[N, P], C[P], D[M]", "output " + ", ".join(outputs), *lines, ""])
    return text, shapes


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_cascades(), st.integers(0, 2**16))
def test_random_cascades_match_brute_force(case, seed):
    text, _ = case
    spec = cascade.loads(text)  # every generated cascade is valid
    inputs = spec.random_inputs(seed=seed)
    want = brute_force(spec.cascade, dict(spec.shapes), inputs)
    got = spec.run(inputs)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-9, err_msg=f"{name}\n{text}")

