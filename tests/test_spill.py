"""Spilling on a target whose buffer is too small: the model's spill traffic equals the
executor's trace (generated for the same target), tensor by tensor, and the results stay right."""

from __future__ import annotations

from pathlib import Path

import pytest

import cascade
from cascade.model.target import parse_target
from oracles import assert_trace_equals_model, traced_run_matches_reference

ROOT = Path(__file__).resolve().parent.parent
CASES = [  # spec, mapping, target, buffer bytes, shapes (ragged tiles on purpose)
    ("mha_3pass", "mha_3pass/flat.yaml", "flat_cloud", 400_000, dict(B=2, H=2, M=300, P=200)),
    ("mha_3pass", "mha_3pass/unfused.yaml", "flat_cloud", 130_000, dict(B=1, H=2, M=200, P=300)),
    ("mha_1pass", "mha_1pass/fusemax.yaml", "fusemax", 300_000, dict(B=2, H=2, M=600, P=600)),
]


def small_target(name: str, capacity: int, in_place: bool = False):
    """`name`'s target with a smaller buffer; storage sharing (`buffer.in_place`) as asked, so these
    cases keep their footprints whatever the bundled file says (tests/test_sharing.py covers it)."""
    path = ROOT / "specs" / "targets" / f"{name}.yaml"
    text = path.read_text().replace("in_place: true", f"in_place: {str(in_place).lower()}")
    old = next(line for line in text.splitlines() if "capacity_bytes:" in line)
    return parse_target(text.replace(old, f"  capacity_bytes: {capacity}"), f"small_{name}.yaml")


@pytest.mark.parametrize("spec_name, mapping, target, capacity, shapes", CASES)
def test_spill_traffic_equals_the_trace(spec_name, mapping, target, capacity, shapes):
    spec = cascade.load(ROOT / "specs" / "attention" / f"{spec_name}.einsum", shapes)
    tgt = small_target(target, capacity)
    mapping_path = ROOT / "mappings" / mapping
    report = spec.estimate(mapping_path, tgt)
    assert report.extra.get("spills"), "the case must spill"
    inputs, trace = traced_run_matches_reference(spec, mapping_path, tgt, 3)
    assert_trace_equals_model(report, trace, tgt.word_bytes)
    # an unspilled executor counts only the compulsory traffic: the difference is the spill
    plain = spec.executor(mapping_path).run_traced(**inputs)[1]
    spilled = sum(trace["reads"].values()) + sum(trace["writes"].values())
    assert spilled > sum(plain["reads"].values()) + sum(plain["writes"].values())


def test_estimate_reports_the_spill(capsys):
    from cascade.cli import main

    args = ["estimate", str(ROOT / "specs/attention/mha_3pass.einsum"), "-m", str(ROOT / "mappings/mha_3pass/flat.yaml"),
            "-t", "flat_cloud", "--shape", "B=1", "--shape", "H=1", "--shape", "M=65536", "--shape", "P=65536"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "spills to DRAM" in out and "spilled QK:" in out and "written and" in out


STREAM_CASES = [  # buffers so small that loaded tiles alone overflow: on a bypass buffer they stream
    ("mha_3pass", "mha_3pass/flat.yaml", "flat_cloud", 1200, dict(B=1, H=2, E=4, F=4, M=200, P=300)),
    ("mha_3pass", "mha_3pass/unfused.yaml", "flat_cloud", 1200, dict(B=1, H=2, E=4, F=4, M=200, P=30)),
    ("mha_3pass", "mha_3pass/flat_bypass.yaml", "flat_cloud", 3000, dict(B=1, H=1, E=4, F=4, M=600, P=300)),
]


@pytest.mark.parametrize("spec_name, mapping, target, capacity, shapes", STREAM_CASES)
def test_streamed_tiles_equal_the_trace(spec_name, mapping, target, capacity, shapes):
    """Streamed tiles are re-read by each statement at every iteration of its loops: the model's
    traffic equals the executor's trace for the same target, tensor by tensor, results stay right,
    and without bypass the same point is refused."""
    spec = cascade.load(ROOT / "specs" / "attention" / f"{spec_name}.einsum", shapes)
    tgt = small_target(target, capacity)
    assert tgt.buffer_bypass
    mapping_path = ROOT / "mappings" / mapping
    report = spec.estimate(mapping_path, tgt)
    assert report.extra.get("streamed"), "the case must stream"
    assert any("stream from DRAM, re-read at each use" in line for line in report.extra["spills"])
    inputs, trace = traced_run_matches_reference(spec, mapping_path, tgt, 4)
    word = tgt.word_bytes
    assert_trace_equals_model(report, trace, word)
    plain = spec.executor(mapping_path).run_traced(**inputs)[1]
    for t in report.extra["streamed"]:  # a streamed input is read more than once where its readers loop
        assert trace["reads"][t] >= plain["reads"][t]
    assert sum(trace["reads"].values()) > sum(plain["reads"].values())
    refusing = parse_target(tgt_text(target, capacity).replace("bypass: true", "bypass: false"), "nb.yaml")
    with pytest.raises(cascade.errors.MappingError, match=r"(loaded tiles are|neither is) not spilled|neither is spilled"):
        spec.estimate(mapping_path, refusing)


def tgt_text(name: str, capacity: int) -> str:
    text = (ROOT / "specs" / "targets" / f"{name}.yaml").read_text().replace("in_place: true", "in_place: false")
    old = next(line for line in text.splitlines() if "capacity_bytes:" in line)
    return text.replace(old, f"  capacity_bytes: {capacity}")
