"""Accumulators on chip (issue 12, item 6; Why 5): a reduction tiled along its reduced rank keeps
its partial results on chip when the mapping says so, or by default when they are one tile of
the output; DRAM partial-sum traffic is then zero, the executor's trace equals the model, and the
result equals plain NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.cli import main
from cascade.errors import MappingError
from cascade.mapping.mapping_file import dump_mapping, parse_mapping
from cascade.model.traffic import dram_traffic

ROOT = Path(__file__).resolve().parent.parent
K, M, N, K0, M0 = 10, 6, 5, 4, 2
K1, M1 = -(-K // K0), -(-M // M0)


def matmul(mapping: str):
    spec = cascade.load(ROOT / "specs" / "matmul.einsum", {"K": K, "M": M, "N": N})
    m = parse_mapping(mapping)
    inputs = spec.random_inputs(seed=5)
    outputs, trace = spec.executor(m).run_traced(**inputs)
    np.testing.assert_allclose(outputs["Z"], np.einsum("km,kn->mn", inputs["A"], inputs["B"]), rtol=1e-12)
    model = dram_traffic(spec.bind(m)).numeric()
    for t in set(model) | set(trace["reads"]) | set(trace["writes"]):
        assert model.get(t, (0, 0)) == (trace["reads"].get(t, 0), trace["writes"].get(t, 0)), t
    return spec, m, trace


@pytest.mark.parametrize("order, place, z_reads, z_writes", [
    ("[K1, M, N, K0]", "", 0, M * N),                     # default: one tile, on chip
    ("[K1, M, N, K0]", "on-chip", 0, M * N),
    ("[K1, M, N, K0]", "dram", (K1 - 1) * M * N, K1 * M * N),
    ("[M1, K1]", "", 0, M * N),                           # reduced loop innermost: one tile
    ("[K1, M1]", "", (K1 - 1) * M * N, K1 * M * N),      # M1 inside K1: a wide accumulator, DRAM
    ("[K1, M1]", "on-chip", 0, M * N),                    # ... unless the mapping keeps it
])
def test_matmul_partial_sums(order, place, z_reads, z_writes):
    parts = f"K: [uniform_shape({K0})]" + (f", M: [uniform_shape({M0})]" if "M1" in order else "")
    text = f"partitioning: {{{parts}}}\nloop-order: {{default: {order}}}\n"
    if place:
        text += f"accumulate: {{default: {place}}}\n"
    _, _, trace = matmul(text)
    assert trace["reads"].get("Z", 0) == z_reads
    assert trace["writes"]["Z"] == z_writes


def test_a_wide_on_chip_accumulator_counts_in_the_footprint():
    """[K1, M1] with Z on chip holds all of Z (M*N) across the K1 loop: the footprint grows by
    exactly that, and a buffer smaller than it refuses the mapping."""
    base = f"partitioning: {{K: [uniform_shape({K0})], M: [uniform_shape({M0})]}}\nloop-order: {{default: [K1, M1]}}\n"
    spec = cascade.load(ROOT / "specs" / "matmul.einsum", {"K": K, "M": M, "N": N})
    dram = spec.estimate(parse_mapping(base + "accumulate: {Z: dram}"), "fusemax")
    chip = spec.estimate(parse_mapping(base + "accumulate: {Z: on-chip}"), "fusemax")
    assert chip.on_chip_bytes - dram.on_chip_bytes == M * N * 2  # fusemax words are 2 bytes
    assert [p.get("accumulator") for p in (dram.placement + chip.placement)] == ["dram", "on-chip"]
    assert dram.dram_bytes - chip.dram_bytes == ((K1 - 1) * M * N + (K1 - 1) * M * N) * 2
    big = cascade.load(ROOT / "specs" / "matmul.einsum", {"K": 64, "M": 4096, "N": 4096})
    with pytest.raises(MappingError, match="keeps .* on chip"):
        big.estimate(parse_mapping("partitioning: {K: [uniform_shape(16)], M: [uniform_shape(256)]}\n"
                                   "loop-order: {default: [K1, M1]}\naccumulate: {Z: on-chip}"), "fusemax")


def test_attention_av_tiled_outside_its_group_keeps_av_on_chip():
    """Why 5: AV of 3-pass attention with M tiled, in its own group: by default its partial sums
    stay on chip (AV written once, never read); in DRAM they cost (M1 - 1) F*P reads."""
    shapes = {"E": 4, "F": 3, "M": 50, "P": 20}
    spec = cascade.load(ROOT / "specs" / "attention" / "attention_3pass.einsum", shapes)
    inputs = spec.random_inputs(seed=2)
    expected = spec.run(inputs)["AV"]
    m1 = -(-50 // 16)
    for place, reads in (("", 0), ("accumulate: {AV: dram}", (m1 - 1) * 3 * 20)):
        m = parse_mapping("partitioning: {M: [uniform_shape(16)]}\n" + place)
        outputs, trace = spec.executor(m).run_traced(**inputs)
        np.testing.assert_allclose(outputs["AV"], expected, rtol=1e-12)
        writes = 3 * 20 * (m1 if reads else 1)
        assert (trace["reads"].get("AV", 0), trace["writes"]["AV"]) == (reads, writes)
        assert dram_traffic(spec.bind(m)).numeric()["AV"] == (reads, writes)


def test_accumulate_round_trips_and_errors(tmp_path, capsys):
    m = parse_mapping("accumulate: {default: dram, Z: on-chip}")
    assert m.accumulate_for("Z") == "on-chip" and m.accumulate_for("Y") == "dram"
    assert parse_mapping(dump_mapping(m)).accumulate == m.accumulate
    with pytest.raises(MappingError, match="accumulate.Z: expected on-chip or dram, got 'sram'"):
        parse_mapping("accumulate: {Z: sram}")
    spec = tmp_path / "mm.einsum"
    spec.write_text((ROOT / "specs" / "matmul.einsum").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text("accumulate: {Y: on-chip}\n")
    assert main(["estimate", str(spec), "-m", str(bad), "-t", "fusemax"]) == 2
    assert "accumulate.Y: unknown Einsum Y" in capsys.readouterr().err


def test_a_loop_over_a_split_part_of_a_kept_rank_is_no_reduction():
    """GQA writes rank H of `AV[F, H, P]` through the parts of `split H = G * R`; the loop over G
    is not a loop over a reduced rank, so AV is written once per point and never read back
    (it was, as DRAM partial sums, in the trace and the model alike)."""
    spec = cascade.load(ROOT / "specs" / "attention" / "gqa_1pass.einsum",
                        {"H": 8, "R": 4, "E": 4, "F": 3, "M": 20, "P": 9})
    m = parse_mapping("partitioning: {M: [uniform_shape(8)], P: [uniform_shape(4)]}\n"
                      "fusion: [[QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV]]\n")
    inputs = spec.random_inputs(seed=2)
    outputs, trace = spec.executor(m).run_traced(**inputs)
    q, k, v = inputs["Q"], np.repeat(inputs["K"], 4, axis=1), np.repeat(inputs["V"], 4, axis=1)
    s = np.einsum("ehp,ehm->hmp", q, k)
    w = np.exp(s - s.max(axis=1, keepdims=True))
    np.testing.assert_allclose(outputs["AV"], np.einsum("fhm,hmp->fhp", v, w / w.sum(axis=1, keepdims=True)),
                               rtol=1e-12)
    model = dram_traffic(spec.bind(m)).numeric()
    assert trace["reads"].get("AV", 0) == 0 and trace["writes"]["AV"] == 3 * 8 * 9
    for t in set(model) | set(trace["reads"]) | set(trace["writes"]):
        assert model.get(t, (0, 0)) == (trace["reads"].get(t, 0), trace["writes"].get(t, 0)), t
