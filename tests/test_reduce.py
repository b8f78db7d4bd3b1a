"""`cascade reduce`: the corpus in tests/cascades/reduce (each file's first line states the passes
before -> after and why, or the refusal's line:col), the FuseMax goldens by graph isomorphism,
masks, the numeric checks against the original under the reference (rtol 1e-9, several shapes
with ragged tiles, large logits and a large mean), float32 error, the CLI and a hypothesis test
of random bodies."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade.api import load, loads
from cascade.cli import main
from cascade.errors import SpecError
from cascade.lang import ir
from cascade.lang.check import check
from cascade.lang.parse import parse
from cascade.lang.show import show
from cascade.resources import bundled_mapping, bundled_path
from cascade.transform.isomorphism import isomorphic
from cascade.transform.reduce import reduce_passes
from cascade.transform.verify import float32_ratio, verify

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "cascades" / "reduce"
EXPECT = re.compile(r"# expect: (?:(\d+) -> (\d+)|refuse (\d+):(\d+)) \| (.+)")


def _expectation(path: Path):
    m = EXPECT.match(path.read_text().splitlines()[0])
    assert m, f"{path.name}: first line must be '# expect: B -> A | reason' or '# expect: refuse L:C | reason'"
    return m


REWRITES = [p for p in sorted(CORPUS.glob("*.einsum")) if _expectation(p).group(1)]
REFUSALS = [p for p in sorted(CORPUS.glob("*.einsum")) if _expectation(p).group(3)]
BUNDLED = [(bundled_path("softmax_3pass.einsum"), 3, 2), (bundled_path("attention", "attention_3pass.einsum"), 3, 1),
           (bundled_path("attention", "attention_2pass.einsum"), 2, 1), (bundled_path("attention", "mha_3pass.einsum"), 3, 1)]


def test_corpus_size():
    assert len(REWRITES) + len(BUNDLED) >= 15 and len(REFUSALS) >= 5


@pytest.mark.parametrize("path, before, after", BUNDLED + [(p, int(_expectation(p).group(1)),
                                                            int(_expectation(p).group(2))) for p in REWRITES],
                         ids=lambda x: x.stem if isinstance(x, Path) else str(x))
def test_rewrite_passes_and_values(path, before, after):
    spec = load(path)
    result, cert = spec.reduce("M", 16)
    assert cert.passes_before == before == spec.passes().passes["M"]
    if before == after:
        assert cert.already_minimal and result is spec and cert.lower_bound == before
        return
    assert cert.passes_after == after == cert.lower_bound
    assert result.passes().passes["M1"] == after
    assert parse(show(result.cascade)) == replace(result.cascade, source="", file="<spec>")
    trials = verify(spec.cascade, result.cascade, "M")
    assert len(trials) >= 15 and all(t.ok for t in trials), [t for t in trials if not t.ok]
    for scale in ("unit", "large mean"):
        shapes = {r: min(n, 5) for r, n in spec.shapes.items()} | {"M": 64, "M0": 16}
        orig32, new32 = float32_ratio(spec.cascade, result.cascade, shapes, scale)
        assert new32 <= 10 * max(orig32, 1e-7), (scale, orig32, new32)


@pytest.mark.parametrize("path", REFUSALS, ids=lambda p: p.stem)
def test_refusals_name_the_place(path, capsys):
    m = _expectation(path)
    with pytest.raises(SpecError) as info:
        load(path).reduce("M")
    span = info.value.first.span
    assert (span.line, span.col) == (int(m.group(3)), int(m.group(4)))
    assert main(["reduce", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{m.group(3)}:{m.group(4)}:" in err and "Traceback" not in err


def test_attention_3pass_gives_fusemax_1pass_up_to_names():
    three = load(bundled_path("attention", "attention_3pass.einsum"))
    one = load(bundled_path("attention", "attention_1pass.einsum")).cascade
    derived, cert = three.reduce("M", 256)
    assert isomorphic(derived.cascade, one)
    assert [s.rule for s in cert.steps] == ["R1", "D1+R1"]
    # the check can fail: the local exponent at the old running max is another cascade
    broken = [replace(s, expr=ir.Call("exp", (ir.BinOp("-", s.expr.args[0].left, ir.Read(
        ir.Access("RM", (ir.VarIndex("m1"), ir.VarIndex("p"))))),))) if s.name == "SLN" else s for s in one.statements]
    assert not isomorphic(derived.cascade, replace(one, statements=tuple(broken)))
    renamed = {"SLN": "E", "RD": "DEN"}
    other = parse(re.sub(r"\b(SLN|RD)\b", lambda m: renamed[m.group(1)], show(one)))
    assert isomorphic(derived.cascade, other)


def test_softmax_3pass_gives_the_online_softmax():
    spec = load(bundled_path("softmax_3pass.einsum"), {"M": 37, "P": 5})
    derived, cert = spec.reduce("M", 1)
    online = load(bundled_path("softmax_online.einsum"), {"M": 37, "P": 5})
    assert derived.passes().passes["M1"] == 2 == online.passes().passes["M"]
    recurrences = {s.name for s in derived.cascade.inits}
    assert recurrences == {"RM", "RD"}
    inputs = spec.random_inputs(seed=3)
    np.testing.assert_allclose(derived.run(inputs)["Y"], online.run(inputs)["Y"], rtol=1e-12)
    assert cert.steps[0].rule == "R1" and "exp" in cert.steps[0].identities[0]


def test_derived_mha_costs_what_fusemax_1pass_costs():
    shapes = {"B": 64, "H": 12, "E": 64, "F": 64, "M": 16384, "P": 16384}
    derived, _ = load(bundled_path("attention", "mha_3pass.einsum"), shapes).reduce("M", 64)
    bundled = load(bundled_path("attention", "mha_1pass.einsum"), shapes)
    assert isomorphic(derived.cascade, bundled.cascade)
    mapping = bundled_mapping("mha_1pass", "fusemax")
    a, b = derived.estimate(mapping, "fusemax"), bundled.estimate(mapping, "fusemax")
    assert (a.latency_s, a.dram_bytes) == (b.latency_s, b.dram_bytes)


def test_strictly_causal_row_zero_is_zero_not_nan():
    spec = load(CORPUS / "strictly_causal_attention.einsum", {"M": 9, "P": 9})
    derived, _ = spec.reduce("M", 4)
    av = derived.run(spec.random_inputs(seed=1))["AV"]
    assert np.all(np.isfinite(av)) and np.all(av[:, 0] == 0)
    assert any(s.filters for s in derived.cascade.einsums if s.name == "AV")  # the 0 < p guard


def test_a_second_run_is_already_minimal():
    spec = load(bundled_path("attention", "attention_3pass.einsum"))
    derived, _ = spec.reduce("M")
    again, cert = derived.reduce("M")
    assert again is derived and cert.already_minimal


@pytest.mark.parametrize("path, rank", [(("attention", "attention_3pass.einsum"), "M"),
                                        (("norm", "layernorm_3pass.einsum"), "D"),
                                        (("loss", "cross_entropy_2pass.einsum"), "C"),
                                        (("loss", "cross_entropy_online.einsum"), "C")])
def test_the_rank_defaults_to_the_one_with_extra_passes(path, rank):
    spec = load(bundled_path(*path))
    _, cert = spec.reduce()
    assert cert.rank == rank
    assert cert.passes_before >= cert.passes_after >= 1


def test_several_ranks_with_extra_passes_ask_for_one(tmp_path, capsys):
    two = tmp_path / "two.einsum"
    two.write_text("shape M = 8, P = 4\ninput X[M, P], Z[P, M]\noutput Y[M, P], W[P, M]\n"
                   "SD[p] = X[m, p]\nY[m, p] = X[m, p] / SD[p]\n"
                   "SE[m] = Z[p, m]\nW[p, m] = Z[p, m] / SE[m]\n")
    assert main(["reduce", str(two)]) == 2
    err = capsys.readouterr().err
    assert "several ranks: M (2 passes), P (2 passes); pass --rank" in err
    assert main(["reduce", str(two), "--rank", "M", "--verify"]) == 0


def test_cli_json_output_file_and_verify(tmp_path, capsys):
    out = tmp_path / "a1.einsum"
    assert main(["reduce", str(bundled_path("attention", "attention_3pass.einsum")), "--tile", "8",
                 "-o", str(out), "--json", "--verify"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passes_before"] == 3 and report["passes_after"] == 1 == report["lower_bound"]
    assert report["verified"] is True and all(t["ok"] for t in report["verify"])
    assert check(parse(out.read_text(), file=str(out))).cascade.splits[0].parts == ("M1", "M0")
    assert main(["reduce", str(bundled_path("softmax_3pass.einsum"))]) == 0
    text = capsys.readouterr().out
    assert "# passes over M: 3 -> 2" in text and "lower bound 2: Y keeps m" in text
    load_text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert loads(load_text).passes().passes["M1"] == 2
    assert main(["reduce", str(bundled_path("softmax_3pass.einsum")), "--rank", "Q"]) == 2
    assert "rank Q is not a rank" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["causal_attention", "variance", "layernorm"])
def test_generated_executor_runs_the_derived_cascade(name):
    spec = load(CORPUS / f"{name}.einsum", {"M": 37})
    derived, _ = spec.reduce("M", 8)  # 5 tiles, the last ragged
    inputs = spec.random_inputs(seed=4)
    out = derived.executor(None).run(**inputs)
    for key, want in spec.run(inputs).items():
        np.testing.assert_allclose(out[key], want, rtol=1e-9, atol=1e-12 * float(np.max(np.abs(want))))


# ------------------------------------------------------------------ random bodies

LEAVES = ["X[m, p]", "Y[m, p]", "GM[p]", "S[p]", "C[p]", "2", "exp(X[m, p] - GM[p])", "0.1 * (p - m)", "m",
          "SN[m, p]"]


@st.composite
def bodies(draw, depth=3):
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(LEAVES))
    kind = draw(st.sampled_from(["+", "-", "*", "/", "exp", "log", "abs", "max"]))
    if kind in ("exp", "log", "abs"):
        return f"{kind}({draw(bodies(depth - 1))})"
    a, b = draw(bodies(depth - 1)), draw(bodies(depth - 1))
    return f"max({a}, {b})" if kind == "max" else f"({a} {kind} {b})"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies(), op=st.sampled_from(["sum", "max"]))
def test_random_bodies_refuse_cleanly_or_verify(body, op):
    text = (f"cascade fuzz\nshape M = 8, P = 3\ninput X[M, P], Y[M, P], C[P]\noutput Z[P]\n"
            f"GM[p] = X[m, p] :: max(m)\nS[p] = Y[m, p]\nSN[m, p] = exp(X[m, p] - GM[p])\n"
            f"Z[p] = {body} :: {op}(m)\n")
    try:
        spec = loads(text)
    except SpecError:
        return  # e.g. a body that does not iterate m
    try:
        derived, _ = reduce_passes(spec.cascade, "M", 3)
    except SpecError as exc:
        assert exc.first.span is not None and "cannot reduce" in exc.first.message
        return
    shapes = [{"M": 7, "M0": 3, "P": 3}, {"M": 5, "M0": 1, "P": 2}, {"M": 16, "M0": 16, "P": 2}]
    trials = verify(spec.cascade, derived, "M", shapes, scales=("unit",))
    assert all(t.ok for t in trials), (body, op, trials, show(derived))
