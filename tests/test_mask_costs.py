"""Masks are costed (issue 12, item 4; Why 3): operations are charged only at present points, the
count of a `where` band is a closed form (a triangle for `m <= p`), causal attention costs
(N+1)/(2N) of dense attention's macs, and every count is checked against brute-force enumeration
of the filter written independently here."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cascade
from cascade.mapping.mapping_file import parse_mapping
from cascade.mapping.schedule import bind_mapping, default_mapping
from cascade.model.presence import Band, band_points
from cascade.model.symbols import SymbolTable

TWO_PASS = """cascade causal_2pass
shape E = 8, F = 6, M = {m}, P = {p}
input Q[E, P], K[E, M], V[F, M]
output AV[F, P]
QK[m, p]  = Q[e, p] * K[e, m] {w}
GM[p]     = QK[m, p] :: max(m)
SN[m, p]  = exp(QK[m, p] - GM[p]) {w}
SD[p]     = SN[m, p]
SNV[f, p] = SN[m, p] * V[f, m] {w}
AV[f, p]  = SNV[f, p] / SD[p]
"""

ONE_PASS = """cascade causal_1pass
shape E = 8, F = 6, M = {m}, P = {p}, M0 = 5
split M = M1 * M0
input Q[E, P], K[E, M], V[F, M]
output AV[F, P]
QK[m1, m0, p]     = Q[e, p] * K[e, m1, m0] {w}
LM[m1, p]         = QK[m1, m0, p] :: max(m0)
init RM[0, p]     = -inf
RM[m1+1, p]       = max(RM[m1, p], LM[m1, p])
SLN[m1, m0, p]    = exp(QK[m1, m0, p] - RM[m1+1, p]) {w}
PRM[m1, p]        = exp(RM[m1, p] - RM[m1+1, p])
init RD[0, p]     = 0
SPD[m1, p]        = PRM[m1, p] * RD[m1, p]
SLD[m1, p]        = SLN[m1, m0, p]
RD[m1+1, p]       = SPD[m1, p] + SLD[m1, p]
init RNV[0, f, p] = 0
SPNV[m1, f, p]    = PRM[m1, p] * RNV[m1, f, p]
SLNV[m1, f, p]    = SLN[m1, m0, p] * V[f, m1, m0] {w}
RNV[m1+1, f, p]   = SPNV[m1, f, p] + SLNV[m1, f, p]
AV[f, p]          = RNV[M1, f, p] / RD[M1, p]
"""

ROOT = Path(__file__).resolve().parent.parent
SPACE = parse_mapping("spacetime: {default: {space: [P, M], time: [E, F]}}")


def ops(report, name=None):
    """{kind: count} over all units."""
    out: dict[str, float] = {}
    for unit in report.per_unit.values():
        for kind, n in unit["ops"].items():
            out[kind] = out.get(kind, 0) + n
    return out


def pairs(m, p, keep):
    return sum(1 for i, j in itertools.product(range(m), range(p)) if keep(i, j))


@pytest.mark.parametrize("n", [16, 100, 1024])
def test_causal_attention_costs_n_plus_1_over_2n_of_dense_macs(n):
    """Every mac of 2-pass attention is at a point (m, p) (QK's e, SN's exp, SNV's f), and the
    causal filter keeps N(N+1)/2 of the N^2: the ratio is exactly (N+1)/(2N), -> 1/2."""
    causal = cascade.loads(TWO_PASS.format(m=n, p=n, w="where m <= p")).estimate(SPACE, "fusemax")
    dense = cascade.loads(TWO_PASS.format(m=n, p=n, w="")).estimate(SPACE, "fusemax")
    assert ops(causal)["mac"] / ops(dense)["mac"] == pytest.approx((n + 1) / (2 * n), rel=1e-12)
    assert ops(causal)["divide"] == ops(dense)["divide"] == 6 * n  # AV: one per output point
    compute = lambda r: sum(g["compute_s"] for g in r.groups)
    assert compute(causal) < compute(dense) and causal.latency_s <= dense.latency_s


@pytest.mark.parametrize("m, p, w, keep", [
    (23, 17, "where m <= p", lambda i, j: i <= j),
    (17, 23, "where m <= p", lambda i, j: i <= j),
    (30, 30, "where m < p", lambda i, j: i < j),                       # strictly causal: row 0 empty
    (30, 25, "where m <= p and p < m + 4", lambda i, j: i <= j < i + 4),  # a sliding window
    (20, 26, "where p - 3 <= m and m <= p + 2", lambda i, j: j - 3 <= i <= j + 2),
])
def test_present_points_equal_enumeration(m, p, w, keep):
    report = cascade.loads(TWO_PASS.format(m=m, p=p, w=w)).estimate(SPACE, "fusemax")
    kept = pairs(m, p, keep)
    exp_macs = 6  # fusemax op_costs: exp = 6 mac + 1 add
    assert ops(report)["mac"] == (8 + exp_macs + 6) * kept      # QK (E), SN (exp), SNV (F)
    assert ops(report)["max"] == kept                           # GM over present QK points
    assert ops(report)["add"] == 2 * kept                       # exp's add, SD's sum


def test_the_split_form_of_the_causal_filter_counts_the_same_points():
    """1-pass attention filtered by `m1*M0 + m0 <= p`: QK, SLN and SLNV at present (m, p) only;
    the per-tile statements (LM over m0, the running max and sums) stay per (m1, p)."""
    m, p = 23, 19
    space = parse_mapping("spacetime: {default: {space: [P, M0], time: [M1, E, F]}}")
    causal = cascade.loads(ONE_PASS.format(m=m, p=p, w="where m1*M0 + m0 <= p")).estimate(space, "fusemax")
    dense = cascade.loads(ONE_PASS.format(m=m, p=p, w="")).estimate(space, "fusemax")
    saved = (m * p - pairs(m, p, lambda i, j: i <= j)) * (8 + 6 + 6)  # QK e, SLN exp, SLNV f
    assert ops(dense)["mac"] - ops(causal)["mac"] == saved


def test_symbolic_causal_count_is_the_triangle(capsys, tmp_path):
    from cascade.cli import main

    path = tmp_path / "causal.einsum"
    path.write_text(TWO_PASS.format(m=64, p=64, w="where m <= p"))
    assert main(["estimate", str(path), "-t", "fusemax", "--symbolic", "--json"]) == 0
    import json

    sym = json.loads(capsys.readouterr().out)["symbolic"]
    import sympy as sp

    e, mm, pp = sp.symbols("E M P", positive=True, integer=True)
    formula = sp.sympify(sym["QK.mac"], locals={"E": e, "M": mm, "P": pp})
    for n in (1, 7, 64):
        assert formula.subs({e: 8, mm: n, pp: n}) == 8 * n * (n + 1) // 2
    assert formula.subs({e: 1, mm: 10, pp: 4}) == pairs(10, 4, lambda i, j: i <= j)
    assert formula.subs({e: 1, mm: 4, pp: 10}) == pairs(4, 10, lambda i, j: i <= j)


@settings(max_examples=40, deadline=None)
@given(a=st.integers(1, 12), b=st.integers(1, 12), lo=st.one_of(st.none(), st.integers(-14, 14)),
       hi=st.one_of(st.none(), st.integers(-14, 14)))
def test_band_points_equal_enumeration(a, b, lo, hi):
    spec = cascade.loads(f"shape A = {a}, B = {b}\ninput X[A, B]\noutput Y[A, B]\nY[a, b] = X[a, b]\n")
    table = SymbolTable(bind_mapping(spec.semantics, default_mapping(), spec.shapes))
    formula = band_points(table, Band("A", "B", lo, hi))
    expected = pairs(a, b, lambda i, j: (lo is None or lo <= i - j) and (hi is None or i - j <= hi))
    assert formula.subs(table.substitutions()) == expected


def test_an_unmasked_cascade_costs_as_before():
    """No filter: every point present (the dense count E*M*P + ... is unchanged)."""
    dense = cascade.loads(TWO_PASS.format(m=12, p=9, w="")).estimate(SPACE, "fusemax")
    assert ops(dense)["mac"] == (8 + 6 + 6) * 12 * 9 and ops(dense)["max"] == 12 * 9


def test_the_search_formulas_agree_with_the_numeric_model_on_masks_hoists_and_accumulators():
    """The lambdified formulas a search scores candidates with apply the same rules: a causal
    1-pass cascade (bands over a split rank) with a hoisted scale, and a matmul whose K-tiled
    accumulator stays on chip, give the numeric model's latency and DRAM bytes."""
    from cascade.model.symbolic import cost_formulas, lambdify_cost
    from cascade.model.target import load_target

    target = load_target("fusemax")
    causal = ONE_PASS.replace("Q[e, p] * K[e, m1, m0]", "Q[e, p] * K[e, m1, m0] / sqrt(E)")
    cases = [
        (cascade.loads(causal.format(m=300, p=200, w="where m1*M0 + m0 <= p")),
         "partitioning: {P: [uniform_shape(64)], M: [uniform_shape(32)]}\nloop-order: {default: [P1, M1]}\n"
         "spacetime: {default: {space: [P0, M0], time: [P1, M1, E, F]}}\n"
         "fusion: [[QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV]]"),
        (cascade.loads("shape K = 300, M = 70, N = 90\ninput A[K, M], B[K, N]\noutput Z[M, N]\n"
                       "Z[m, n] = A[k, m] * B[k, n]\n"),
         "partitioning: {K: [uniform_shape(64)]}\nspacetime: {default: {space: [M, N], time: [K1, K0]}}"),
    ]
    for spec, text in cases:
        mapping = parse_mapping(text)
        formulas = cost_formulas(spec.bind(mapping), target)
        fn, names = lambdify_cost(formulas)
        latency, dram = fn(*[formulas.values[n] for n in names])
        report = spec.estimate(mapping, target)
        assert latency == pytest.approx(report.latency_s, rel=1e-12)
        assert dram == pytest.approx(report.dram_bytes, rel=1e-12)


def test_a_window_given_as_a_shape_is_a_band_in_that_shape():
    """`p < m + W` with W a shape: the count is a formula in W too, exact at every W."""
    import sympy as sp

    text = TWO_PASS.replace("M = {m}, P = {p}", "M = {m}, P = {p}, W = {w_}")
    for w in (1, 4, 9, 40):
        spec = cascade.loads(text.format(m=30, p=25, w_=w, w="where m <= p and p < m + W"))
        report = spec.estimate(SPACE, "fusemax", symbolic=True)
        assert ops(report)["max"] == pairs(30, 25, lambda i, j, w=w: i <= j < i + w)
    assert "W" in {str(s) for s in sp.sympify(report.symbolic["GM.max"]).free_symbols}


@pytest.mark.parametrize("n, m0, e, f", [(512, 128, 64, 64), (1000, 256, 16, 32), (96, 32, 8, 4)])
def test_bundled_causal_1pass_charges_only_the_triangle(n, m0, e, f):
    """specs/attention/causal_1pass.einsum filters QK alone; SLN = exp(QK - RM[m1+1, p]) is absent
    where QK is (RM supplies no points along m0: the union rule), and so are SLD and SLNV. Closed
    form: QK (E), SLN (exp: 6) and SLNV (F) macs on the N(N+1)/2 triangle; PRM (exp: 6), SPD (1)
    and SPNV (F) per tile and query, ceil(N/M0) * N, in both causal and dense."""
    mapping = parse_mapping(f"partitioning: {{M: [uniform_shape({m0})]}}\n"
                            "spacetime: {default: {space: [P, M0], time: [M1, E, F]}}")
    spec_dir = ROOT / "specs" / "attention"
    shapes = {"M": n, "P": n, "E": e, "F": f}
    causal = cascade.load(spec_dir / "causal_1pass.einsum", shapes=shapes).estimate(mapping, "fusemax")
    dense = cascade.load(spec_dir / "attention_1pass.einsum", shapes=shapes).estimate(mapping, "fusemax")
    per_tile = (f + 7) * -(-n // m0) * n
    assert ops(causal)["mac"] == (e + f + 6) * pairs(n, n, lambda i, j: i <= j) + per_tile
    assert ops(dense)["mac"] == (e + f + 6) * n * n + per_tile


def test_a_union_with_an_operand_that_can_stand_alone_is_not_masked():
    """`QK[m, p] + X[m, p]`: X reads every variable QK reads, so it fills QK's absent points and
    S is charged everywhere; `QK[m, p] - G[p]` (G broadcast over m) stays on the triangle."""
    text = """cascade u
shape E = 4, M = 12, P = 12
input Q[E, P], K[E, M], X[M, P], G[P]
output Y[P], Z[P]
QK[m, p] = Q[e, p] * K[e, m] where m <= p
S[m, p]  = exp(QK[m, p] + X[m, p])
R[m, p]  = exp(QK[m, p] - G[p])
Y[p]     = S[m, p]
Z[p]     = R[m, p]
"""
    space = parse_mapping("spacetime: {default: {space: [P, M], time: [E]}}")
    report = cascade.loads(text).estimate(space, "fusemax")
    tri = pairs(12, 12, lambda i, j: i <= j)
    assert ops(report)["mac"] == 4 * tri + 6 * 144 + 6 * tri  # QK (E), S's exp everywhere, R's exp on the triangle
