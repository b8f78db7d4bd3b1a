"""Mapping key `keep` on any tensor and loops: the results are unchanged, the executor's trace
equals the model's traffic tensor by tensor, and a kept load is never read more often."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import cascade
from cascade.errors import MappingError
from cascade.mapping.mapping_file import parse_mapping
from oracles import assert_trace_equals_model

ROOT = Path(__file__).resolve().parent.parent
MHA3 = ROOT / "specs" / "attention" / "mha_3pass.einsum"
LOOPS = {"flat_bypass": ("M1", "P1", "H1"), "flat": ("P1", "H1", "B1"), "unfused": ("P1", "H1", "B1")}


def small(text: str, p_tile: int, m_tile: int):
    text = text.replace("P: [uniform_shape(256)]", f"P: [uniform_shape({p_tile})]")
    return parse_mapping(text.replace("M: [uniform_shape(256)]", f"M: [uniform_shape({m_tile})]"), "keep.yaml")


@settings(max_examples=10, deadline=None)
@given(m=st.integers(3, 12), p=st.integers(2, 10), m_tile=st.integers(1, 5), p_tile=st.integers(1, 5),
       name=st.sampled_from(sorted(LOOPS)), pick=st.integers(1, 7), tensor=st.sampled_from(["Q", "K", "V", "QK"]))
def test_any_keep_keeps_results_and_trace_equal_to_the_model(m, p, m_tile, p_tile, name, pick, tensor):
    spec = cascade.load(MHA3, dict(B=2, H=2, E=2, F=3, M=m, P=p))
    loops = [r for j, r in enumerate(LOOPS[name]) if pick >> j & 1] or [LOOPS[name][0]]
    text = (ROOT / "mappings" / "mha_3pass" / f"{name}.yaml").read_text()
    plain = small(text, p_tile, m_tile)
    try:
        kept = small(text + f"keep:\n  {tensor}: [{', '.join(loops)}]\n", p_tile, m_tile)
        report = spec.estimate(kept, "flat_cloud")
    except MappingError as exc:  # a tensor this mapping does not load, or loops not around its readers
        assert f"keep.{tensor}" in str(exc)
        return
    inputs = spec.random_inputs(seed=m * 31 + p)
    outputs, trace = spec.executor(kept).run_traced(**inputs)
    np.testing.assert_allclose(outputs["AV"], spec.run(inputs)["AV"], rtol=1e-9, atol=1e-12)
    assert_trace_equals_model(report, trace, 2, exact=True)  # 2-byte words
    before = spec.estimate(plain, "flat_cloud").per_tensor[tensor]["read_bytes"]
    assert report.per_tensor[tensor]["read_bytes"] <= before
