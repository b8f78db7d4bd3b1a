"""`cascade reduce` on cascades already split or recurrent over the rank: "already minimal"
(exit 0, passes before = after = the lower bound, with its reason) where the pass count equals
the bound, a refusal at the split or the recurrence where it does not."""

from __future__ import annotations

import json

import pytest

from cascade.api import load, loads
from cascade.cli import main
from cascade.errors import SpecError
from cascade.resources import bundled_path

ALREADY = [  # (spec, rank, passes counted over, lower bound)
    (("softmax_online.einsum",), "M", "M", 2),
    (("attention", "attention_1pass.einsum"), "M", "M1", 1),
    (("attention", "mha_1pass.einsum"), "M", "M1", 1),
    (("attention", "causal_1pass.einsum"), "M", "M1", 1),
    (("attention", "sliding_window_1pass.einsum"), "M", "M1", 1),
    (("attention", "alibi_1pass.einsum"), "M", "M1", 1),
    (("loss", "cross_entropy_online.einsum"), "C", "C", 1),
    (("norm", "rmsnorm.einsum"), "D", "D", 2),
    (("norm", "layernorm_2pass.einsum"), "D", "D", 2),
]


@pytest.mark.parametrize("parts, rank, counted, bound", ALREADY, ids=lambda x: x[-1] if isinstance(x, tuple) else None)
def test_bundled_minimal_forms_are_already_minimal(parts, rank, counted, bound, capsys):
    spec = load(bundled_path(*parts))
    result, cert = spec.reduce(rank)
    assert result is spec and cert.already_minimal
    assert cert.passes_before == cert.passes_after == cert.lower_bound == bound == spec.passes().passes[counted]
    assert cert.lower_bound_reason.startswith("no output") == (bound == 1)
    assert main(["reduce", str(bundled_path(*parts)), "--rank", rank, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["already_minimal"] and report["passes_after"] == bound


def test_a_derived_cascade_is_already_minimal_on_a_second_run(capsys):
    derived, _ = load(bundled_path("attention", "attention_3pass.einsum")).reduce("M", 16)
    again, cert = derived.reduce("M")
    assert again is derived and cert.already_minimal and cert.passes_before == 1 == cert.lower_bound
    assert cert.inner_passes == 2
    softmax, _ = load(bundled_path("softmax_3pass.einsum")).reduce("M", 4)
    _, cert = softmax.reduce("M")
    assert cert.already_minimal and cert.lower_bound == 2 and "Y keeps m" in cert.lower_bound_reason
    assert main(["reduce", str(bundled_path("softmax_online.einsum"))]) == 0
    out = capsys.readouterr().out
    assert "# already minimal: 2 passes over M = the lower bound; Y keeps m and reads RD[M, p], RM[M, p]" in out


def test_split_or_recurrent_above_the_bound_is_refused_at_the_split(capsys):
    path = bundled_path("attention", "flashdecoding.einsum")
    with pytest.raises(SpecError, match="2 passes over M1 and the lower bound is 1"):
        load(path).reduce("M")
    assert main(["reduce", str(path)]) == 2
    assert f"{path}:7:7:" in capsys.readouterr().err
    text = ("cascade late_sum\nshape M = 8, P = 2\ninput X[M, P]\noutput Z[P]\n"
            "GM[p] = X[m, p] :: max(m)\ninit RD[0, p] = 0\nRD[m+1, p] = RD[m, p] + exp(X[m, p] - GM[p])\n"
            "Z[p] = RD[M, p]\n")
    with pytest.raises(SpecError) as info:
        loads(text).reduce("M")
    assert (info.value.first.span.line, "2 passes over M and the lower bound is 1") == (6, _tail(info.value))


def _tail(exc: SpecError) -> str:
    msg = exc.first.message
    return msg[msg.index("2 passes"):msg.index("2 passes") + len("2 passes over M and the lower bound is 1")]
