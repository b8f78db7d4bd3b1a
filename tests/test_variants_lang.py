"""Issue 12, the language half: absent points merge per operator, a recurrence step whose
contribution is absent carries the old value, rank values and the new operators, fixed splits
(GQA) that no mapping or search re-partitions, and `--check` on NaN. Each case of the issue's
"Why" list that belongs here is a regression test, against independent NumPy."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.cli import main
from cascade.commands.run import max_errors
from cascade.lang import ir
from cascade.lang.ops import MAP_OPS
from cascade.lang.parse import parse
from cascade.lang.show import show
from cascade.model.target import load_target

ROOT = Path(__file__).resolve().parent.parent
GQA = ROOT / "specs" / "attention" / "gqa_1pass.einsum"


def _both(text: str, shapes=None, mapping: str = "{}", tmp_path: Path | None = None, seed: int = 0):
    """(inputs, reference outputs, executor outputs) of a cascade, with every warning an error."""
    spec = cascade.loads(text, shapes=shapes) if shapes else cascade.loads(text)
    x = spec.random_inputs(seed=seed)
    assert tmp_path is not None
    path = tmp_path / "m.yaml"
    path.write_text(mapping)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return x, spec.run(x), spec.executor(str(path)).run(**x)


ONLINE = """
cascade causal_online
shape M = 256, P = 256
input X[M, P]
output Y[M, P]
S[m, p]       = X[m, p] where m {cmp} p
init RM[0, p] = -inf
RM[m+1, p]    = max(RM[m, p], S[m, p])
init RD[0, p] = 0
RD[m+1, p]    = RD[m, p] * exp(RM[m, p] - RM[m+1, p]) + exp(S[m, p] - RM[m+1, p])
Y[m, p]       = exp(S[m, p] - RM[M, p]) / RD[M, p]
"""


def _masked_softmax(x, mask):
    s = np.where(mask, x, -np.inf)
    top = s.max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(mask, np.exp(s - top), 0.0)
    total = e.sum(axis=0)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


@pytest.mark.parametrize("cmp", ["<=", "<"])
def test_elementwise_causal_online_softmax(cmp, tmp_path):
    """Why 2: every step after the first masked point was absent, so 255 of 256 columns came out
    0. With '<' (strictly causal) column 0 has no key: it reads 0, with no NaN."""
    x, ref, exe = _both(ONLINE.format(cmp=cmp), tmp_path=tmp_path)
    m, p = np.arange(256)[:, None], np.arange(256)[None, :]
    want = _masked_softmax(x["X"], m <= p if cmp == "<=" else m < p)
    for got in (ref["Y"], exe["Y"]):
        assert not np.isnan(got).any()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.count_nonzero(np.abs(ref["Y"]).sum(axis=0) == 0) == (0 if cmp == "<=" else 1)


def test_strictly_causal_3pass_row_without_key(tmp_path):
    text = (ROOT / "specs/attention/causal_3pass.einsum").read_text().replace("m <= p", "m < p")
    x, ref, exe = _both(text, shapes=dict(E=8, F=8, M=40, P=40), tmp_path=tmp_path,
                        mapping="partitioning: {P: [uniform_shape(16)]}\n")
    s = x["K"].T @ x["Q"]
    m, p = np.arange(40)[:, None], np.arange(40)[None, :]
    want = x["V"] @ _masked_softmax(s, m < p)
    for got in (ref["AV"], exe["AV"]):
        assert not np.isnan(got).any() and np.all(got[:, 0] == 0)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


MERGE = """
shape M = 6, P = 5
input A[M, P], G[P]
output U[M, P], D[M, P], X[M, P], N[M, P]
F[m, p] = A[m, p] where m <= p
U[m, p] = max(F[m, p], A[m, p])
D[m, p] = F[m, p] - G[p]
X[m, p] = F[m, p] * A[m, p]
N[m, p] = exp(F[m, p]) + 1
"""


def test_merge_rule_per_operator(tmp_path):
    """union-like max takes -inf for the absent side; '-' against an operand broadcast over m
    stays absent (so masked scores stay masked); '*' and unary maps are absent; absent outputs
    read as 0."""
    x, ref, exe = _both(MERGE, tmp_path=tmp_path)
    a, g = x["A"], x["G"]
    keep = np.arange(6)[:, None] <= np.arange(5)[None, :]
    want = {"U": a, "D": np.where(keep, a - g, 0), "X": np.where(keep, a * a, 0), "N": np.where(keep, np.exp(a) + 1, 0)}
    for got in (ref, exe):
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-12, err_msg=name)
    assert MAP_OPS["+"].absent == MAP_OPS["max"].absent == "union" and MAP_OPS["*"].absent == "any"


VALUES = """
shape M = 10, P = 7, M0 = 4
split M = M1 * M0
input S[M, P]
output B[M, P], T[M, P]
B[m, p] = S[m, p] * (p - m) + 0.5 * m - 1e-5
T[m1, m0, p] = select(S[m1, m0, p] > 0.25, tanh(S[m1, m0, p]), sigmoid(S[m1, m0, p])) + pow(rsqrt(abs(S[m1, m0, p]) + 1), 3) + m1*M0 + m0
"""


def test_rank_values_and_new_operators(tmp_path):
    x, ref, exe = _both(VALUES, tmp_path=tmp_path, mapping="partitioning: {P: [uniform_shape(3)]}\n")
    s = x["S"]
    m, p = np.arange(10)[:, None], np.arange(7)[None, :]
    want_b = s * (p - m) + 0.5 * m - 1e-5
    want_t = np.where(s > 0.25, np.tanh(s), 1 / (1 + np.exp(-s))) + (abs(s) + 1) ** -1.5 + m
    for got in (ref, exe):
        np.testing.assert_allclose(got["B"], want_b, rtol=1e-12)
        np.testing.assert_allclose(got["T"], want_t, rtol=1e-12)


def test_new_syntax_round_trips():
    c = parse(VALUES)
    assert parse(show(c)) == c
    assert "select(S[m1, m0, p] > 0.25" in show(c) and "(p - m)" in show(c)
    call = c.statements[1].expr.left.left.left
    assert isinstance(call, ir.Call) and call.fn == "select" and call.args[0].fn == "gt"


def test_every_bundled_target_costs_every_operator():
    """The cost models charge a call by its target's op_costs row (max, min, abs are max ops)."""
    charged = [n for n, op in MAP_OPS.items() if not op.infix and n not in ("neg", "max", "min", "abs")]
    for name in ("fusemax", "flat_cloud", "flat_edge", "grayskull_e150"):
        target = load_target(name)
        missing = [n for n in charged if n not in target.op_costs]
        assert not missing, f"{name} has no cost for {missing}"


def test_layernorm_and_cross_entropy_estimate_on_every_target():
    """Why 8: sqrt/log costs were missing, so LayerNorm and cross-entropy were refused on fusemax."""
    for spec_name, mapping in (("norm/layernorm_3pass", "layernorm_3pass"), ("loss/cross_entropy_2pass",
                                                                            "cross_entropy_2pass")):
        spec = cascade.load(ROOT / "specs" / f"{spec_name}.einsum")
        # the fusemax mapping binds Einsums to FuseMax's units; the cpu mapping leaves binding to the target
        for target, kind in (("fusemax", "fusemax"), ("flat_cloud", "cpu")):
            assert spec.estimate(str(ROOT / "mappings" / mapping / f"{kind}.yaml"), target).latency_s > 0


# ------------------------------------------------------------------ fixed splits (GQA)


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_mapping_cannot_repartition_gqa_heads(tmp_path, capsys):
    """Why 1: `H: [uniform_shape(2)]` turned G=2, R=4 into G=4, R=2 (IndexError traceback)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("partitioning:\n  H: [uniform_shape(2)]\n")
    code, out, err = _cli(capsys, "run", str(GQA), "-m", str(bad), "--check", "--shape", "M=64", "--shape", "P=32")
    assert code == 2 and "Traceback" not in err
    assert "partitioning.H" in err and "split H = G * R" in err and "K[E, G, M]" in err
    same = tmp_path / "same.yaml"
    same.write_text("partitioning:\n  H: [uniform_shape(4)]\n")  # what the spec says: accepted
    code, out, err = _cli(capsys, "run", str(GQA), "-m", str(same), "--check", "--shape", "M=64", "--shape", "P=32")
    assert code == 0 and "matches the reference" in out


def test_gqa_heads_must_be_whole_groups(capsys):
    code, _, err = _cli(capsys, "run", str(GQA), "--shape", "H=6")
    assert code == 2 and "H = 6 is not a multiple of R = 4" in err and "Traceback" not in err


def test_gqa_input_checked_against_the_split():
    spec = cascade.load(GQA, shapes=dict(M=32, P=16, E=4, F=4))
    x = spec.random_inputs()
    x["K"] = np.zeros((4, 8, 32))  # one K per query head (H), not per group (G = 2)
    with pytest.raises(cascade.errors.InputError, match=r"input K has shape \(4, 8, 32\), expected \(4, 2, 32\)"):
        spec.run(x)


def test_search_leaves_gqa_split_alone_and_respects_the_floor():
    """Why 1: the search proposed H: uniform_shape(8) and reported 0.90x of the traffic floor."""
    from cascade.search import search

    spec = cascade.load(GQA, shapes=dict(E=16, F=16, M=512, P=512))
    result = search(spec, "fusemax", "traffic", budget_s=6, top=4, whole_up_to=8)
    assert result.best
    x = spec.random_inputs(seed=2)
    want = spec.run(x)["AV"]
    for cand in result.best:
        assert "H" not in cand.tiles and cand.dram_bytes >= result.compulsory_bytes
        got = spec.executor(cand.mapping).run(**x)["AV"]  # what `run --check` compares
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ --check and NaN


def test_check_treats_nan_at_the_same_places_as_equal():
    """Why 7: both sides NaN at the same places, finite values equal to 1e-15, was DIFFERS."""
    want = np.array([1.0, np.nan, 3.0, np.inf])
    assert max_errors(want + np.array([1e-15, 0, 0, 0]), want)["ok"]
    moved = max_errors(np.array([1.0, 2.0, np.nan, np.inf]), want)
    assert not moved["ok"] and moved["nonfinite_mismatches"] == 2
    assert not max_errors(np.array([1.0, np.nan, 3.5, np.inf]), want)["ok"]


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")
def test_check_json_with_nan_outputs(tmp_path, capsys):
    spec = tmp_path / "nan.einsum"
    spec.write_text("shape M = 4\ninput A[M]\noutput B[M]\nB[m] = sqrt(A[m])\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("{}\n")
    code, out, _ = _cli(capsys, "run", str(spec), "-m", str(mapping), "--check", "--json", "--seed", "1")
    data = json.loads(out)
    assert code == 0 and data["check"]["B"]["ok"] is True
