"""`cascade demo` (the README's first command): its passes are FuseMax's 3 / 2 / 1, its executors
match, and its cost rows equal the FuseMax artifact's published numbers at BERT 16K and the
Grayskull model's per-program estimates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import cascade
from cascade.cli import main

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT.parent / "shared" / "external" / "fusemax"


@pytest.fixture(scope="module")
def demo():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["demo", "--json"])
    return code, json.loads(out.getvalue())


def _artifact(name: str, model: str, length: str) -> dict[str, str]:
    with open(ARTIFACT / f"attn-{name}.csv") as fh:
        return next(r for r in csv.DictReader(fh) if r["model"] == model and r["seq_len"] == length)


def test_passes_are_fusemax_counts(demo):
    code, data = demo
    assert code == 0 and data["ok"]
    counts = {r["cascade"]: r["passes"] for r in data["passes"]}
    assert counts["attention_3pass"] == {"M": 3}
    assert counts["attention_2pass"] == {"M": 2}
    assert counts["attention_1pass"] == {"M1": 1, "M0": 2}


def test_executors_match(demo):
    _, data = demo
    assert len(data["executors"]) == 3
    assert all(r["vs_reference"] < 1e-9 and r["vs_textbook"] < 1e-9 for r in data["executors"])


def test_cost_rows_equal_the_artifact_at_bert_16k(demo):
    _, data = demo
    rows = {r["dataflow"]: r for r in data["costs"]}
    for dataflow, csv_name in (("FuseMax", "binding"), ("unfused", "unfused")):
        art = _artifact(csv_name, "BERT", "16K")
        assert rows[dataflow]["dram_bytes"] == pytest.approx(float(art["traffic"]), rel=1e-12)
        assert rows[dataflow]["latency_s"] == pytest.approx(float(art["latency"]), rel=1e-12)


def test_grayskull_rows_are_the_programs_table_i_measures(demo):
    _, data = demo
    rows = {r["dataflow"]: r for r in data["costs"]}
    spec = cascade.load(ROOT / "specs" / "attention" / "scores_softmax.einsum")
    maps = ROOT / "mappings" / "scores_softmax"
    softmax = spec.estimate(maps / "grayskull_dedicated.yaml", "grayskull_e150", groups=["GM+SN+SD+A"])
    whole = spec.estimate(maps / "grayskull_dedicated.yaml", "grayskull_e150")
    assert rows["Grayskull dedicated softmax"]["latency_s"] == softmax.latency_s < whole.latency_s
    fused = spec.estimate(maps / "grayskull_fused.yaml", "grayskull_e150")
    assert rows["Grayskull fused"]["latency_s"] == fused.latency_s


def test_text_form(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "all executors match" in out and "Grayskull dedicated softmax" in out


def test_derived_1pass_costs_what_fusemax_costs(demo):
    _, report = demo
    d = report["reduce"]
    assert (d["passes_before"], d["passes_after"]) == (3, 1) and d["isomorphic_to_mha_1pass"]
    assert (d["latency_s"], d["dram_bytes"]) == (d["bundled_latency_s"], d["bundled_dram_bytes"])
    fusemax = next(r for r in report["costs"] if r["dataflow"] == "FuseMax")
    assert (d["latency_s"], d["dram_bytes"]) == (fusemax["latency_s"], fusemax["dram_bytes"])


def test_variants_section(demo):
    """Issue 12: causal beside dense under one mapping; fewer K/V heads move less DRAM traffic."""
    _, data = demo
    masks = {r["cascade"]: r for r in data["variants"]["masks"]}
    assert set(masks) == {"attention_1pass", "causal_1pass"}
    # closed form (tests/test_mask_costs.py): (E+F+6) macs per present (m, p), F+7 per tile and query
    # that runs: causal skips the key tiles above the diagonal (k = N/T tiles of T keys and queries)
    n, t = 4096, 256
    k = n // t
    ratio = (67 * n * (n + 1) + 71 * t * k * (k + 1) / 2) / (134 * n * n + 71 * k * n)
    assert masks["causal_1pass"]["macs"] / masks["attention_1pass"]["macs"] == pytest.approx(ratio, rel=1e-12)
    assert abs(ratio - 0.5) < 0.001
    # and reads K and V only for those tiles: (E+F) (N + T k (k+1)/2) words against (E+F) (N + N k)
    words = masks["causal_1pass"]["dram_bytes"] / masks["attention_1pass"]["dram_bytes"]
    assert words == pytest.approx((n + t * k * (k + 1) / 2) / (n + n * k), rel=1e-12)
    traffic = [r["dram_bytes"] for r in data["variants"]["groups"]]  # R = 1 (MHA), 4 (GQA), 32 (MQA)
    assert [r["kind"] for r in data["variants"]["groups"]] == ["MHA", "GQA", "MQA"]
    assert traffic[0] > traffic[1] > traffic[2]
