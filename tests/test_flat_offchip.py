"""mappings/mha_3pass/flat_offchip.yaml, FLAT from 256K on as the FuseMax artifact places it (QK
and A in DRAM, weight-stationary 1024-row blocks): DRAM traffic against a closed form, the
executor's trace against the model, and the one difference from the artifact's row."""

from __future__ import annotations

import csv
from math import ceil
from pathlib import Path

import numpy as np
import pytest

import cascade

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "mha_3pass.einsum"
MAPPING = ROOT / "mappings" / "mha_3pass" / "flat_offchip.yaml"
ARTIFACT = ROOT.parent / "shared" / "external" / "fusemax"


def closed_form(b, h, e, f, m, p, block=1024):
    """Elements moved: Q once (its block stays on chip); K and V once per block of query rows
    (each 256-wide tile read once per block, the key loop outermost); QK written once and read
    by the softmax's max pass and again by its exponent pass; A written and read back once; AV
    written once (accumulated on chip)."""
    blocks = ceil(p / block)
    return b * h * (e * p + e * m * blocks + f * m * blocks + 3 * m * p + 2 * m * p + f * p)


def test_traffic_closed_form_and_trace():
    shapes = dict(B=1, H=2, E=8, F=8, M=600, P=2100)
    spec = cascade.load(SPEC, shapes)
    report = spec.estimate(MAPPING, "flat_cloud")
    assert not report.extra.get("spills")
    assert report.dram_bytes == 2 * closed_form(1, 2, 8, 8, 600, 2100)
    assert report.per_tensor["QK"]["read_bytes"] == 2 * 2 * 2 * 600 * 2100
    inputs = spec.random_inputs(seed=6)
    outputs, trace = spec.executor(MAPPING, "flat_cloud").run_traced(**inputs)
    for name, value in spec.run(inputs).items():
        np.testing.assert_allclose(outputs[name], value, rtol=1e-9, atol=1e-12)
    for t, d in report.per_tensor.items():
        assert d["read_bytes"] / 2 == trace["reads"].get(t, 0), t
        assert d["write_bytes"] / 2 == trace["writes"].get(t, 0), t


@pytest.mark.skipif(not ARTIFACT.is_dir(), reason="the FuseMax artifact's results are in ../shared")
def test_artifact_row_differs_by_one_read_of_the_scores():
    """BERT at 256K: the artifact's StableSoftmax reads each row of scores from DRAM once (its max
    einsum) and keeps it for the exponent (prop_spilled 0: a row fits); our softmax group loads
    QK in each of its passes over M, so ours is the artifact's traffic plus one read of QK."""
    with open(ARTIFACT / "attn-flat.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if (r["model"], r["seq_len"]) == ("BERT", "256K"))
    n = 262144
    spec = cascade.load(SPEC, dict(B=64, H=12, E=64, F=64, M=n, P=n))
    report = spec.estimate(MAPPING, "flat_cloud")
    assert report.dram_bytes == 2 * closed_form(64, 12, 64, 64, n, n)
    assert report.dram_bytes - 2 * 64 * 12 * n * n == pytest.approx(float(row["traffic"]), rel=1e-12)
