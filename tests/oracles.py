"""What several test files check against: an independent masked attention in plain NumPy, and the
cost model's DRAM traffic against an executor's trace, tensor by tensor."""

from __future__ import annotations

import numpy as np
import pytest


def masked_attention(q, k, v, keep):
    """softmax over the kept keys of k^T q (scale 1), times v; a query that keeps no key gives 0."""
    s = np.where(keep, k.T @ q, -np.inf)
    top = np.max(s, axis=0, initial=-np.inf)
    w = np.exp(s - np.where(np.isfinite(top), top, 0.0), where=keep, out=np.zeros_like(s))
    total = w.sum(axis=0)
    return v @ np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def assert_trace_equals_model(report, trace, word: int) -> None:
    """Every tensor's DRAM reads and writes in the report (bytes) equal the trace's (elements)."""
    for t in set(report.per_tensor) | set(trace["reads"]) | set(trace["writes"]):
        d = report.per_tensor.get(t, {"read_bytes": 0.0, "write_bytes": 0.0})
        assert d["read_bytes"] / word == pytest.approx(trace["reads"].get(t, 0), rel=1e-9), t
        assert d["write_bytes"] / word == pytest.approx(trace["writes"].get(t, 0), rel=1e-9), t
