"""The Grayskull grid model: target validation, L1 refusal, exact DRAM traffic, multicast and
row exchange, Table I of arXiv 2407.13885 within 1.5x, the single calibration point, the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

import cascade
from cascade.cli import main
from cascade.errors import MappingError, TargetError
from cascade.mapping.mapping_file import load_mapping
from cascade.model.grayskull import estimate_grid
from cascade.model.target import load_target, parse_target
from benchmark_module import benchmark_module

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "scores_softmax.einsum"
MAPS = ROOT / "mappings" / "scores_softmax"
TARGET_FILE = ROOT / "specs" / "targets" / "grayskull_e150.yaml"
TABLE1 = ROOT.parent / "shared" / "external" / "grayskull" / "table1.csv"
SOFTMAX = "GM+SN+SD+A"


def fused(n: int, block: int | None = None):
    """The fused kernel's mapping with (n/8)-blocks: 8x8 cores for every n, as in the paper."""
    m = load_mapping(MAPS / "grayskull_fused.yaml")
    b = block or n // 8
    return dataclasses.replace(m, partitioning={"P": (b,), "M": (b,)})


def dedicated():
    return load_mapping(MAPS / "grayskull_dedicated.yaml")


@pytest.fixture(scope="module")
def target():
    return load_target("grayskull_e150")


def _bad(old: str, new: str) -> str:
    text = TARGET_FILE.read_text()
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize("old, new, message", [
    ("  dram_efficiency: 0.2666", "  dram_efficiency: 1.5", r"grid.dram_efficiency: 1.5 is a fraction .* at most 1"),
    ("  compute: [9, 12]", "  compute: [11, 12]", r"grid.compute: \[11, 12\] compute cores do not fit the \[10, 12\]"),
    ("  l1_bytes: 1048576", "  l1_bytes: -4", r"grid.l1_bytes: expected a positive integer, got -4"),
    ("  tile: [32, 32]", "  tile: 32", r"grid.tile: expected \[rows, columns\]"),
    ("      exp: 2527", "      expo: 2527", (r"grid.tile_cycles.vector.expo: vector does not do 'expo'"
                                             r"(?s:.*)grid.tile_cycles.vector: missing the cycles of exp")),
    ("    matrix:\n      mac: 171", "    tensor:\n      mac: 171", r"grid.tile_cycles.tensor: not a unit of this target"),
    ("    round_trip_cycles: 490", "    round_trip_cycles: slow", r"grid.noc.round_trip_cycles: expected a non-negative"),
    ("grid:\n", "gird:\n", r"grid: missing: a grid target needs a 'grid:' section"),
])
def test_target_validation_errors(old, new, message):
    with pytest.raises(TargetError, match=message):
        parse_target(_bad(old, new), "gs.yaml")


def test_bundled_target_loads(target):
    assert target.kind == "grid" and target.clock_hz == 1.2e9 and target.word_bytes == 2
    assert target.dram_bandwidth == 118.4e9 and set(target.units) == {"matrix", "vector"}
    grid = target.extra["grid"]
    assert grid["shape"] == [10, 12] and grid["compute"] == [9, 12] and grid["l1_bytes"] == 2**20


def test_fused_refused_at_8192_accepted_at_4096(target):
    spec = cascade.load(SPEC, {"M": 8192, "P": 8192})
    with pytest.raises(MappingError, match=r"group QK\+S\+GM\+SN\+SD\+A needs 2\.50 MiB of L1 per core "
                                           r"\(QK 2\.00 MiB.*over by 1\.50 MiB"):
        estimate_grid(spec.bind(fused(8192)), target)
    report = estimate_grid(cascade.load(SPEC, {"M": 4096, "P": 4096}).bind(fused(4096)), target)
    g = report.groups[0]
    assert g["l1_bytes_per_core"] == 768 * 1024  # the 512x512 block plus Q and K blocks; S, SN in place
    assert g["cores"] == 64 and g["grid"] == [8, 8]


def test_dedicated_softmax_placement(target):
    """Rows of 32-row tiles over 108 cores: at n = 8192, 256 rows -> 3 on the first 40 cores."""
    report = estimate_grid(cascade.load(SPEC, {"M": 8192, "P": 8192}).bind(dedicated()), target, [SOFTMAX])
    g = report.groups[0]
    assert g["cores"] == 108 and g["iterations_per_core"] == 3 and g["grid"] == [9, 12]
    assert g["l1_bytes_per_core"] == 2 * (8192 * 32 + 32)  # a row of score tiles and its max; SN in place
    with pytest.raises(MappingError, match=r"no fusion group 'softmax': the groups are QK\+S, GM\+SN\+SD\+A"):
        estimate_grid(cascade.load(SPEC).bind(dedicated()), target, ["softmax"])


def test_multicast_and_row_exchange(target):
    """Fused, n = 1024: K is read once per grid column and multicast down it, Q once per grid
    row and multicast along it; each core gathers 7 x 4 partial tiles for the max and the sum."""
    report = estimate_grid(cascade.load(SPEC).bind(fused(1024)), target)
    g = report.groups[0]
    q = k = 128 * 1024 * 2
    a = 1024 * 1024 * 2
    assert g["dram_bytes"] == q + 8 * k + a  # the executor's trace: K loaded per (P1, M1)
    assert g["dram_device_bytes"] == q + k + a
    assert g["noc_multicast_bytes"] == 7 * q + 7 * k
    assert g["noc_remote_reads_per_core"] == 2 * 7 * 4
    assert g["dram_bytes_per_bank"] == g["dram_device_bytes"] / 8


@pytest.mark.parametrize("mapping", ["dedicated", "fused"])
def test_dram_traffic_equals_executor_trace(mapping, target):
    spec = cascade.load(SPEC, {"M": 256, "P": 192, "E": 16})
    m = dedicated() if mapping == "dedicated" else fused(256, block=64)
    report = estimate_grid(spec.bind(m), target)
    _, trace = spec.executor(m).run_traced(**spec.random_inputs(seed=1))
    tensors = set(report.per_tensor) | set(trace["reads"]) | set(trace["writes"])
    for t in tensors:
        got = report.per_tensor.get(t, {"read_bytes": 0, "write_bytes": 0})
        assert (got["read_bytes"], got["write_bytes"]) == (2 * trace["reads"].get(t, 0),
                                                           2 * trace["writes"].get(t, 0)), t
    assert report.dram_bytes == 2 * (sum(trace["reads"].values()) + sum(trace["writes"].values()))


def _table1() -> dict[int, dict[str, str]]:
    with open(TABLE1, newline="") as fh:
        return {int(r["n"]): r for r in csv.DictReader(fh)}


def test_table1_within_1_5x(target):
    """Every Table I point within 1.5x: the dedicated softmax program (group GM+SN+SD+A) at
    n = 1024..8192 and the fused kernel at n = 1024..4096 (4096 is the calibration point)."""
    table = _table1()
    ratios = {}
    for n in (1024, 2048, 4096, 8192):
        spec = cascade.load(SPEC, {"M": n, "P": n})
        r = estimate_grid(spec.bind(dedicated()), target, [SOFTMAX])
        ratios[("dedicated", n)] = r.extra["kernel_s"] * 1e3 / float(table[n]["gs_softmax_multicore_kernel_ms"])
        if n <= 4096:
            r = estimate_grid(spec.bind(fused(n)), target)
            ratios[("fused", n)] = r.extra["kernel_s"] * 1e3 / float(table[n]["gs_fused_kernel_ms"])
    assert len(ratios) == 7
    for key, ratio in ratios.items():
        assert 1 / 1.5 <= ratio <= 1.5, (key, ratio)
    assert ratios[("fused", 4096)] == pytest.approx(1.0, abs=0.01)  # the calibration point itself


def _benchmark():
    with benchmark_module("grayskull_table") as module:
        return module


def test_constants_come_from_the_single_calibration_point(target):
    """Every fitted constant of the target file is what the fused kernel at n = 4096 gives."""
    for row in _benchmark().calibration(target):
        assert row["target_file"] == pytest.approx(row["derived"], rel=0.01), row["constant"]


def test_benchmark_json(capsys):
    assert _benchmark().main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    roles = [(r["kernel"], r["n"], r["role"]) for r in data["rows"]]
    assert ("fused", 8192, "refused") in roles and ("fused", 4096, "calibration") in roles
    assert sum(role == "prediction" for _, _, role in roles) == 6 and data["ok"]


@pytest.mark.parametrize("mapping", ["grayskull_dedicated", "grayskull_fused"])
def test_cli_estimate_json(mapping, capsys):
    code = main(["estimate", str(SPEC), "-m", str(MAPS / f"{mapping}.yaml"), "-t", "grayskull_e150", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("dram_bytes", "dram_read_bytes", "dram_write_bytes", "latency_s", "utilization", "per_tensor",
                "per_unit"):
        assert key in data
    assert set(data["per_unit"]) == {"matrix", "vector"} and set(data["utilization"]) == {"matrix", "vector"}
    assert data["dram_bytes"] == data["dram_read_bytes"] + data["dram_write_bytes"]
    extra = data["extra"]
    assert data["latency_s"] == pytest.approx(extra["kernel_s"] + extra["dispatch_s"])
    assert extra["dispatch_s"] == pytest.approx(0.00014 * extra["programs"])
    for g in data["groups"]:
        assert {"l1_bytes_per_core", "dram_bytes_per_bank", "noc_multicast_bytes", "slowest_core",
                "kernel_s", "dispatch_s"} <= set(g)


def test_cli_refusal_is_a_user_error(capsys):
    """The dedicated mapping's first group holds all of K on one core: refused from n = 4096."""
    code = main(["estimate", str(SPEC), "-m", str(MAPS / "grayskull_dedicated.yaml"), "-t", "grayskull_e150",
                 "--shape", "M=4096", "--shape", "P=4096"])
    err = capsys.readouterr().err
    assert code == 2 and "group QK+S needs 1.26 MiB of L1 per core" in err and "Traceback" not in err


def test_cli_estimate_text_shows_each_program_per_core(capsys):
    """The table names, per program, its cores and how the space ranks spread over them, and the
    L1 per core, DRAM per bank and NoC figures of the JSON groups."""
    argv = ["estimate", str(SPEC), "-m", str(MAPS / "grayskull_fused.yaml"), "-t", "grayskull_e150"]
    assert main([*argv, "--json"]) == 0
    group = json.loads(capsys.readouterr().out)["groups"][0]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "per program (one fusion group), per core of the grid:" in out
    assert f"{group['group']}: 64 cores 8x8; P1 8 over 8 cores (1 each), M1 8 over 8 cores (1 each)" in out
    assert f"L1 {group['l1_bytes_per_core'] / 1024:.2f} KiB per core" in out
    assert f"({group['dram_bytes_per_bank'] / 1024:.2f} KiB per bank)" in out
    assert f"NoC multicast {group['noc_multicast_bytes'] / 2**20:.2f} MiB" in out


def test_cli_group_costs_one_program(capsys):
    """`--group GM+SN+SD+A` costs the dedicated softmax program alone (as Table I measures it):
    the same figures as the model restricted to that group, less than the whole mapping."""
    argv = ["estimate", str(SPEC), "-m", str(MAPS / "grayskull_dedicated.yaml"), "-t", "grayskull_e150", "--json"]
    assert main([*argv, "--group", "GM+SN+SD+A"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    whole = json.loads(capsys.readouterr().out)
    assert [g["group"] for g in alone["groups"]] == ["GM+SN+SD+A"]
    assert alone["groups"][0] == next(g for g in whole["groups"] if g["group"] == "GM+SN+SD+A")
    assert alone["latency_s"] < whole["latency_s"]
    assert main([*argv, "--group", "softmax"]) == 2
    assert "no fusion group 'softmax': the groups are QK+S, GM+SN+SD+A" in capsys.readouterr().err
    assert main(["estimate", str(SPEC), "-t", "fusemax", "--group", "QK"]) == 2
    assert "for grid targets" in capsys.readouterr().err
