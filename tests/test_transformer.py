"""The encoder layer's linear part (specs/transformer/encoder_linear.einsum): its executor equals
the reference, and the model's traffic, latency and energy equal closed forms and the FuseMax
artifact's end-to-end rows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import cascade

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "transformer" / "encoder_linear.einsum"
MAPS = ROOT / "mappings" / "encoder_linear"
ARTIFACT = ROOT.parent / "shared" / "external" / "fusemax"


@pytest.mark.parametrize("mapping", ["tiled.yaml", "wide_ffn.yaml"])
def test_executor_equals_reference(mapping):
    spec = cascade.load(SPEC, dict(T=300, D=24, N=16, S=4100))  # ragged token and S tiles
    inputs = spec.random_inputs(seed=5)
    outputs, trace = spec.executor(MAPS / mapping).run_traced(**inputs)
    x, av = inputs["X"], inputs["AV"]
    z = inputs["WZ"].T @ av
    expected = {"Q": inputs["WQ"].T @ x, "K": inputs["WK"].T @ x, "V": inputs["WV"].T @ x,
                "FF": inputs["W2"].T @ (inputs["W1"].T @ z)}
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, rtol=1e-9, atol=1e-9)
    report = spec.estimate(MAPS / mapping, "fusemax")
    for t, d in report.per_tensor.items():
        assert d["read_bytes"] / 2 == trace["reads"].get(t, 0) and d["write_bytes"] / 2 == trace["writes"].get(t, 0)


def test_bert_layer_is_compulsory_and_compute_bound():
    """Weights fit: each of the six matmuls reads its input and weight once and writes its output
    once (Z and H1 go to DRAM and back), and the 2D array is busy for all T (4 D N + 2 D S) MACs."""
    t, d, s = 64 * 1024, 768, 3072
    report = cascade.load(SPEC, dict(T=t, D=d, N=d, S=s)).estimate(MAPS / "tiled.yaml", "fusemax")
    words = 4 * (d * t + d * d + d * t) + 2 * (d * t + d * s + s * t)
    assert report.dram_bytes == 2 * words
    macs = t * (4 * d * d + 2 * d * s)
    assert report.latency_s == pytest.approx(macs / 65536 / 940e6, rel=1e-12)
    with open(ARTIFACT / "end2end-proposal.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if (r["model"], r["seq_len"]) == ("BERT", "1K"))
    assert report.dram_bytes == float(row["traffic"])
    assert report.latency_s == pytest.approx(float(row["latency"]), rel=1e-9)
    assert report.energy_j * 1e12 == pytest.approx(float(row["energy"]), rel=0.05)
