"""A mapping's `buffer-reads`: the words moved between the global buffer and the arrays, charged at
the target's buffer energies in place of the DRAM fill-and-drain default (cascade.model.buffer_access),
against closed forms of FLAT's attention counted by hand; the symbolic model's energy formula gives
the same picojoules; a tensor or reader that is not there is refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

import cascade
from cascade.errors import MappingError
from cascade.mapping.mapping_file import dump_mapping, parse_mapping
from cascade.model.target import load_target

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "mha_3pass.einsum"
FLAT = ROOT / "mappings" / "mha_3pass" / "flat_bypass.yaml"


def test_flat_buffer_words_equal_the_closed_form():
    b, h, e, n = 2, 2, 64, 512
    spec = cascade.load(SPEC, dict(B=b, H=h, E=e, F=e, M=n, P=n))
    target = load_target("flat_cloud")
    report = spec.estimate(FLAT, target)
    s = b * h * n * n  # scores
    row = s / 256  # one word per row of a 256-wide tile of scores: GM and SD, each written and read once
    # reads: QK by GM and by SN, SN by A, A by AV (each element once: AV's F stays in the tile), GM by SN
    # and SD by A once per tile of 256 keys; writes: QK, SN and A once each, GM and SD once per tile
    reads, writes = 4 * s + 2 * row, 3 * s + 2 * row
    buf = target.energy["buffer"]
    got = report.extra["energy_pj"]["buffer"]
    assert got["read"] == pytest.approx(reads / 256 * buf["read"], rel=1e-12)
    assert got["write"] == pytest.approx(writes / 256 * buf["write"], rel=1e-12)


def test_operands_at_the_array_edge_follow_the_tile():
    """FuseMax's Q and K are read once per tile of the other operand's rank (E/256 each per score),
    V once per tile of query rows (F/256), the running sums once per key tile."""
    b, h, e, n = 1, 2, 64, 1024
    spec = cascade.load(ROOT / "specs" / "attention" / "mha_1pass.einsum", dict(B=b, H=h, E=e, F=e, M=n, P=n))
    target = load_target("fusemax")
    mapping = parse_mapping((ROOT / "mappings" / "mha_1pass" / "fusemax.yaml").read_text()
                            .replace("buffer-reads: {Q: [QK], K: [QK], V: [SLNV], RM: [RM], RD: [SPD, AV], "
                                     "RNV: [SPNV, AV]}", "buffer-reads: {Q: [QK], K: [QK], V: [SLNV]}"), "fm.yaml")
    report = spec.estimate(mapping, target)
    s = b * h * n * n
    reads = s * e / 256 * 2 + s * e / 256  # Q and K by QK, V by SLNV
    writes = b * h * n * e * 3  # each loaded once from DRAM into the buffer
    got = report.extra["energy_pj"]["buffer"]
    assert got["read"] == pytest.approx(reads / 256 * target.energy["buffer"]["read"], rel=1e-12)
    assert got["write"] == pytest.approx(writes / 256 * target.energy["buffer"]["write"], rel=1e-12)


def test_symbolic_energy_equals_the_numeric():
    import sympy as sp

    spec = cascade.load(SPEC, dict(B=1, H=2, E=64, F=64, M=768, P=512))
    report = spec.estimate(FLAT, "flat_cloud", symbolic=True)
    formula = sp.sympify(report.symbolic["energy_pj"], locals={"E": sp.Symbol("E")})  # the rank, not e
    values = {sym: report.shapes.get(str(sym), None) for sym in formula.free_symbols}
    tiles = {"P0": 256, "M0": 256, "B0": 1, "H0": 1}
    value = formula.subs({sym: values[sym] if values[sym] is not None else tiles[str(sym)] for sym in values})
    assert float(value) == pytest.approx(report.energy_j * 1e12, rel=1e-9)


@pytest.mark.parametrize("entry, message", [
    ("{ZZ: [QK]}", "buffer-reads.ZZ: no tensor ZZ"),
    ("{QK: [AV]}", "buffer-reads.QK: AV does not read QK"),
])
def test_a_name_not_there_is_refused(entry, message):
    mapping = parse_mapping(FLAT.read_text().split("buffer-reads:")[0] + f"buffer-reads: {entry}\n", "bad.yaml")
    with pytest.raises(MappingError) as exc:
        cascade.load(SPEC).estimate(mapping, "flat_cloud")
    assert f"bad.yaml: {message}" in str(exc.value)


def test_cli_exit_2_and_dump_round_trip(tmp_path, capsys):
    from cascade.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(FLAT.read_text().split("buffer-reads:")[0] + "buffer-reads: {QK: [AV]}\n")
    assert main(["estimate", str(SPEC), "-m", str(path), "-t", "flat_cloud"]) == 2
    assert "buffer-reads.QK: AV does not read QK" in capsys.readouterr().err
    m = parse_mapping(FLAT.read_text(), "f.yaml")
    assert parse_mapping(dump_mapping(m), "g.yaml").buffer_reads == m.buffer_reads


@pytest.mark.parametrize("spec_name, mapping, target", [
    ("mha_3pass", "mha_3pass/flat_bypass.yaml", "flat_cloud"),
    ("mha_1pass", "mha_1pass/fusemax.yaml", "fusemax"),
    ("mha_3pass", "mha_3pass/flat_offchip.yaml", "flat_cloud"),  # AV's partial sums in the buffer
    ("mha_3pass", "mha_3pass/unfused_kernels.yaml", "flat_cloud"),  # A past the buffer, AV's sums in it
])
def test_dse_energy_formula_equals_the_estimate(spec_name, mapping, target):
    """`cascade dse` costs a point from the symbolic formulas (`dse.evaluate._energy_formula`): the
    same joules as `Spec.estimate`, buffer words included."""
    from cascade.dse.evaluate import _energy_formula
    from cascade.model.symbolic import cost_formulas

    shapes = dict(B=1, H=2, E=64, F=64, M=768, P=512)
    spec = cascade.load(ROOT / "specs" / "attention" / f"{spec_name}.einsum", shapes)
    tgt = load_target(target)
    formulas = cost_formulas(spec.bind(ROOT / "mappings" / mapping), tgt)
    assert formulas.buffer_words is not None
    subs = {formulas.symbols[n]: v for n, v in formulas.values.items()}
    joules = float(_energy_formula(tgt, formulas, subs).subs(subs))
    assert joules == pytest.approx(spec.estimate(ROOT / "mappings" / mapping, tgt).energy_j, rel=1e-9)


def test_per_group_tiles_count_their_own_buffer_words():
    """The encoder's matmuls each tiled on their own (a `partitioning` entry per Einsum) with
    `buffer-reads`: FFN1 re-reads its token block of Z once per 64-wide slice of W1; the symbolic
    energy, its per-group tile symbols set to the mapping's tiles, gives the estimate's joules."""
    import re

    import sympy as sp

    t, d, s = 512, 64, 256
    spec = cascade.load(ROOT / "specs" / "transformer" / "encoder_linear.einsum", dict(T=t, D=d, N=d, S=s))
    text = """
partitioning:
  T: [uniform_shape(256)]
  H1: {T: [uniform_shape(128), uniform_shape(32)], S: [uniform_shape(64)]}
loop-order:
  default: [T1, T0, N, D, S]
  H1: [T2, S1, T1, T0, S0, D]
spacetime:
  default: {space: [T0, N], time: [T1, D]}
  Z: {space: [T0, D], time: [T1, N]}
  H1: {space: [T0, S0], time: [T2, S1, T1, D]}
  FF: {space: [T0, D], time: [T1, S]}
buffer-reads: {Z: [H1], W1: [H1]}
"""
    mapping = parse_mapping(text, "own_tiles.yaml")
    target = load_target("fusemax")
    report = spec.estimate(mapping, target, symbolic=True)
    formula = report.symbolic["energy_pj"]
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", formula)) - {"Min", "Max", "ceiling", "floor"}
    symbols = {n: sp.Symbol(n) for n in names}
    values = dict(T=t, D=d, N=d, S=s, T0=256, T0_H1=32, T1_H1=4, S0_H1=64, cycles=0)
    assert set(names) <= set(values), names
    joules = float(sp.sympify(formula, locals=symbols).subs({symbols[k]: v for k, v in values.items() if k in symbols}))
    assert joules * 1e-12 == pytest.approx(report.energy_j, rel=1e-12)
    # H1's tile is 32 tokens x 64 columns of W1 (its own partition): it fetches Z once per tile of
    # 64 columns and W1 once per tile of 32 tokens; Z and W1 enter the buffer as they come from DRAM
    per_word = {k: target.energy["buffer"][k] / target.energy["buffer"]["words_per_action"] for k in ("read", "write")}
    words = {k: report.extra["energy_pj"]["buffer"][k] / per_word[k] for k in per_word}
    assert words["read"] == pytest.approx(t * s * d / 64 + t * s * d / 32, rel=1e-12)
    loaded = (report.per_tensor["Z"]["read_bytes"] + report.per_tensor["W1"]["read_bytes"]) / target.word_bytes
    assert words["write"] == pytest.approx(loaded, rel=1e-12)


OFFCHIP = ROOT / "mappings" / "mha_3pass" / "flat_offchip.yaml"


@pytest.mark.parametrize("m", [256, 2048])
def test_an_on_chip_accumulator_listed_keeps_its_partial_sums_in_the_buffer(m):
    """FLAT from 256K (flat_offchip.yaml, `AV: []`): AV accumulates on chip over the key tiles M1
    that run outside its block of rows, so each key tile writes AV's partial sums into the buffer
    (B H P F M / 256 words) and every tile but the first reads them back (less AV's size: none
    when the keys fit one tile); without the entry, none of it."""
    b, h, e, p = 1, 2, 64, 2048
    spec = cascade.load(SPEC, dict(B=b, H=h, E=e, F=e, M=m, P=p))
    target = load_target("flat_cloud")
    text = OFFCHIP.read_text()
    assert "SD: [A], AV: []}" in text
    without = parse_mapping(text.replace("SD: [A], AV: []}", "SD: [A]}"), "no_av.yaml")
    got, base = (spec.estimate(mp, target).extra["energy_pj"]["buffer"] for mp in (OFFCHIP, without))
    steps = b * h * p * e * (m // 256)  # AV's words per key tile of 256, times the key tiles
    buf = target.energy["buffer"]
    assert got["write"] - base["write"] == pytest.approx(steps / 256 * buf["write"], rel=1e-12)
    assert got["read"] - base["read"] == pytest.approx((steps - b * h * p * e) / 256 * buf["read"], rel=1e-12, abs=1e-6)
    dram = parse_mapping(text.replace("accumulate:\n  AV: on-chip", "accumulate:\n  AV: dram"), "dram.yaml")
    moved = spec.estimate(dram, target).extra["energy_pj"]["buffer"]  # partial sums go to DRAM and back:
    assert moved["read"] == pytest.approx(base["read"], rel=1e-12)  # none read from the buffer


def test_unfused_kernels_buffer_words_equal_the_closed_form():
    """The unfused baseline (unfused_kernels.yaml): A streams from DRAM past the buffer into AV
    (each PE holds its A across F), AV's partial sums stay in the buffer across the key tiles."""
    b, h, e, n = 1, 2, 64, 1024
    spec = cascade.load(SPEC, dict(B=b, H=h, E=e, F=e, M=n, P=n))
    target = load_target("flat_cloud")
    report = spec.estimate(ROOT / "mappings" / "mha_3pass" / "unfused_kernels.yaml", target)
    s = b * h * n * n
    row = s / 256  # GM and SD: one word per 256-key tile of a row
    acc = s * e / 256  # AV's partial sums: one per key tile of 256
    # reads: Q, K by QK and V by AV once per tile of the other rank; QK by GM and SN, SN by A, GM by
    # SN and SD by A per key tile; AV's partial sums by every key tile but the first
    reads = 3 * s * e / 256 + 3 * s + 2 * row + acc - b * h * n * e
    # writes: Q, K, V and the scores loaded from DRAM once, SN once, GM and SD per key tile, AV per key tile
    writes = 3 * b * h * n * e + 2 * s + 2 * row + acc
    buf = target.energy["buffer"]
    got = report.extra["energy_pj"]["buffer"]
    assert got["read"] == pytest.approx(reads / 256 * buf["read"], rel=1e-12)
    assert got["write"] == pytest.approx(writes / 256 * buf["write"], rel=1e-12)
