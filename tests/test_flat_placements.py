"""FLAT as the FuseMax artifact places its tensors (flat_validation.csv): flat_offchip.yaml (from
256K on: QK and A in DRAM, weight-stationary 1024-row blocks, a row of scores kept across the
softmax's passes) and flat_bypass{,_q,_v}.yaml (Q, V streamed or kept on chip): DRAM traffic
against closed forms and artifact rows, the executor's trace against the model, `keep` errors."""

from __future__ import annotations

import csv
from math import ceil
from pathlib import Path

import pytest

import cascade
from cascade.mapping.mapping_file import parse_mapping
from oracles import assert_trace_equals_model, traced_run_matches_reference

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "mha_3pass.einsum"
MAPPING = ROOT / "mappings" / "mha_3pass" / "flat_offchip.yaml"
ARTIFACT = ROOT.parent / "shared" / "external" / "fusemax"


def closed_form(b, h, e, f, m, p, block=1024):
    """Elements moved: Q once (its block stays on chip); K and V once per block of query rows
    (each 256-wide tile read once per block, the key loop outermost); QK written once and read
    back once (a row kept on chip across the softmax's passes); A written and read back once;
    AV written once (accumulated on chip)."""
    blocks = ceil(p / block)
    return b * h * (e * p + e * m * blocks + f * m * blocks + 2 * m * p + 2 * m * p + f * p)


def test_traffic_closed_form_and_trace():
    shapes = dict(B=1, H=2, E=8, F=8, M=600, P=2100)
    spec = cascade.load(SPEC, shapes)
    report = spec.estimate(MAPPING, "flat_cloud")
    assert not report.extra.get("spills")
    assert report.dram_bytes == 2 * closed_form(1, 2, 8, 8, 600, 2100)
    assert report.per_tensor["QK"]["read_bytes"] == 2 * 2 * 600 * 2100
    assert report.on_chip_bytes >= 2 * 600  # a whole row of scores (M = 600) on chip at once
    _, trace = traced_run_matches_reference(spec, MAPPING, "flat_cloud", 6)
    assert_trace_equals_model(report, trace, 2, exact=True)  # 2-byte words


def test_without_keep_the_softmax_reads_the_scores_per_pass():
    """Left out, `keep` changes only where QK is loaded: once per pass over M (max, then
    exponent), so QK is read twice; the results stay right."""
    text = MAPPING.read_text().replace("keep:\n  QK: [M1]\n", "")
    spec = cascade.load(SPEC, dict(B=1, H=2, E=8, F=8, M=600, P=700))
    plain = spec.estimate(parse_mapping(text, "plain.yaml"), "flat_cloud")
    kept = spec.estimate(MAPPING, "flat_cloud")
    assert plain.per_tensor["QK"]["read_bytes"] == 2 * kept.per_tensor["QK"]["read_bytes"] == 2 * 2 * 2 * 600 * 700
    assert plain.dram_bytes - kept.dram_bytes == 2 * 2 * 600 * 700


@pytest.mark.parametrize("bad, message", [
    ("keep:\n  QK: [M0]\n", r"keep\.QK: M0 is not an outer level of a partitioned rank"),
    ("keep:\n  AV: [M1]\n", r"keep\.AV: M1 is not a loop around a statement that loads AV"),
    ("keep:\n  SN: [M1]\n", r"keep\.SN: SN stays on chip .* nothing to keep")])
def test_bad_keep_is_named(bad, message):
    text = MAPPING.read_text().replace("keep:\n  QK: [M1]\n", bad)
    spec = cascade.load(SPEC, dict(B=1, H=1, E=8, F=8, M=300, P=300))
    with pytest.raises(cascade.errors.MappingError, match=message):
        spec.estimate(parse_mapping(text, "bad.yaml"), "flat_cloud")


@pytest.mark.skipif(not ARTIFACT.is_dir(), reason="the FuseMax artifact's results are in ../shared")
@pytest.mark.parametrize("model, length, heads, e, n", [("BERT", "256K", 12, 64, 262144),
                                                         ("XLM", "1M", 16, 128, 1048576)])
def test_artifact_rows_traffic(model, length, heads, e, n):
    """The artifact's traffic to 1e-12: its StableSoftmax reads each row of scores from DRAM once
    (check_dram: the max einsum) and keeps it for the exponent, as `keep: QK: [M1]` does."""
    with open(ARTIFACT / "attn-flat.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if (r["model"], r["seq_len"]) == (model, length))
    spec = cascade.load(SPEC, dict(B=64, H=heads, E=e, F=e, M=n, P=n))
    report = spec.estimate(MAPPING, "flat_cloud")
    assert report.dram_bytes == 2 * closed_form(64, heads, e, e, n, n)
    assert report.dram_bytes == pytest.approx(float(row["traffic"]), rel=1e-12)
    # the three kernels overlap (Flat.eval: max(DRAM, 2D, 1D) over the whole run): DRAM-bound
    assert report.latency_s == pytest.approx(report.dram_bytes / (400 * 2**30), rel=1e-12)
    assert report.latency_s == pytest.approx(float(row["latency"]), rel=1e-9)
    assert report.utilization["array1d"] == pytest.approx(float(row["util_1d"]), rel=1e-9)


def test_overlap_latency_is_one_max_over_the_set():
    """With `overlap`, the set's latency is max(DRAM bytes / bandwidth, each unit's cycles summed
    over the groups); without it, the groups' own maxima add up. The symbolic formula agrees."""
    from cascade.model.symbolic import cost_formulas
    from cascade.model.symbols import SymbolTable
    from cascade.model.target import load_target

    spec = cascade.load(SPEC, dict(B=2, H=2, E=64, F=64, M=4096, P=4096))
    together = spec.estimate(MAPPING, "flat_cloud")
    text = MAPPING.read_text().replace("overlap:\n  - [QK, GM, SN, SD, A, AV]\n", "")
    apart = spec.estimate(parse_mapping(text, "apart.yaml"), "flat_cloud")
    target = load_target("flat_cloud")
    units: dict[str, float] = {}
    for g in together.groups:
        for u, c in g["unit_cycles"].items():
            units[u] = units.get(u, 0.0) + c
    expected = max(together.dram_bytes / target.dram_bandwidth, max(units.values()) / target.clock_hz)
    assert together.latency_s == pytest.approx(expected, rel=1e-12)
    assert apart.latency_s == pytest.approx(sum(g["latency_s"] for g in apart.groups), rel=1e-12)
    assert together.latency_s < apart.latency_s and together.dram_bytes == apart.dram_bytes
    mc = spec.bind(MAPPING)
    formulas = cost_formulas(mc, target)
    table = SymbolTable(mc)
    table.symbols.update(formulas.symbols)
    table.values.update(formulas.values)
    assert float(formulas.latency_s.subs(table.substitutions())) == pytest.approx(together.latency_s, rel=1e-9)


@pytest.mark.parametrize("replacement, message", [
    ("  - [QK, GM, SN]\n", r"overlap\[0\]: lists part of fusion group \[GM, SN, SD, A\] \(not SD, A\)"),
    ("  - [QK, XX]\n", r"overlap\[0\]: unknown Einsum XX"),
    ("  - [QK, AV]\n  - [AV]\n", r"overlap: AV is in two groups"),
])
def test_bad_overlap_is_named(replacement, message):
    text = MAPPING.read_text().replace("  - [QK, GM, SN, SD, A, AV]\n", replacement)
    spec = cascade.load(SPEC, dict(B=1, H=1, E=8, F=8, M=300, P=300))
    with pytest.raises(cascade.errors.MappingError, match=message):
        spec.estimate(parse_mapping(text, "bad.yaml"), "flat_cloud")


def test_keep_over_a_loop_that_is_no_partition_level_is_refused():
    """FuseMax's K depends on M1, the cascade's own split of M (not a mapping partition):
    keeping K across P2 would need K's whole M above M1, which a load cannot be widened to."""
    text = (ROOT / "mappings" / "mha_1pass" / "fusemax.yaml").read_text() + "\nkeep:\n  K: [P2]\n"
    spec = cascade.load(ROOT / "specs" / "attention" / "mha_1pass.einsum")
    with pytest.raises(cascade.errors.MappingError, match=r"keep\.K: K's region depends on M1 inside P2"):
        spec.estimate(parse_mapping(text, "keep.yaml"), "fusemax")


PLACEMENTS = [  # mapping, (Q reads, K reads, V reads) in multiples of the tensor, per M = P = n, 256-row blocks
    ("flat_bypass", lambda n: (n / 256, n / 256, n / 256)),
    ("flat_bypass_v", lambda n: (n / 256, n / 256, 1)),  # V kept on chip: each head's V read once
    ("flat_bypass_q", lambda n: (1, n / 256, n / 256)),  # a block of Q kept across the key tiles
]


@pytest.mark.parametrize("name, reads", PLACEMENTS)
def test_flat_placements_closed_form_and_trace(name, reads):
    """FLAT with Q, K, V streamed or kept on chip as flat_validation.csv places them: each
    tensor's reads against the closed form, the executor's trace against the model."""
    path = ROOT / "mappings" / "mha_3pass" / f"{name}.yaml"
    n, e = 768, 4
    spec = cascade.load(SPEC, dict(B=1, H=2, E=e, F=e, M=n, P=n))
    report = spec.estimate(path, "flat_cloud")
    q, k, v = reads(n)
    size = 2 * 2 * e * n  # bytes of Q (= K = V = AV) at B = 1, H = 2
    assert [report.per_tensor[t]["read_bytes"] for t in "QKV"] == [q * size, k * size, v * size]
    assert report.per_tensor["AV"]["write_bytes"] == size
    _, trace = traced_run_matches_reference(spec, path, "flat_cloud", 7)
    assert_trace_equals_model(report, trace, 2, exact=True)  # 2-byte words


@pytest.mark.skipif(not ARTIFACT.is_dir(), reason="the FuseMax artifact's results are in ../shared")
def test_xlm_1k_with_v_on_chip_is_the_artifact_row():
    """XLM at 1K: FLAT keeps V on chip (flat_validation.csv), nothing spills: the artifact's traffic."""
    with open(ARTIFACT / "attn-flat.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if (r["model"], r["seq_len"]) == ("XLM", "1K"))
    spec = cascade.load(SPEC, dict(B=64, H=16, E=128, F=128, M=1024, P=1024))
    report = spec.estimate(ROOT / "mappings" / "mha_3pass" / "flat_bypass_v.yaml", "flat_cloud")
    assert report.dram_bytes == pytest.approx(float(row["traffic"]), rel=1e-12)
