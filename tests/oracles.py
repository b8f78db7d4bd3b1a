"""What several test files check against: an independent masked attention in plain NumPy, a
generated executor's outputs against the reference evaluator, and the cost model's DRAM traffic
against that executor's trace, tensor by tensor."""

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


def assert_trace_equals_model(report, trace, word: int, exact: bool = False) -> None:
    """Every tensor's DRAM reads and writes in the report (bytes) equal the trace's (elements), to
    1e-9 relative, or `exact`ly (integer counts of a model without fractional spills)."""
    for t in set(report.per_tensor) | set(trace["reads"]) | set(trace["writes"]):
        d = report.per_tensor.get(t, {"read_bytes": 0.0, "write_bytes": 0.0})
        for direction in ("read", "write"):
            counted = trace[f"{direction}s"].get(t, 0)
            want = counted if exact else pytest.approx(counted, rel=1e-9)
            assert d[f"{direction}_bytes"] / word == want, (t, direction)


def traced_run_matches_reference(spec, mapping, target, seed: int):
    """Run `mapping`'s executor for `target` traced on seeded random inputs; every output equals
    the reference evaluator's. Returns (inputs, trace)."""
    inputs = spec.random_inputs(seed=seed)
    outputs, trace = spec.executor(mapping, target).run_traced(**inputs)
    for name, value in spec.run(inputs).items():
        np.testing.assert_allclose(outputs[name], value, rtol=1e-9, atol=1e-12)
    return inputs, trace
