"""Tiles with every key masked (issue 12, item 2): a running max over an empty tile stays absent
and a step whose contribution is absent carries the old value, so strictly causal attention
(query 0 has no key) and a sliding window started at -inf (tiles before the window are empty)
give no NaN and raise no floating-point warning in 1-pass tiled form, in the reference and in
the generated executors, at ragged tiles. Independent NumPy: a masked softmax written
directly (oracles.masked_attention); a query with no key reads 0 (an absent output point)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.mapping.mapping_file import parse_mapping
from oracles import masked_attention

ROOT = Path(__file__).resolve().parent.parent
ATT = ROOT / "specs" / "attention"
ONE = "QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV"
CAUSAL = (ATT / "causal_1pass.einsum").read_text()
WINDOW = (ATT / "sliding_window_1pass.einsum").read_text()
CASES = {
    "strict": (CAUSAL.replace("m1*M0 + m0 <= p", "m1*M0 + m0 < p"), lambda m, p, w: m < p),
    "causal": (CAUSAL, lambda m, p, w: m <= p),
    "window_inf": (WINDOW, lambda m, p, w: (m <= p) & (p < m + w)),  # the bundled spec starts at -inf
    "window": (WINDOW.replace("RM[0, p]     = -inf", "RM[0, p]     = -1e30"), lambda m, p, w: (m <= p) & (p < m + w)),
}
MAPPINGS = {
    "default": "",
    "p_outer": f"partitioning: {{P: [uniform_shape(7)]}}\nloop-order: {{default: [P1, M1]}}\nfusion: [[{ONE}]]",
    "m_outer": f"partitioning: {{P: [uniform_shape(9)]}}\nloop-order: {{default: [M1, P1]}}\nfusion: [[{ONE}]]",
}


@pytest.mark.parametrize("mapping", sorted(MAPPINGS))
@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("m, p, m0, w", [(45, 38, 8, 9), (23, 41, 5, 3)])
def test_empty_tiles_give_no_nan_and_no_warning(kind, mapping, m, p, m0, w):
    text, keep = CASES[kind]
    shapes = dict(M=m, P=p, M0=m0, E=4, F=3) | ({"W": w} if kind.startswith("window") else {})
    spec = cascade.loads(text).with_shapes(**shapes)
    x = spec.random_inputs(seed=5)
    mk, pq = np.arange(m)[:, None], np.arange(p)[None, :]
    want = masked_attention(x["Q"], x["K"], x["V"], keep(mk, pq, w))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warning anywhere
        got = spec.run(x) if mapping == "default" else None
        executor = spec.executor(parse_mapping(MAPPINGS[mapping])).run(**x)
    for out in (got, executor):
        if out is None:
            continue
        assert not np.isnan(out["AV"]).any()
        np.testing.assert_allclose(out["AV"], want, rtol=1e-10, atol=1e-12)
    if kind == "strict":
        assert np.all(executor["AV"][:, 0] == 0)  # query 0: no key, an absent output point


def test_a_max_over_nothing_is_absent_but_reads_its_identity():
    """A reduction that reaches no present point is absent to what reads it, and an output
    reads the operator's identity there (unchanged: -inf for a max over nothing)."""
    spec = cascade.loads("""
        shape M = 3, P = 4
        input X[M, P]
        output E[P], F[P]
        E[p] = X[m, p] :: max(m) where m < p - 1
        F[p] = exp(E[p])
    """)
    x = spec.random_inputs(seed=0)["X"]
    for out in (spec.run({"X": x}), spec.executor(parse_mapping("")).run(X=x)):
        np.testing.assert_array_equal(out["E"], [-np.inf, -np.inf, x[0, 2], x[:2, 3].max()])
        np.testing.assert_allclose(out["F"], [0, 0, np.exp(x[0, 2]), np.exp(x[:2, 3].max())])


SELECT = """shape M = 7, P = 10
input X[M, P]
output Z[P]
XF[m, p] = X[m, p] where m <= p and p < m + 3
R[p] = XF[m, p] :: max(m)
Z[p] = select(p < M + 2, R[p] + 1, -inf)
"""


@pytest.mark.parametrize("mapping", ["", "partitioning: {P: [uniform_shape(4)]}"])
def test_select_is_absent_only_where_its_chosen_operand_is(mapping):
    """`select(c, a, b)` merges absence by choice: where c holds it is `a` (absent where a is),
    elsewhere `b`. Rows p >= M + 2 have an empty window, so R is absent there and -inf is chosen;
    the reference and the executor both read -inf, not 0."""
    spec = cascade.loads(SELECT)
    x = spec.random_inputs(seed=3)["X"]
    m, p = np.arange(7)[:, None], np.arange(10)[None, :]
    keep = (m <= p) & (p < m + 3)
    want = np.where(np.arange(10) < 9, np.max(np.where(keep, x, -np.inf), axis=0) + 1, -np.inf)
    assert np.isneginf(want[-1]) and np.isfinite(want[:-1]).all()
    for got in (spec.run({"X": x})["Z"], spec.executor(parse_mapping(mapping)).run(X=x)["Z"]):
        np.testing.assert_array_equal(got, want)
