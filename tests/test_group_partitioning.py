"""Per-group partitioning (`partitioning: {QK: {P: [...]}}`, cascade.mapping.variants): each fusion
group runs its own partition of a rank; the model's traffic equals the executor's trace tensor by
tensor (spills and streamed tiles included), results stay right, closed forms hold, and entries
that would change what one loop nest computes are exit-2 errors naming the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

import cascade
from cascade.errors import MappingError
from cascade.mapping.mapping_file import dump_mapping, parse_mapping
from cascade.model.target import parse_target
from oracles import assert_trace_equals_model, traced_run_matches_reference

ROOT = Path(__file__).resolve().parent.parent
MHA3 = ROOT / "specs" / "attention" / "mha_3pass.einsum"

UNFUSED = """
partitioning:
  B: [uniform_shape(1)]
  H: [uniform_shape(1)]
  P: [uniform_shape(4)]
  QK: {P: [uniform_shape(8), uniform_shape(4)], M: [uniform_shape(5)]}
  AV: {P: [uniform_shape(16)]}
loop-order:
  default: [B1, H1, P1, P0, M, E, F, B0, H0]
  QK: [B1, H1, P2, M1, P1, P0, M0, E, B0, H0]
spacetime:
  default: {space: [P0, M], time: [B1, H1, P1, E, F]}
  QK: {space: [P0, M0], time: [B1, H1, P2, M1, P1, E]}
  GM: {space: [M], time: [B1, H1, P1, P0]}
  SN: {space: [M], time: [B1, H1, P1, P0]}
  SD: {space: [M], time: [B1, H1, P1, P0]}
  A:  {space: [M], time: [B1, H1, P1, P0]}
fusion: [[QK], [GM, SN, SD, A], [AV]]
binding: {default: array2d, GM: array1d, SN: array1d, SD: array1d, A: array1d}
"""


def target(capacity: int):
    text = (ROOT / "specs" / "targets" / "flat_cloud.yaml").read_text().replace("in_place: true", "in_place: false")
    old = next(line for line in text.splitlines() if "capacity_bytes:" in line)
    return parse_target(text.replace(old, f"  capacity_bytes: {capacity}"), "small_flat_cloud.yaml")


def check_trace(spec, mapping, tgt, seed=3):
    report = spec.estimate(mapping, tgt)
    _, trace = traced_run_matches_reference(spec, mapping, tgt, seed)
    assert_trace_equals_model(report, trace, tgt.word_bytes)
    return report, trace


@pytest.mark.parametrize("shapes", [dict(B=1, H=2, E=4, F=4, M=23, P=30), dict(B=2, H=1, E=3, F=5, M=10, P=17)])
def test_own_partitions_trace_equals_model_and_closed_forms(shapes):
    spec = cascade.load(MHA3, shapes)
    mapping = parse_mapping(UNFUSED, "unfused_own.yaml")
    report, trace = check_trace(spec, mapping, target(16 * 2**20))
    b, h, e, f, m, p = (shapes[r] for r in "BHEFMP")
    # QK: K is loaded per (P2, M1) step, so read once per 8-row block of P; Q once (widened to the block)
    assert trace["reads"]["K"] == b * h * e * m * -(-p // 8)
    assert trace["reads"]["Q"] == b * h * e * p
    # AV: V (indexed by M, computed whole) once per head, whatever its 16-row blocks of P
    assert trace["reads"]["V"] == b * h * f * m
    assert trace["writes"]["QK"] == trace["reads"]["QK"] == b * h * m * p
    one = spec.estimate(parse_mapping(UNFUSED.replace("  QK: {P: [uniform_shape(8), uniform_shape(4)], M: [uniform_shape(5)]}\n",
                                                      "").replace("  AV: {P: [uniform_shape(16)]}\n", "")
                                      .replace("  QK: [B1, H1, P2, M1, P1, P0, M0, E, B0, H0]\n", "")
                                      .replace("QK: {space: [P0, M0], time: [B1, H1, P2, M1, P1, E]}", "QK: {space: [P0, M]}"),
                                      "one.yaml"), target(16 * 2**20))
    assert one.per_tensor["K"]["read_bytes"] / 2 == b * h * e * m  # QK's own M1 loop inside P2 is what re-reads K
    assert report.per_tensor["A"] == one.per_tensor["A"]  # the groups that keep the cascade's partitioning cost as before
    assert "own split P -> P2=" in spec.loop_nest(mapping)


def test_own_partitions_spill_and_stream_as_the_trace():
    """A 100-byte buffer: QK's and AV's own tiles stream (Q, V re-read at each use, by each
    group's own loops), the softmax group spills its intermediates; trace == model throughout."""
    spec = cascade.load(MHA3, dict(B=1, H=2, E=4, F=4, M=40, P=30))
    mapping = parse_mapping(UNFUSED, "unfused_own.yaml")
    report, trace = check_trace(spec, mapping, target(100), seed=3)
    lines = "\n".join(report.extra["spills"])
    assert "group QK " in lines and "group AV " in lines and "spilled SN:" in lines
    plain = spec.executor(mapping).run_traced(**spec.random_inputs(seed=3))[1]
    assert trace["reads"]["Q"] > plain["reads"]["Q"] and trace["reads"]["V"] > plain["reads"]["V"]


def test_round_trip_and_errors(capsys):
    mapping = parse_mapping(UNFUSED, "m.yaml")
    assert parse_mapping(dump_mapping(mapping), "again.yaml").einsum_partitioning == mapping.einsum_partitioning
    assert mapping.partitioning_for("QK")["P"] == (8, 4) and mapping.partitioning_for("GM")["P"] == (4,)
    spec = cascade.load(MHA3, dict(B=1, H=1, E=4, F=4, M=8, P=8))
    shared = UNFUSED.replace("fusion: [[QK], [GM, SN, SD, A], [AV]]", "fusion: [[QK, GM, SN, SD, A], [AV]]")
    with pytest.raises(MappingError, match=r"partitioning\.QK\.P: QK shares P with GM in fusion group"):
        spec.bind(parse_mapping(shared, "shared.yaml"))
    with pytest.raises(MappingError, match=r"partitioning\.AV\.E: AV does not iterate E"):
        spec.bind(parse_mapping(UNFUSED.replace("AV: {P:", "AV: {E: [uniform_shape(2)], P:"), "e.yaml"))
    with pytest.raises(MappingError, match=r"partitioning\.XY: unknown Einsum XY"):
        spec.bind(parse_mapping(UNFUSED.replace("  AV: {P:", "  XY: {P:"), "x.yaml"))
    with pytest.raises(MappingError, match=r"partitioning\.QK\.P: levels \[4, 8\] must shrink"):
        parse_mapping(UNFUSED.replace("QK: {P: [uniform_shape(8), uniform_shape(4)]", "QK: {P: [uniform_shape(4), uniform_shape(8)]"))
    with pytest.raises(MappingError, match=r"the Triton backend takes one partitioning"):
        spec.compile(mapping, backend="triton")
    one_pass = cascade.load(ROOT / "specs" / "attention" / "attention_1pass.einsum", dict(E=4, F=4, M=8, P=8))
    split = "partitioning:\n  SLNV: {M: [uniform_shape(4)]}\n"
    with pytest.raises(MappingError, match=r"partitioning\.SLNV\.M: the cascade splits M itself"):
        one_pass.bind(parse_mapping(split, "split.yaml"))


def test_cli_refuses_a_shared_rank_with_exit_2(tmp_path, capsys):
    from cascade.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(UNFUSED.replace("fusion: [[QK], [GM, SN, SD, A], [AV]]", "fusion: [[QK, GM, SN, SD, A], [AV]]"))
    code = main(["estimate", str(MHA3), "-m", str(bad), "-t", "flat_cloud", "--shape", "M=16", "--shape", "P=16"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.yaml: partitioning.QK.P" in err and "Traceback" not in err


def test_formulas_follow_each_groups_own_tiles():
    """The symbolic model (search, DSE, --symbolic) gives each group's terms in its own tile
    symbols (renamed <level>_<Einsum>), and its numbers equal the estimate's."""
    import sympy as sp

    from cascade.model.symbolic import cost_formulas, footprint_formula
    from cascade.model.symbols import SymbolTable

    spec = cascade.load(MHA3, dict(B=1, H=2, E=4, F=4, M=23, P=30))
    mapping = parse_mapping(UNFUSED, "unfused_own.yaml")
    tgt = target(16 * 2**20)
    mc = spec.bind(mapping)
    formulas = cost_formulas(mc, tgt)
    assert {"P0_QK", "P1_QK", "M0_QK", "P0_AV"} <= set(formulas.symbols)
    table = SymbolTable(mc)
    table.symbols.update(formulas.symbols)
    table.values.update(formulas.values)
    footprint = sp.sympify(footprint_formula(mc, table))
    subs = {table.symbols[k]: v for k, v in table.values.items()}
    report = spec.estimate(mapping, tgt, symbolic=True)
    assert float(formulas.dram_bytes.subs(subs)) == pytest.approx(report.dram_bytes, rel=1e-12)
    assert float(formulas.latency_s.subs(subs)) == pytest.approx(report.latency_s, rel=1e-12)
    assert float(footprint.subs(subs)) * tgt.word_bytes == pytest.approx(report.on_chip_bytes, rel=1e-12)
    for unit, cycles in formulas.unit_cycles.items():
        assert float(sp.sympify(cycles).subs(subs)) == pytest.approx(report.per_unit[unit]["cycles"], rel=1e-12)
    k_reads = sp.sympify(report.symbolic["K.reads"], locals={n: s for n, s in table.symbols.items()})
    assert any(str(s).endswith("_QK") for s in k_reads.free_symbols)  # K is re-read per QK row block
    assert float(k_reads.subs(subs)) == report.per_tensor["K"]["read_bytes"] / tgt.word_bytes


ENCODER = """
partitioning:
  T: [uniform_shape(16)]
  FF: {T: [uniform_shape(64), uniform_shape(16)], D: [uniform_shape(16)]}
  H1: {T: [uniform_shape(32), uniform_shape(16)]}
loop-order:
  default: [T1, T0, N, D, S]
  FF: [T2, D1, T1, T0, D0, S]
  H1: [S, T2, T1, T0, D]
spacetime:
  default: {space: [T0, N], time: [T1, D]}
  Z:  {space: [T0, D], time: [T1, N]}
  H1: {space: [T0, S], time: [T2, T1, D]}
  FF: {space: [T0, D0], time: [T2, D1, T1, S]}
"""


def test_matmul_kernels_each_tiled_on_their_own():
    """The encoder layer's matmuls as the artifact tiles them (each its own token blocks): FF's
    weight W2 is re-read once per 64-token block (its column blocks D1 inside the token block),
    everything else moves once; trace == model, results right."""
    shapes = dict(T=150, D=40, N=24, S=56)
    spec = cascade.load(ROOT / "specs" / "transformer" / "encoder_linear.einsum", shapes)
    mapping = parse_mapping(ENCODER, "encoder_own.yaml")
    _, trace = check_trace(spec, mapping, parse_target((ROOT / "specs/targets/fusemax.yaml").read_text(), "f.yaml"))
    t, d, n, s = (shapes[r] for r in "TDNS")
    assert trace["reads"]["W2"] == s * d * -(-t // 64)
    assert trace["reads"]["W1"] == d * s  # H1's weight is loaded above its token blocks: once
    assert trace["reads"]["H1"] == trace["writes"]["H1"] == s * t
    assert trace["writes"]["FF"] == d * t and "FF" not in trace["reads"]


def test_masked_cascade_with_each_groups_own_tiles():
    """A causal cascade whose QK and AV run their own tiles (QK 16 query rows x 8 keys, AV 12 x 4,
    ragged): masks and ragged tiles stay right, trace == model, spills too. QK writes DRAM inside
    its loop, so it keeps every tile (mapping/skips.py): K is read once per QK row block. AV's
    accumulator stays on chip and is written after its key loop, so AV skips the key tiles that
    start past a row block's last query (m <= p): V is read up to that block's diagonal tile."""
    text = """
partitioning:
  P: [uniform_shape(8)]
  QK: {P: [uniform_shape(16)], M: [uniform_shape(8)]}
  AV: {M: [uniform_shape(4)], P: [uniform_shape(12)]}
loop-order: {QK: [P1, M1, P0, M0, E], AV: [P1, M1, P0, M0, F]}
fusion: [[QK], [GM, SN, SD, A], [AV]]
"""
    shapes = dict(E=4, F=4, M=37, P=29)
    spec = cascade.load(ROOT / "specs" / "attention" / "causal_3pass.einsum", shapes)
    mapping = parse_mapping(text, "causal_own.yaml")
    _, trace = check_trace(spec, mapping, target(16 * 2**20))
    assert trace["reads"]["K"] == 4 * 37 * -(-29 // 16)
    last_rows = [min(start + 12, 29) - 1 for start in range(0, 29, 12)]
    keys_read = [min(37, (last // 4 + 1) * 4) for last in last_rows]  # whole key tiles of 4
    assert trace["reads"]["V"] == 4 * sum(keys_read)
    report, _ = check_trace(spec, mapping, target(200))
    assert "spilled SN:" in "\n".join(report.extra["spills"])


def test_a_misspelt_default_level_is_still_refused():
    spec = cascade.load(MHA3, dict(B=1, H=1, E=4, F=4, M=8, P=8))
    bad = UNFUSED.replace("default: [B1, H1, P1, P0, M, E, F, B0, H0]", "default: [B1, H1, P7, P1, P0, M, E, F, B0, H0]")
    with pytest.raises(MappingError, match=r"loop-order\.default: unknown rank P7"):
        spec.bind(parse_mapping(bad, "typo.yaml"))
