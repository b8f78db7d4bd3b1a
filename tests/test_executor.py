"""Generated executors against the reference evaluator, spec x mapping by spec x mapping.

Every bundled spec x bundled mapping, every bundled spec with the default mapping, every corpus
cascade (tests/cascades) with the default mapping, and a table of further (spec, mapping) pairs
written out below: ragged and multi-level partitions, loop orders in both nestings, fusion
groups of every shape for the 3-, 2- and 1-pass forms, accumulation across a loop, filters,
recurrences, split and merged views, batched forms and max/min/prod reductions. Each runs in
float64 (rtol 1e-9) and in float32 (against the float64 reference, rtol 1e-4).

The trace tests compare the executor's DRAM counts with closed forms derived by hand from the
loop nest (`cascade map`), never with the code's own output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.mapping.mapping_file import Mapping, load_mapping, parse_mapping

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MAPPINGS = ROOT / "mappings"
CORPUS = ROOT / "tests" / "cascades"

BUNDLED_SPECS = sorted(SPECS.rglob("*.einsum"))
BUNDLED_MAPPINGS = sorted(MAPPINGS.glob("*/*.yaml"))


# ------------------------------------------------------------------ the check


def load_spec(spec: str | Path, shapes: dict[str, int] | None = None) -> cascade.Spec:
    """A bundled/corpus path (relative to the repository) or inline `.einsum` text."""
    if isinstance(spec, str) and "\n" in spec:
        return cascade.loads(spec, shapes, file="<inline>")
    path = Path(spec)
    return cascade.load(path if path.is_absolute() else ROOT / path, shapes)


def as_mapping(mapping: str | Path | Mapping | None) -> Mapping:
    if mapping is None:
        return Mapping()
    if isinstance(mapping, Mapping):
        return mapping
    if isinstance(mapping, Path):
        return load_mapping(mapping)
    return parse_mapping(mapping, "<inline mapping>")


def reference_spec(spec: cascade.Spec, mapping: Mapping) -> cascade.Spec:
    """The spec at the shapes the mapping implies: partitioning a rank the cascade splits
    itself (`split M = M1 * M0`) sets the tile shape M0 (DESIGN.md section 4), which changes the
    shape of tensors such as TS[M1, P]; the reference must evaluate the same cascade."""
    tiles = {spec.semantics.splits[r][1]: levels[0] for r, levels in mapping.partitioning.items()
             if r in spec.semantics.splits}
    return spec.with_shapes(**tiles) if tiles else spec


def assert_close(got: dict, want: dict, rtol: float, dtype) -> None:
    assert set(got) == set(want), f"outputs {sorted(got)} != {sorted(want)}"
    for name, expected in want.items():
        actual = np.asarray(got[name])
        assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
        assert actual.dtype == dtype, f"{name}: dtype {actual.dtype}, inputs were {np.dtype(dtype)}"
        finite = np.abs(expected[np.isfinite(expected)])
        scale = float(finite.max()) if finite.size else 1.0
        atol = (1e-12 if dtype == np.float64 else rtol) * max(scale, 1.0)  # for entries near 0 (cancellation)
        np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=rtol, atol=atol, err_msg=name)


def check_executor(spec: cascade.Spec, mapping: str | Path | Mapping | None, seed: int = 0,
                   dtypes=(np.float64, np.float32)) -> None:
    """Run the generated executor and the reference evaluator on the same inputs."""
    m = as_mapping(mapping)
    spec = reference_spec(spec, m)
    module = spec.executor(m)
    inputs = spec.random_inputs(seed)
    for dtype in dtypes:
        given = {k: v.astype(dtype) for k, v in inputs.items()}
        want = spec.run({k: v.astype(np.float64) for k, v in given.items()})
        with np.errstate(all="ignore"):
            got = module.run(**given)
        assert_close(got, want, 1e-9 if dtype == np.float64 else 1e-4, dtype)


# ------------------------------------------------------------------ bundled specs and mappings


def bundled_pairs() -> list[tuple[Path, Path]]:
    """Each bundled mapping with the spec it is written for (mappings/<cascade>/<name>.yaml)."""
    by_stem = {p.stem: p for p in BUNDLED_SPECS}
    return [(by_stem[m.parent.name], m) for m in BUNDLED_MAPPINGS]


def test_every_bundled_mapping_has_its_spec():
    assert len(BUNDLED_MAPPINGS) >= 6
    assert all(m.parent.name in {p.stem for p in BUNDLED_SPECS} for m in BUNDLED_MAPPINGS)


@pytest.mark.parametrize("spec_path, mapping_path", bundled_pairs(),
                         ids=[f"{s.stem}-{m.stem}" for s, m in bundled_pairs()])
def test_bundled_mapping_at_default_shapes(spec_path, mapping_path):
    check_executor(cascade.load(spec_path), mapping_path, dtypes=(np.float64,))  # float32: at ragged shapes


# Ragged shapes: no tile of the bundled mappings divides these.
RAGGED = {"M": 300, "P": 270, "E": 5, "F": 3, "B": 2, "H": 3}


@pytest.mark.parametrize("spec_path, mapping_path", bundled_pairs(),
                         ids=[f"{s.stem}-{m.stem}" for s, m in bundled_pairs()])
def test_bundled_mapping_at_ragged_shapes(spec_path, mapping_path):
    spec = cascade.load(spec_path)
    fixed = spec.semantics.fixed_splits()  # GQA's H = G * R: the whole stays a multiple of its part
    shapes = {r: n for r, n in RAGGED.items() if r in spec.shapes and r not in fixed}
    check_executor(spec.with_shapes(**shapes), mapping_path, seed=1)


@pytest.mark.parametrize("spec_path", BUNDLED_SPECS, ids=[p.stem for p in BUNDLED_SPECS])
def test_bundled_spec_with_default_mapping(spec_path):
    spec = cascade.load(spec_path)
    outer_parts = {outer for outer, _ in spec.semantics.splits.values()}  # derived: M1 = ceil(M / M0)
    small = {r: min(n, 19) for r, n in spec.shapes.items() if r not in outer_parts}
    small.update({inner: 4 for _, inner in spec.semantics.splits.values()})  # ragged: 4 does not divide 19
    check_executor(spec.with_shapes(**small), None)
    check_executor(spec.with_shapes(**small), "")  # an empty file is the default mapping too


@pytest.mark.parametrize("spec_path", sorted(CORPUS.glob("*.einsum")), ids=lambda p: p.stem)
def test_corpus_cascade_with_default_mapping(spec_path):
    check_executor(cascade.load(spec_path), None)


# ------------------------------------------------------------------ inline specs

CAUSAL_2PASS = """
cascade causal_2pass
shape E = 4, F = 3, M = 13, P = 13
input Q[E, P], K[E, M], V[F, M]
output AV[F, P]
QK[m, p]  = Q[e, p] * K[e, m] where m <= p
GM[p]     = QK[m, p] :: max(m)
SN[m, p]  = exp(QK[m, p] - GM[p])
SD[p]     = SN[m, p]
SNV[f, p] = SN[m, p] * V[f, m]
AV[f, p]  = SNV[f, p] / SD[p]
"""

# Masked on the split coordinates; tile m1 = 0 always holds key 0 <= p, so RM never stays -inf.
CAUSAL_1PASS = """
cascade causal_1pass
shape E = 4, F = 3, M = 13, P = 13, M0 = 4
split M = M1 * M0
input Q[E, P], K[E, M], V[F, M]
output AV[F, P]
QK[m1, m0, p]     = Q[e, p] * K[e, m1, m0] where m1*M0 + m0 <= p
LM[m1, p]         = QK[m1, m0, p] :: max(m0)
init RM[0, p]     = -inf
RM[m1+1, p]       = max(RM[m1, p], LM[m1, p])
SLN[m1, m0, p]    = exp(QK[m1, m0, p] - RM[m1+1, p])
PRM[m1, p]        = exp(RM[m1, p] - RM[m1+1, p])
init RD[0, p]     = 0
SLD[m1, p]        = SLN[m1, m0, p]
RD[m1+1, p]       = PRM[m1, p] * RD[m1, p] + SLD[m1, p]
init RNV[0, f, p] = 0
SLNV[m1, f, p]    = SLN[m1, m0, p] * V[f, m1, m0]
RNV[m1+1, f, p]   = PRM[m1, p] * RNV[m1, f, p] + SLNV[m1, f, p]
AV[f, p]          = RNV[M1, f, p] / RD[M1, p]
"""
CAUSAL_1PASS_ALL = "[[QK, LM, RM, SLN, PRM, SLD, RD, SLNV, RNV, AV]]"

WINDOW_3PASS = """
cascade window_3pass
shape E = 3, F = 2, M = 14, P = 14
input Q[E, P], K[E, M], V[F, M]
output AV[F, P]
QK[m, p] = Q[e, p] * K[e, m] where m <= p and p < m + 5
GM[p]    = QK[m, p] :: max(m)
SN[m, p] = exp(QK[m, p] - GM[p])
SD[p]    = SN[m, p]
A[m, p]  = SN[m, p] / SD[p]
AV[f, p] = A[m, p] * V[f, m]
"""

# Whole key tiles can lie outside a query's window: the running max starts finite.
WINDOW_1PASS = """
cascade window_1pass
shape E = 3, F = 2, M = 14, P = 14, M0 = 3
split M = M1 * M0
input Q[E, P], K[E, M], V[F, M]
output AV[F, P]
QK[m1, m0, p]     = Q[e, p] * K[e, m1, m0] where m1*M0 + m0 <= p and p < m1*M0 + m0 + 4
LM[m1, p]         = QK[m1, m0, p] :: max(m0)
init RM[0, p]     = -1e30
RM[m1+1, p]       = max(RM[m1, p], LM[m1, p])
SLN[m1, m0, p]    = exp(QK[m1, m0, p] - RM[m1+1, p])
PRM[m1, p]        = exp(RM[m1, p] - RM[m1+1, p])
init RD[0, p]     = 0
SLD[m1, p]        = SLN[m1, m0, p]
RD[m1+1, p]       = PRM[m1, p] * RD[m1, p] + SLD[m1, p]
init RNV[0, f, p] = 0
SLNV[m1, f, p]    = SLN[m1, m0, p] * V[f, m1, m0]
RNV[m1+1, f, p]   = PRM[m1, p] * RNV[m1, f, p] + SLNV[m1, f, p]
AV[f, p]          = RNV[M1, f, p] / RD[M1, p]
"""

# Split views: an input read split (K[e, m1, m0]), an output written through a split view
# (S declared [M, P]), an intermediate written split and read merged (T), one written merged and
# read split (U), and a per-tile reduction.
SPLIT_VIEWS = """
cascade split_views
shape E = 3, M = 11, P = 5, M0 = 4
split M = M1 * M0
input K[E, M], X[M, P]
output S[M, P], Y[M, P], Z[M1, P]
S[m1, m0, p] = K[e, m1, m0] * X[m1, m0, p]
T[m1, m0, p] = 2 * X[m1, m0, p] + S[m1, m0, p]
U[m, p]      = T[m, p] * X[m, p]
Y[m, p]      = U[m, p] - T[m, p]
Z[m1, p]     = U[m1, m0, p] :: max(m0)
"""

REDUCTIONS = """
cascade reductions
shape M = 9, N = 5, P = 4
input X[M, N, P]
output MX[P], MN[N, P], PR[N], SM[P]
MX[p]    = X[m, n, p] :: max(m, n)
MN[n, p] = X[m, n, p] :: min(m)
PR[n]    = 0.5 + 0.25 * X[m, n, p] :: prod(m, p)
SM[p]    = abs(X[m, n, p]) :: sum(n, m)
"""

# A recurrence whose every step is read (S[t+1, d]) and whose last element is read (S[T, d]).
RECURRENCE = """
cascade recurrence
shape T = 9, D = 5
input X[T, D]
output Y[T, D], G[D]
init S[0, d] = 0
S[t+1, d]    = 0.75 * S[t, d] + X[t, d]
Y[t, d]      = S[t+1, d] * X[t, d]
G[d]         = S[T, d] + S[t, d] :: max(t)
"""

BATCHED = """
cascade batched
shape B = 3, H = 2, M = 5, K = 7, N = 4
input A[B, H, M, K], X[B, H, K, N], S[H]
output Z[B, H, M, N]
Z[b, h, m, n] = S[h] * A[b, h, m, k] * X[b, h, k, n]
"""

# A recurrence over the INNER part of a split (restarted in every tile), read at m0+1.
SEGMENTED = """
cascade segmented
shape M = 10, P = 3, M0 = 4
split M = M1 * M0
input X[M, P]
output Y[M1, M0, P]
init R[m1, 0, p] = 0
R[m1, m0+1, p]   = R[m1, m0, p] + X[m1, m0, p]
Y[m1, m0, p]     = 2 * R[m1, m0+1, p]
"""

A3 = "specs/attention/attention_3pass.einsum"
A2 = "specs/attention/attention_2pass.einsum"
A1 = "specs/attention/attention_1pass.einsum"
MHA1 = "specs/attention/mha_1pass.einsum"
MHA2 = "specs/attention/mha_2pass.einsum"
MHA3 = "specs/attention/mha_3pass.einsum"
SMALL = {"E": 5, "F": 4, "M": 13, "P": 11}
SMALL_MHA = {"B": 2, "H": 3, "E": 3, "F": 2, "M": 10, "P": 7}
A3_ALL = "[[QK, GM, SN, SD, A, AV]]"
A2_ALL = "[[QK, GM, SN, SD, SNV, AV]]"
A1_ALL = "[[QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV]]"


@dataclass(frozen=True)
class Case:
    id: str
    spec: str
    mapping: str
    shapes: dict | None = None


CASES = [
    # --- the 3-pass form
    Case("3pass-ragged-unfused", A3, "partitioning: {P: [uniform_shape(7)], M: [uniform_shape(5)]}", SMALL),
    Case("3pass-multilevel-M-P1-outer", A3, f"""
partitioning: {{P: [uniform_shape(8)], M: [uniform_shape(8), uniform_shape(2)]}}
loop-order: {{default: [P1, M2, M1]}}
fusion: {A3_ALL}""", SMALL),
    Case("3pass-whole-M1-outside-P1", A3, f"""
partitioning: {{P: [uniform_shape(4)], M: [uniform_shape(5)]}}
loop-order: {{default: [M1, P1]}}
fusion: {A3_ALL}""", SMALL),
    Case("3pass-whole-P1-outside-M1", A3, f"""
partitioning: {{P: [uniform_shape(4)], M: [uniform_shape(5)]}}
loop-order: {{default: [P1, M1, P0, M0, E, F]}}
fusion: {A3_ALL}""", SMALL),
    Case("3pass-pairs", A3, """
partitioning: {P: [uniform_shape(4)], M: [uniform_shape(5)]}
fusion: [[QK, GM], [SN, SD], [A, AV]]""", SMALL),
    Case("3pass-partial-group", A3, "partitioning: {M: [uniform_shape(5)]}\nfusion: [[SN, SD, A]]", SMALL),
    Case("3pass-E-F-partitioned-accumulate", A3, f"""
partitioning: {{E: [uniform_shape(2)], F: [uniform_shape(3)], M: [uniform_shape(4)]}}
loop-order: {{default: [F1, M1, E1]}}
fusion: {A3_ALL}""", SMALL),
    # --- the 2-pass form
    Case("2pass-whole-P1-outside-M1", A2, f"""
partitioning: {{P: [uniform_shape(4)], M: [uniform_shape(5)]}}
loop-order: {{default: [P1, M1]}}
fusion: {A2_ALL}""", SMALL),
    Case("2pass-whole-M1-outside-P1", A2, f"""
partitioning: {{P: [uniform_shape(4)], M: [uniform_shape(5)]}}
loop-order: {{default: [M1, P1]}}
fusion: {A2_ALL}""", SMALL),
    Case("2pass-multilevel-M-groups", A2, """
partitioning: {M: [uniform_shape(6), uniform_shape(2)]}
fusion: [[QK, GM], [SN, SD, SNV], [AV]]""", SMALL),
    Case("2pass-partial-group-P-tiles", A2, "partitioning: {P: [uniform_shape(3)]}\nfusion: [[SN, SD]]", SMALL),
    # --- the 1-pass form
    Case("1pass-split-only", A1, "partitioning: {M: [uniform_shape(4)]}", SMALL),
    Case("1pass-whole-P1-outside-M1", A1, f"""
partitioning: {{M: [uniform_shape(4)], P: [uniform_shape(5)]}}
loop-order: {{default: [P1, M1, P0, M0, E, F]}}
fusion: {A1_ALL}""", SMALL),
    Case("1pass-whole-M1-outside-P1", A1, f"""
partitioning: {{M: [uniform_shape(4)], P: [uniform_shape(5)]}}
loop-order: {{default: [M1, P1]}}
fusion: {A1_ALL}""", SMALL),
    Case("1pass-multilevel-P", A1, f"""
partitioning: {{M: [uniform_shape(4)], P: [uniform_shape(8), uniform_shape(2)]}}
loop-order: {{default: [P2, M1, P1]}}
fusion: {A1_ALL}""", SMALL),
    Case("1pass-recurrence-groups", A1, """
partitioning: {M: [uniform_shape(3)], P: [uniform_shape(4)]}
fusion: [[QK, LM], [RM], [SLN, PRM], [SLD, SPD, RD], [SLNV, SPNV, RNV], [AV]]""", SMALL),
    Case("1pass-two-halves", A1, """
partitioning: {M: [uniform_shape(3)], P: [uniform_shape(4)]}
fusion: [[QK, LM, RM, SLN, PRM], [SLD, SPD, RD, SLNV, SPNV, RNV, AV]]""", SMALL),
    Case("1pass-tile-larger-than-M", A1, f"partitioning: {{M: [uniform_shape(32)]}}\nfusion: {A1_ALL}", SMALL),
    Case("1pass-E-F-partitioned", A1, f"""
partitioning: {{E: [uniform_shape(2)], F: [uniform_shape(3)], M: [uniform_shape(4)], P: [uniform_shape(3)]}}
loop-order: {{default: [F1, P1, E1, M1]}}
fusion: {A1_ALL}""", SMALL),
    # --- batched / multi-head
    Case("mha1-heads-inside-P1", MHA1, f"""
partitioning: {{B: [uniform_shape(1)], H: [uniform_shape(2)], M: [uniform_shape(3)], P: [uniform_shape(4)]}}
loop-order: {{default: [P1, H1, B1, M1]}}
fusion: {A1_ALL}""", SMALL_MHA),
    Case("mha1-M1-outside-heads", MHA1, f"""
partitioning: {{H: [uniform_shape(2)], M: [uniform_shape(3)]}}
loop-order: {{default: [M1, H1]}}
fusion: {A1_ALL}""", SMALL_MHA),
    Case("mha2-whole-batch-loop", MHA2, f"""
partitioning: {{B: [uniform_shape(1)], M: [uniform_shape(4)], P: [uniform_shape(4)]}}
loop-order: {{default: [B1, M1, P1]}}
fusion: {A2_ALL}""", SMALL_MHA),
    Case("mha3-multilevel-heads-groups", MHA3, """
partitioning: {H: [uniform_shape(2), uniform_shape(1)], M: [uniform_shape(4)]}
fusion: [[QK, GM], [SN, SD, A], [AV]]""", SMALL_MHA),
    Case("batched-matmul-K1-outermost", BATCHED, """
partitioning: {B: [uniform_shape(1)], H: [uniform_shape(1)], K: [uniform_shape(3)]}
loop-order: {default: [K1, H1, B1]}"""),
    # --- matmul: accumulation across a loop
    Case("matmul-K1-outermost", "specs/matmul.einsum", """
partitioning: {K: [uniform_shape(5)]}
loop-order: {default: [K1, M, N, K0]}""", {"K": 17, "M": 6, "N": 7}),
    Case("matmul-K-multilevel-outermost", "specs/matmul.einsum", """
partitioning: {K: [uniform_shape(8), uniform_shape(4)], M: [uniform_shape(4)]}
loop-order: {default: [K2, M1, K1, N, M0, K0]}""", {"K": 17, "M": 6, "N": 7}),
    Case("matmul-all-partitioned-N1-K1-M1", "specs/matmul.einsum", """
partitioning: {K: [uniform_shape(4)], M: [uniform_shape(4)], N: [uniform_shape(3)]}
loop-order: {default: [N1, K1, M1]}""", {"K": 17, "M": 6, "N": 7}),
    # --- filters
    Case("causal2-whole-fused", CAUSAL_2PASS, f"partitioning: {{M: [uniform_shape(4)], P: [uniform_shape(5)]}}\n"
                                              f"fusion: {A2_ALL}"),
    Case("causal2-M1-outer-two-groups", CAUSAL_2PASS, """
partitioning: {M: [uniform_shape(4)], P: [uniform_shape(5)]}
loop-order: {default: [M1, P1]}
fusion: [[QK, GM], [SN, SD, SNV, AV]]"""),
    Case("causal1-whole-fused", CAUSAL_1PASS, f"partitioning: {{M: [uniform_shape(3)], P: [uniform_shape(4)]}}\n"
                                              f"fusion: {CAUSAL_1PASS_ALL}"),
    Case("causal1-M1-outside-P1", CAUSAL_1PASS, f"""
partitioning: {{M: [uniform_shape(3)], P: [uniform_shape(4)]}}
loop-order: {{default: [M1, P1]}}
fusion: {CAUSAL_1PASS_ALL}"""),
    Case("causal1-unfused", CAUSAL_1PASS, "partitioning: {M: [uniform_shape(5)]}"),
    Case("window3-whole-fused", WINDOW_3PASS, f"partitioning: {{M: [uniform_shape(4)], P: [uniform_shape(3)]}}\n"
                                              f"fusion: {A3_ALL}"),
    Case("window3-pairs", WINDOW_3PASS, """
partitioning: {M: [uniform_shape(4)], P: [uniform_shape(3)]}
fusion: [[QK, GM], [SN, SD], [A, AV]]"""),
    Case("window1-whole-fused", WINDOW_1PASS, f"partitioning: {{M: [uniform_shape(3)], P: [uniform_shape(5)]}}\n"
                                              f"fusion: {CAUSAL_1PASS_ALL}"),
    Case("window1-unfused-ragged", WINDOW_1PASS, "partitioning: {M: [uniform_shape(4)], P: [uniform_shape(6)]}"),
    # --- recurrences with fused and unfused readers; the online softmax
    Case("recurrence-readers-fused", RECURRENCE, "partitioning: {D: [uniform_shape(2)]}\nfusion: [[S, Y, G]]"),
    Case("recurrence-readers-unfused", RECURRENCE, "partitioning: {D: [uniform_shape(3)]}"),
    Case("recurrence-D1-inside-T", RECURRENCE, """
partitioning: {D: [uniform_shape(2)]}
loop-order: {default: [T, D1]}
fusion: [[S, Y]]"""),
    Case("online-softmax-fused", "specs/softmax_online.einsum", """
partitioning: {P: [uniform_shape(3)]}
fusion: [[RM, RD, Y]]""", {"M": 9, "P": 7}),
    Case("online-softmax-unfused", "specs/softmax_online.einsum", "partitioning: {P: [uniform_shape(3)]}",
         {"M": 9, "P": 7}),
    Case("online-softmax-recurrences-fused-reader-apart", "specs/softmax_online.einsum", "fusion: [[RM, RD]]",
         {"M": 9, "P": 7}),
    Case("online-softmax-M-outside-P1", "specs/softmax_online.einsum", """
partitioning: {P: [uniform_shape(3)]}
loop-order: {default: [M, P1]}
fusion: [[RM, RD, Y]]""", {"M": 9, "P": 7}),
    Case("softmax3-multilevel-fused", "specs/softmax_3pass.einsum", """
partitioning: {M: [uniform_shape(4), uniform_shape(2)]}
fusion: [[GM, SN, SD, Y]]""", {"M": 11, "P": 5}),
    # --- split views, merged reads, outputs through a split view
    Case("split-views-fused", SPLIT_VIEWS, "partitioning: {M: [uniform_shape(3)]}\nfusion: [[S, T, U, Y, Z]]"),
    Case("split-views-pairs-P-tiles", SPLIT_VIEWS, """
partitioning: {M: [uniform_shape(4)], P: [uniform_shape(2)]}
fusion: [[S, T], [U, Y, Z]]"""),
    Case("split-views-P1-outside-M1", SPLIT_VIEWS, """
partitioning: {M: [uniform_shape(2)], P: [uniform_shape(3)], E: [uniform_shape(2)]}
loop-order: {default: [P1, M1, E1]}"""),
    # --- reductions with max / min / prod across loops
    Case("reductions-across-loops", REDUCTIONS, """
partitioning: {M: [uniform_shape(2)], N: [uniform_shape(3)], P: [uniform_shape(3)]}
loop-order: {default: [M1, N1, P1]}"""),
    Case("reductions-multilevel-fused", REDUCTIONS, """
partitioning: {M: [uniform_shape(4), uniform_shape(2)], P: [uniform_shape(2)]}
loop-order: {default: [P1, M2, M1]}
fusion: [[MX, MN, PR, SM]]"""),
    Case("inner-split-recurrence-unfused", SEGMENTED, "partitioning: {P: [uniform_shape(2)]}"),
    Case("inner-split-recurrence-fused", SEGMENTED, """
partitioning: {M: [uniform_shape(3)], P: [uniform_shape(2)]}
loop-order: {default: [P1, M1, M0]}
fusion: [[R, Y]]"""),
    # --- the bundled mappings' vocabulary on other shapes of the same cascades
    Case("scores-softmax-M1-outside-P1", "specs/attention/scores_softmax.einsum", """
partitioning: {P: [uniform_shape(4)], M: [uniform_shape(3)]}
loop-order: {default: [M1, P1]}
fusion: [[QK, S, GM, SN, SD, A]]""", {"E": 4, "M": 10, "P": 9}),
]


def test_enough_further_pairs():
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_inline_pair(case: Case):
    check_executor(load_spec(case.spec, case.shapes), case.mapping)


def test_mapping_object_and_file_agree(tmp_path):
    """A mapping given as a file, as text through parse_mapping, or as a Mapping: one executor."""
    text = f"partitioning: {{M: [uniform_shape(3)], P: [uniform_shape(4)]}}\nfusion: {A1_ALL}\n"
    path = tmp_path / "m.yaml"
    path.write_text(text)
    spec = load_spec(A1, SMALL)
    inputs = reference_spec(spec, parse_mapping(text)).random_inputs(3)
    outs = [spec.executor(m).run(**inputs)["AV"] for m in (str(path), path, parse_mapping(text, str(path)))]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_shapes_are_taken_from_the_inputs():
    """A module compiled at one shape runs at another (tile shapes stay fixed)."""
    spec = load_spec(A1, SMALL)
    mapping = f"partitioning: {{M: [uniform_shape(4)], P: [uniform_shape(5)]}}\nfusion: {A1_ALL}"
    module = spec.executor(as_mapping(mapping))
    other = reference_spec(spec.with_shapes(M=23, P=9), as_mapping(mapping))
    inputs = other.random_inputs(5)
    assert_close(module.run(**inputs), other.run(inputs), 1e-9, np.float64)


# ------------------------------------------------------------------ trace counts: hand-derived closed forms


def trace_of(spec: cascade.Spec, mapping) -> tuple[dict, dict]:
    m = as_mapping(mapping)
    module = reference_spec(spec, m).executor(m)
    _, trace = module.run_traced(**reference_spec(spec, m).random_inputs(0))
    return trace["reads"], trace["writes"]


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def test_trace_1pass_tiled():
    E, F, M, P, M0, P0 = 3, 2, 10, 7, 4, 3
    spec = load_spec(A1, {"E": E, "F": F, "M": M, "P": P})
    reads, writes = trace_of(spec, f"""
partitioning: {{M: [uniform_shape({M0})], P: [uniform_shape({P0})]}}
loop-order: {{default: [P1, M1, P0, M0, E, F]}}
fusion: {A1_ALL}""")
    # for p1: Q[:, p-tile] is loaded once; for m1: the K and V tiles of that key block
    assert reads == {"Q": E * P,                      # each Q column once (its p1 tile)
                     "K": E * M * cdiv(P, P0),        # all of K once per query tile
                     "V": F * M * cdiv(P, P0)}        # all of V once per query tile
    assert writes == {"AV": F * P}                    # AV written once, after the M1 loop


def test_trace_bundled_tiled_mapping_at_default_shapes():
    spec = cascade.load(SPECS / "attention" / "attention_1pass.einsum")
    s = spec.shapes
    reads, writes = trace_of(spec, MAPPINGS / "attention_1pass" / "tiled.yaml")
    # tiled.yaml: P0 = 256 query columns per p1; K and V streamed once per query tile
    assert reads == {"Q": s["E"] * s["P"], "K": s["E"] * s["M"] * cdiv(s["P"], 256),
                     "V": s["F"] * s["M"] * cdiv(s["P"], 256)}
    assert writes == {"AV": s["F"] * s["P"]}


def test_trace_3pass_unfused_default_mapping():
    E, F, M, P = 3, 2, 10, 7
    reads, writes = trace_of(load_spec(A3, {"E": E, "F": F, "M": M, "P": P}), None)
    # every Einsum its own group with no loops: each reads its operands whole, writes its result whole
    assert writes == {"QK": M * P, "GM": P, "SN": M * P, "SD": P, "A": M * P, "AV": F * P}
    assert reads == {"Q": E * P, "K": E * M,
                     "QK": 2 * M * P,                 # read by GM and by SN
                     "GM": P, "SN": 2 * M * P,        # SN read by SD and by A
                     "SD": P, "A": M * P, "V": F * M}


# Inline mappings with the structure of the bundled ones (which may be retuned): per-head loops,
# FLAT's row blocks, FuseMax's stationary query tiles, Grayskull's two kernels.
PER_HEAD = "partitioning: {B: [uniform_shape(1)], H: [uniform_shape(1)]}\nloop-order: {default: [B1, H1]}"
MHA_SHAPES = {"B": 2, "H": 3, "E": 3, "F": 2, "M": 10, "P": 7}


def test_trace_per_head_unfused():
    B, H, E, F, M, P = MHA_SHAPES.values()
    reads, writes = trace_of(load_spec(MHA3, MHA_SHAPES), PER_HEAD)
    # each group loops over (b1, h1); per head exactly the unfused 3-pass counts above
    n = B * H
    assert writes == {"QK": n * M * P, "GM": n * P, "SN": n * M * P, "SD": n * P, "A": n * M * P, "AV": n * F * P}
    assert reads == {"Q": n * E * P, "K": n * E * M, "QK": 2 * n * M * P, "GM": n * P, "SN": 2 * n * M * P,
                     "SD": n * P, "A": n * M * P, "V": n * F * M}


def test_trace_flat_row_blocks():
    B, H, E, F, M, P = MHA_SHAPES.values()
    reads, writes = trace_of(load_spec(MHA3, MHA_SHAPES), f"""
partitioning: {{B: [uniform_shape(1)], H: [uniform_shape(1)], P: [uniform_shape(3)]}}
loop-order: {{default: [B1, H1, P1, P0, M, E, F, B0, H0]}}
fusion: {A3_ALL}""")
    # one group, loops b1, h1, p1; K and V depend only on (b, h): loaded once per head
    assert reads == {"Q": B * H * E * P, "K": B * H * E * M, "V": B * H * F * M}
    assert writes == {"AV": B * H * F * P}            # every intermediate stays on chip


def test_trace_fusemax_stationary_query_tiles():
    B, H, E, F, M, P = MHA_SHAPES.values()
    P2, M0 = 4, 3
    reads, writes = trace_of(load_spec(MHA1, MHA_SHAPES), f"""
partitioning: {{B: [uniform_shape(1)], H: [uniform_shape(1)], P: [uniform_shape({P2}), uniform_shape(2)],
               M: [uniform_shape({M0})]}}
loop-order: {{default: [B1, H1, P2, M1, P1]}}
fusion: {A1_ALL}""")
    # for (b1, h1, p2): the P2 block of Q stays on chip while m1 streams every K and V tile past
    # it once and p1 walks the block inside each m1
    assert reads == {"Q": B * H * E * P, "K": B * H * E * M * cdiv(P, P2), "V": B * H * F * M * cdiv(P, P2)}
    assert writes == {"AV": B * H * F * P}


def test_trace_grayskull_kernels():
    E, M, P = 3, 40, 70
    spec = load_spec("specs/attention/scores_softmax.einsum", {"E": E, "M": M, "P": P})
    reads, writes = trace_of(spec, """
partitioning: {P: [uniform_shape(32)]}
loop-order: {default: [P1, P0, M, E]}
fusion: [[QK, S], [GM, SN, SD, A]]""")
    # group [QK, S] over p1 (K does not depend on p1: loaded once); S spills to DRAM; group
    # [GM, SN, SD, A] over p1 loads each S tile once for GM and SN (same region, same loop)
    assert reads == {"Q": E * P, "K": E * M, "S": M * P}
    assert writes == {"S": M * P, "A": M * P}
    M, P = 30, 20
    spec = load_spec("specs/attention/scores_softmax.einsum", {"E": E, "M": M, "P": P})
    reads, writes = trace_of(spec, """
partitioning: {P: [uniform_shape(8)], M: [uniform_shape(8)]}
loop-order: {default: [P1, M1, P0, M0, E]}
fusion: [[QK, S, GM, SN, SD, A]]""")
    # loops p1, m1 over 8 x 8 blocks (A, complete only after GM and SD, runs in a third m1
    # loop): Q once per p1, K once per (p1, m1) in the first m1 loop
    assert reads == {"Q": E * P, "K": E * M * cdiv(P, 8)}
    assert writes == {"A": M * P}


@pytest.mark.parametrize("order", ["[K1, M, N, K0]", "[K1, M1]", "[M1, K1]"])
def test_trace_matmul_accumulation(order):
    K, M, N, K0, M0 = 10, 3, 5, 4, 2
    partitions = f"K: [uniform_shape({K0})]" + (f", M: [uniform_shape({M0})]" if "M1" in order else "")
    reads, writes = trace_of(load_spec("specs/matmul.einsum", {"K": K, "M": M, "N": N}),
                             f"partitioning: {{{partitions}}}\nloop-order: {{default: {order}}}\n"
                             "accumulate: {Z: dram}")
    k1 = cdiv(K, K0)
    # Z is accumulated across the K1 loop in DRAM (as the mapping asks; the default keeps a
    # one-tile accumulator on chip, tests/test_accumulate.py): written every k1, read back
    # every k1 but the first
    assert writes == {"Z": k1 * M * N}
    assert reads["Z"] == (k1 - 1) * M * N
    assert reads["A"] == K * M                        # each A element in exactly one (k1, m1) tile
    # B[k, n] depends on k1 only: loaded once per k1, unless an M1 loop runs outside K1
    assert reads["B"] == K * N * (cdiv(M, M0) if order == "[M1, K1]" else 1)


@pytest.mark.parametrize("place", ["default", "dram"])
def test_trace_3pass_fused_accumulates_av(place):
    E, F, M, P, M0, P0 = 3, 2, 10, 7, 4, 3
    reads, writes = trace_of(load_spec(A3, {"E": E, "F": F, "M": M, "P": P}), f"""
partitioning: {{M: [uniform_shape({M0})], P: [uniform_shape({P0})]}}
loop-order: {{default: [P1, M1]}}
fusion: {A3_ALL}""" + ("\naccumulate: {AV: dram}" if place == "dram" else ""))
    # for p1: three m1 loops (pass boundaries after GM and SD); K in the first, V in the third;
    # AV, the only DRAM result, is accumulated over m1: by default on chip (one tile of AV per
    # p1, written once), or in DRAM when the mapping says so (read back every m1 but the first)
    m1 = cdiv(M, M0)
    if place == "dram":
        assert reads == {"Q": E * P, "K": E * M * cdiv(P, P0), "V": F * M * cdiv(P, P0), "AV": F * P * (m1 - 1)}
        assert writes == {"AV": F * P * m1}
    else:
        assert reads == {"Q": E * P, "K": E * M * cdiv(P, P0), "V": F * M * cdiv(P, P0)}
        assert writes == {"AV": F * P}


def test_trace_online_softmax():
    M, P = 10, 7
    spec = load_spec("specs/softmax_online.einsum", {"M": M, "P": P})
    reads, writes = trace_of(spec, None)
    # three groups: RM and RD recur over m in DRAM (init row + one row per step); Y reads the
    # last rows RM[M], RD[M]; X is read once by each group
    assert writes == {"RM": (M + 1) * P, "RD": (M + 1) * P, "Y": M * P}
    assert reads == {"X": 3 * M * P,
                     "RM": M * P + 2 * M * P + P,     # RM step reads RM[m]; RD step RM[m], RM[m+1]; Y RM[M]
                     "RD": M * P + P}                 # RD step reads RD[m]; Y reads RD[M]
    reads, writes = trace_of(spec, "fusion: [[RM, RD, Y]]")
    # fused: RM, RD share the X[m] row in the first m loop; Y needs a second m loop after it
    assert reads == {"X": 2 * M * P} and writes == {"Y": M * P}


def test_trace_counts_do_not_depend_on_dtype():
    spec = load_spec(A1, SMALL)
    m = as_mapping(f"partitioning: {{M: [uniform_shape(4)], P: [uniform_shape(5)]}}\nfusion: {A1_ALL}")
    module = reference_spec(spec, m).executor(m)
    inputs = reference_spec(spec, m).random_inputs(0)
    _, t64 = module.run_traced(**inputs)
    out32, t32 = module.run_traced(**{k: v.astype(np.float32) for k, v in inputs.items()})
    assert t64 == t32 and out32["AV"].dtype == np.float32
    assert math.prod(out32["AV"].shape) == t32["writes"]["AV"]


def test_outputs_are_fresh_arrays():
    """Copies and whole-tensor writes fill the output arrays; they never alias an input."""
    spec = cascade.loads("""
shape M = 3, P = 2
input X[M, P]
output Y[M, P], Z[M, P], T[]
Y[m, p] = X[m, p]
Z[m, p] = Y[m, p]
T[]     = X[m, p]
""")
    inputs = spec.random_inputs(0)
    outputs = spec.executor().run(**inputs)
    assert not any(np.shares_memory(out, x) for out in outputs.values() for x in inputs.values())
    assert not np.shares_memory(outputs["Y"], outputs["Z"])
    assert_close(outputs, spec.run(inputs), 1e-9, np.float64)


def segmented_with(outputs: str, statements: str, shapes: dict[str, int] | None = None) -> cascade.Spec:
    """SEGMENTED (a recurrence over M0, restarted in every tile of M) with more outputs and Einsums."""
    return load_spec(SEGMENTED.replace("output Y[M1, M0, P]", f"output Y[M1, M0, P], {outputs}") + statements, shapes)


def test_last_element_of_a_ragged_inner_recurrence_on_chip():
    """R[m1, M0, p] of the ragged last tile (M = 10, M0 = 4: 2 elements) is absent, so LAST
    there reads 0; kept on chip, R still holds the partial value R[m1, 2, p]."""
    spec = segmented_with("LAST[M1, P]", "LAST[m1, p] = R[m1, M0, p]\n")
    check_executor(spec, "fusion: [[R, Y, LAST]]", dtypes=(np.float64,))


@pytest.mark.parametrize("mapping", [
    None,                                                             # R in DRAM, LAST its own group
    "partitioning: {P: [uniform_shape(2)]}",
    "fusion: [[R, Y, LAST]]",
    "partitioning: {P: [uniform_shape(2)]}\nloop-order: {default: [P1, M1, M0]}\nfusion: [[R, Y, LAST]]",
    "partitioning: {M: [uniform_shape(3)]}\nfusion: [[R, Y, LAST]]",  # M0 = 3: ragged tiles of 1, 2, 0
], ids=["unfused", "unfused-P-tiled", "fused", "fused-P-tiled", "fused-M0-from-mapping"])
@pytest.mark.parametrize("M", [10, 11, 12, 3], ids=["ragged-2", "ragged-3", "exact", "one-ragged-tile"])
def test_last_element_of_an_inner_recurrence(M, mapping):
    """The last element of every tile of M, whether its tile is full or ragged (and whatever
    holds R: DRAM, a ring on chip, the whole rank on chip)."""
    spec = segmented_with("LAST[M1, P]", "LAST[m1, p] = R[m1, M0, p]\n", {"M": M})
    check_executor(spec, mapping)


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("outputs, statements", [
    ("Z[M1, P]", "Z[m1, p] = exp(R[m1, M0, p])"),                        # a map of an absent point: absent
    ("S[P], S2[P]", "S[p] = R[m1, M0, p] :: max(m1)\nS2[p] = R[m1, M0, p] :: min(m1)"),  # skipped over M1
    ("C3[M1, P], C2[M1, P]", "C3[m1, p] = R[m1, 3, p]\nC2[m1, p] = R[m1, 2, p]"),        # a fixed element
    ("LL[P]", "LL[p] = R[M1, M0, p]"),                                  # the last element of the last tile
    ("ZL[M0, P]", "ZL[m0, p] = exp(R[M1, m0+1, p])"),                   # the whole last tile, past its end
    ("W[P]", "Z[m1, p] = exp(R[m1, M0, p])\nW[p] = Z[m1, p] :: max(m1)"),  # absence carried by Z
    ("TL[P]", "init T[0, p] = 0\nT[m1+1, p] = T[m1, p] + R[m1, M0, p]\nTL[p] = T[M1, p]"),  # through T's ring
], ids=["map", "max-min-over-M1", "fixed-element", "last-tile", "range-of-last-tile", "carried",
        "recurrence-over-M1"])
def test_absent_last_element_read_downstream(outputs, statements, fused):
    """What reads R[m1, M0, p] of the ragged tile sees an absent point: maps of it are absent,
    reductions skip it, a recurrence that takes it is absent from there on."""
    spec = segmented_with(outputs, statements + "\n")
    names = [s.split("[")[0].split()[-1] for s in statements.splitlines()]
    mapping = f"fusion: [[R, Y, {', '.join(dict.fromkeys(names))}]]" if fused else None
    check_executor(spec, mapping)


def test_a_filter_on_a_rank_reduced_across_loop_iterations():
    """`where` on the outer part of a split, reduced by accumulating over its loop: the filtered
    iterations contribute the identity, never their values."""
    spec = load_spec("""
shape M = 10, P = 3, M0 = 4
split M = M1 * M0
input X[M, P]
output S[M0, P], T[M0, P]
S[m0, p] = X[m1, m0, p] :: max(m1) where m1 >= 1
T[m0, p] = X[m1, m0, p] where m1 != 1
""")
    check_executor(spec, None)
