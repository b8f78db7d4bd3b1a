"""Mapping search: on spaces small enough to enumerate, the search returns the true optimum;
the CLI writes a mapping that estimate and compile accept; errors are clear."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.cli import main
from cascade.errors import CascadeError
from cascade.mapping.mapping_file import load_mapping
from cascade.model.target import parse_target
from cascade.search import search
from cascade.search.space import Space, compulsory_bytes, tile_values
from cascade.search.order import tile_grid

ROOT = Path(__file__).resolve().parent.parent
ATT = ROOT / "specs" / "attention"


# A tiny spatial target, so that small shapes need tiling and the buffer prunes candidates.
TINY = parse_target("""
name: tiny
kind: spatial
clock_hz: 1000000000
word_bytes: 2
dram: {bandwidth_bytes_per_s: 1000000000}
buffer: {capacity_bytes: 160}
units:
  array2d: {shape: [4, 4], ops: [mac, add, max]}
  array1d: {shape: [4], ops: [mac, add, max, divide, exp]}
op_costs:
  exp: {exp: 1}
""", "tiny.yaml")
WHOLE_UP_TO = 8  # ranks of 8 or fewer stay whole, as 128 does for full-size targets


def _brute_force(spec, target, objective):
    """Every mapping of the search space, one at a time, through the numeric model
    (`Spec.estimate`, which checks the buffer itself): the true optimum, and how many
    mappings the buffer refused."""
    space = Space(spec, target, WHOLE_UP_TO)
    best, refused = None, 0
    for family in space.families():
        grid, tiles_of = tile_grid(spec, family)
        for idx in itertools.product(*[range(n) for n in grid["_shape"]]):
            mapping = space.mapping(family, tiles_of(idx))
            try:
                report = spec.estimate(mapping, target)
            except CascadeError:
                refused += 1
                continue
            value = report.latency_s if objective == "latency" else report.dram_bytes
            if best is None or value < best[0] * (1 - 1e-12):
                best = (value, report, mapping)
    return best, refused


@pytest.mark.parametrize("spec_path, shapes, objective", [
    (ROOT / "specs" / "matmul.einsum", {"K": 4, "M": 16, "N": 6}, "latency"),
    (ROOT / "specs" / "matmul.einsum", {"K": 4, "M": 16, "N": 6}, "traffic"),
    (ROOT / "specs" / "softmax_3pass.einsum", {"M": 16, "P": 6}, "latency"),
    (ROOT / "specs" / "softmax_3pass.einsum", {"M": 16, "P": 6}, "traffic"),
    (ATT / "attention_2pass.einsum", {"E": 2, "F": 2, "M": 16, "P": 6}, "latency"),
])
def test_search_finds_the_enumerated_optimum(spec_path, shapes, objective):
    spec = cascade.load(spec_path, shapes)
    result = search(spec, TINY, objective, budget_s=600, top=1, whole_up_to=WHOLE_UP_TO)
    assert result.complete and result.gap() == 0.0  # every family scored or pruned by its bound
    assert result.families_scored + result.families_pruned <= result.families_total
    truth, refused = _brute_force(spec, TINY, objective)
    assert truth is not None and result.best
    assert refused > 0  # the buffer constraint is exercised, not vacuous
    found = result.best[0]
    assert found.objective == pytest.approx(truth[0], rel=1e-9)
    report = spec.estimate(found.mapping, TINY)  # the mapping it returns costs what it says
    assert report.latency_s == pytest.approx(found.latency_s, rel=1e-9)
    assert report.dram_bytes == pytest.approx(found.dram_bytes, rel=1e-9)


def test_search_never_beats_the_compulsory_floor():
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=2, H=2, E=64, F=64, M=2048, P=2048))
    result = search(spec, "fusemax", "traffic", budget_s=120, top=3)
    assert result.best[0].dram_bytes == result.compulsory_bytes == 4 * 2 * 2 * 2048 * 64 * 2
    assert all(c.dram_bytes >= result.compulsory_bytes for c in result.best)


def test_tile_values_cover_powers_of_two_and_the_size():
    values = tile_values(1000)
    assert {1, 2, 4, 512, 1000} <= set(values) and all(1000 >= v >= 1 for v in values)
    assert 1000 % 125 == 0 and any(v % 5 == 0 for v in values if v < 1000)


def test_search_cli_writes_a_mapping_that_estimate_and_compile_accept(tmp_path, capsys):
    out = tmp_path / "best.yaml"
    spec_path = str(ATT / "attention_1pass.einsum")
    code = main(["search", spec_path, "-t", "fusemax", "--budget", "30", "--top", "3", "-o", str(out),
                 "--shape", "M=600", "--shape", "P=500"])
    text = capsys.readouterr().out
    assert code == 0 and "floor: compulsory DRAM traffic" in text and out.exists()
    load_mapping(out)
    assert main(["estimate", spec_path, "-m", str(out), "-t", "fusemax", "--shape", "M=600", "--shape", "P=500"]) == 0
    spec = cascade.load(spec_path, {"M": 600, "P": 500})
    inputs = spec.random_inputs(seed=1)
    got = spec.executor(out).run(**inputs)["AV"]
    assert np.allclose(got, spec.run(inputs)["AV"], rtol=1e-9, atol=1e-12)
    capsys.readouterr()
    code = main(["search", spec_path, "-t", "fusemax", "--budget", "30", "--json", "--shape", "M=600"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["best"] and data["compulsory_bytes"] == compulsory_bytes(
        cascade.load(spec_path, {"M": 600}), 2)
    assert data["best"][0]["traffic_over_compulsory"] >= 1.0


def test_search_errors(capsys):
    spec_path = str(ROOT / "specs" / "matmul.einsum")
    assert main(["search", spec_path, "-t", "flat_edge", "--objective", "energy"]) == 2
    assert "gives no per-access energies" in capsys.readouterr().err
    for bad in ("0", "-1", "nan", "inf", "-inf"):
        assert main(["search", spec_path, "-t", "fusemax", f"--budget={bad}"]) == 2
        assert "must be positive and finite" in capsys.readouterr().err
    assert main(["search", spec_path, "-t", "fusemax", "-o", "/nonexistent-folder/best.yaml"]) == 2
    assert "its folder does not exist (checked before searching)" in capsys.readouterr().err


def test_search_vs_artifact_benchmark_at_1k(capsys):
    """benchmarks/search_vs_artifact.py at BERT 1K: the searched mapping's traffic is at most the
    FuseMax artifact's and at the compulsory floor, and the whole space was scored."""
    from benchmark_module import benchmark_module

    with benchmark_module("search_vs_artifact") as module:
        rows = module.part1(["1K"], budget=120)
    (row,) = rows
    assert row["traffic"] <= row["artifact_traffic"] and row["traffic"] == row["compulsory"]
    assert row["compulsory"] == 4 * 64 * 12 * 1024 * 64 * 2
    scored, total = row["families"].split("/")
    assert row["optimal"] and int(scored) + row["pruned"] <= int(total)  # scored or pruned by bound: all
