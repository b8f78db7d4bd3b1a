"""The spatial cost model: exact against the executor's trace, against closed forms, and
against the published FuseMax artifact results; the estimate command and its errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.cli import main
from cascade.errors import MappingError, TargetError
from cascade.mapping.mapping_file import parse_mapping
from cascade.model.symbolic import cost_formulas, lambdify_cost
from cascade.model.target import load_target, parse_target
from cascade.model.traffic import dram_traffic

ROOT = Path(__file__).resolve().parent.parent
ATT = ROOT / "specs" / "attention"
MAPS = ROOT / "mappings"
ARTIFACT = ROOT.parent / "shared" / "external" / "fusemax"
ONE = "QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV"

BUNDLED = [
    (ATT / "attention_1pass.einsum", MAPS / "attention_1pass" / "tiled.yaml", None),
    (ATT / "mha_1pass.einsum", MAPS / "mha_1pass" / "fusemax.yaml", None),
    (ATT / "mha_3pass.einsum", MAPS / "mha_3pass" / "unfused.yaml", None),
    (ATT / "mha_3pass.einsum", MAPS / "mha_3pass" / "flat.yaml", None),
    (ATT / "scores_softmax.einsum", MAPS / "scores_softmax" / "grayskull_dedicated.yaml", None),
    (ATT / "scores_softmax.einsum", MAPS / "scores_softmax" / "grayskull_fused.yaml", None),
]
INLINE = [
    (ROOT / "specs" / "matmul.einsum", "", {"K": 40, "M": 30, "N": 20}),
    (ROOT / "specs" / "matmul.einsum", "partitioning: {K: [uniform_shape(16)], M: [uniform_shape(8)]}\n"
                                       "loop-order: {default: [K1, M1, M0, N, K0]}", {"K": 40, "M": 30, "N": 20}),
    (ROOT / "specs" / "softmax_online.einsum", "", {"M": 20, "P": 7}),
    (ROOT / "specs" / "softmax_online.einsum", "partitioning: {P: [uniform_shape(3)]}\nfusion: [[RM, RD]]",
     {"M": 20, "P": 7}),
    (ROOT / "specs" / "softmax_3pass.einsum", "partitioning: {M: [uniform_shape(6)]}\nfusion: [[GM, SN, SD, Y]]",
     {"M": 20, "P": 7}),
    (ATT / "attention_3pass.einsum", "partitioning: {P: [uniform_shape(8)], M: [uniform_shape(16)]}\n"
                                     "loop-order: {default: [P1, M1]}\nfusion: [[QK, GM, SN, SD, A, AV]]",
     {"E": 4, "F": 3, "M": 50, "P": 20}),
    (ATT / "attention_3pass.einsum", "partitioning: {P: [uniform_shape(8)], M: [uniform_shape(16)]}\n"
                                     "loop-order: {default: [M1, P1]}", {"E": 4, "F": 3, "M": 50, "P": 20}),
    (ATT / "attention_2pass.einsum", "partitioning: {P: [uniform_shape(16), uniform_shape(4)], "
                                     "M: [uniform_shape(12)], E: [uniform_shape(3)]}",
     {"E": 5, "F": 3, "M": 50, "P": 21}),
    (ATT / "attention_2pass.einsum", "partitioning: {P: [uniform_shape(8)], M: [uniform_shape(16)]}\n"
                                     "fusion: [[QK, GM], [SN, SD, SNV], [AV]]", {"E": 4, "F": 3, "M": 50, "P": 20}),
    (ATT / "attention_1pass.einsum", f"partitioning: {{P: [uniform_shape(7)]}}\nloop-order: {{default: [M1, P1]}}\n"
                                     f"fusion: [[{ONE}]]", {"E": 4, "F": 3, "M": 50, "P": 20, "M0": 16}),
    (ATT / "attention_1pass.einsum", f"partitioning: {{P: [uniform_shape(12), uniform_shape(4)], M: [uniform_shape(16)]}}\n"
                                     f"loop-order: {{default: [P2, M1, P1]}}\nfusion: [[{ONE}]]",
     {"E": 4, "F": 3, "M": 50, "P": 21}),
]


def _trace(spec, mapping):
    module = spec.executor(mapping)
    _, trace = module.run_traced(**spec.random_inputs(seed=3))
    return trace


@pytest.mark.parametrize("spec_path, mapping, shapes", BUNDLED + INLINE,
                         ids=[f"{Path(s).stem}-{k}" for k, (s, _, _) in enumerate(BUNDLED + INLINE)])
def test_model_equals_executor_trace(spec_path, mapping, shapes):
    spec = cascade.load(spec_path, shapes)
    m = parse_mapping(mapping) if isinstance(mapping, str) else mapping
    counts = dram_traffic(spec.bind(m)).numeric()
    trace = _trace(spec, m)
    tensors = set(counts) | set(trace["reads"]) | set(trace["writes"])
    for t in tensors:
        assert counts.get(t, (0, 0)) == (trace["reads"].get(t, 0), trace["writes"].get(t, 0)), t


def test_flashattention_traffic_formula():
    """Loop order [P1, M1], Q tile kept per P tile, K and V streamed per P tile: FlashAttention's
    reads are E*P (Q) + (E+F)*M*ceil(P/P0) (K, V), writes F*P: Theta(N^2 d / P0)."""
    for p0, (m, p) in [(64, (1000, 300)), (32, (512, 512)), (100, (70, 250))]:
        spec = cascade.load(ATT / "attention_1pass.einsum", {"M": m, "P": p, "M0": 64})
        mapping = parse_mapping(f"partitioning: {{P: [uniform_shape({p0})]}}\nloop-order: {{default: [P1, M1]}}\n"
                                f"fusion: [[{ONE}]]")
        counts = dram_traffic(spec.bind(mapping)).numeric()
        e = f = 64
        tiles = -(-p // p0)
        assert counts["Q"] == (e * p, 0)
        assert counts["K"] == (e * m * tiles, 0)
        assert counts["V"] == (f * m * tiles, 0)
        assert counts["AV"] == (0, f * p)


def test_fusemax_mapping_moves_compulsory_traffic():
    """Q, K, V read once and AV written once: 4*B*H*N*E words (P fits one outer tile)."""
    for b, h, e, n in [(2, 3, 64, 1024), (1, 2, 128, 4096)]:
        spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=b, H=h, E=e, F=e, M=n, P=n))
        report = spec.estimate(MAPS / "mha_1pass" / "fusemax.yaml", "fusemax")
        assert report.dram_bytes == 4 * b * h * n * e * 2
        assert report.dram_read_bytes == 3 * b * h * n * e * 2


def test_flat_row_granularity_buffer_requirement():
    """FLAT at row granularity keeps, per block of R query rows: the Q block (E x R), all of K
    and V (E x M, F x M), the score, exponential and probability tiles (3 x M x R) and the row
    max and sum (2 x R): word_bytes * (E R + (E + F) M + 3 M R + 2 R). On flat_cloud, whose
    buffer is shared by liveness (`in_place`), SN and A overwrite the scores and the row sum
    follows the row max: word_bytes * (E R + (E + F) M + M R + R)."""
    text = (ROOT / "specs" / "targets" / "flat_cloud.yaml").read_text()
    separate = parse_target(text.replace("in_place: true", "in_place: false"), "flat_cloud.yaml")
    for e, m in [(64, 1024), (64, 4096), (128, 2048)]:
        spec = cascade.load(ATT / "mha_3pass.einsum", dict(B=1, H=1, E=e, F=e, M=m, P=m))
        r = 256
        report = spec.estimate(MAPS / "mha_3pass" / "flat.yaml", separate)
        assert report.on_chip_bytes == 2 * (e * r + 2 * e * m + 3 * m * r + 2 * r)
        report = spec.estimate(MAPS / "mha_3pass" / "flat.yaml", "flat_cloud")
        assert report.on_chip_bytes == 2 * (e * r + 2 * e * m + m * r + r)


def test_buffer_overflow_spills_the_intermediates_that_do_not_fit():
    """At M = P = 64K, FLAT's 256-row block needs F = 2 (E R + 2 E M + M R + R) bytes of a
    32 MiB buffer B (shared by liveness); its intermediates (QK, SN, A in one M x R tile; GM,
    then SD: R) are I = 2 (M R + R) bytes, so s = (F - B) / I of each is written to DRAM once
    and re-read by each reader."""
    e, m, r = 64, 65536, 256
    spec = cascade.load(ATT / "mha_3pass.einsum", dict(B=1, H=1, E=e, F=e, M=m, P=m))
    report = spec.estimate(MAPS / "mha_3pass" / "flat.yaml", "flat_cloud")
    footprint = 2 * (e * r + 2 * e * m + m * r + r)
    s = (footprint - 32 * 2**20) / (2 * (m * r + r))
    assert report.on_chip_bytes == footprint
    readers = {"QK": 2, "SN": 2, "A": 1}  # QK by GM and SN; SN by SD and A; A by AV
    for t, n in readers.items():
        assert report.per_tensor[t]["write_bytes"] == pytest.approx(s * m * m * 2)
        assert report.per_tensor[t]["read_bytes"] == pytest.approx(n * s * m * m * 2)
    assert report.per_tensor["GM"]["write_bytes"] == pytest.approx(s * m * 2)
    assert any(line.strip().startswith("spilled QK:") for line in report.extra["spills"])


def test_loaded_tiles_that_overflow_the_buffer_are_refused_without_bypass():
    """K and V of a whole head (2 x 64 x 1M words) plus a 256-row Q block: 256 MiB + 32 KiB."""
    spec = cascade.load(ATT / "mha_3pass.einsum", dict(B=1, H=1, E=64, F=64, M=2**20, P=2**20))
    text = (ROOT / "specs" / "targets" / "flat_cloud.yaml").read_text()
    no_bypass = parse_target(text.replace("  bypass: true ", "  bypass: false"), "flat_cloud.yaml")
    assert not no_bypass.buffer_bypass
    with pytest.raises(MappingError, match=r"group QK\+GM\+SN\+SD\+A\+AV loads 256.03 MiB of tiles, but flat_cloud's "
                                           r"buffer holds 32.00 MiB .*bypass: true.*use smaller tiles"):
        spec.estimate(MAPS / "mha_3pass" / "flat.yaml", no_bypass)


def test_loaded_tiles_that_overflow_a_bypass_buffer_stream():
    """On flat_cloud (`buffer: {bypass: true}`) the 128 MiB K and V tiles stream instead: each is
    re-read for every 256-row block of queries (P / 256 = 4096 times), Q is read once, and the
    report names them."""
    e, n = 64, 2**20
    spec = cascade.load(ATT / "mha_3pass.einsum", dict(B=1, H=1, E=e, F=e, M=n, P=n))
    report = spec.estimate(MAPS / "mha_3pass" / "flat.yaml", "flat_cloud")
    assert report.extra["streamed"] == ["K", "V"]
    for t in ("K", "V"):
        assert report.per_tensor[t]["read_bytes"] == 2 * e * n * (n // 256)
    assert report.per_tensor["Q"]["read_bytes"] == 2 * e * n
    assert any("V, K (256.00 MiB) stream from DRAM, re-read at each use" in line for line in report.extra["spills"])


def _artifact(name):
    with open(ARTIFACT / f"attn-{name}.csv") as fh:
        return {(r["model"], r["seq_len"]): r for r in csv.DictReader(fh)}


@pytest.mark.parametrize("model, length, heads, e, n, outer", [
    ("BERT", "1K", 12, 64, 1024, 32768), ("BERT", "64K", 12, 64, 65536, 32768),
    ("XLM", "64K", 16, 128, 65536, 16384), ("T5", "1M", 8, 64, 1048576, 32768)])
def test_fusemax_artifact_rows(model, length, heads, e, n, outer):
    """Traffic and latency equal the artifact's to 1e-9 with one target file; the outer query
    tile follows FuseMax's rule (251 tiles of 256 rows -> 128 for E=F=64, 126 -> 64 for 128)."""
    row = _artifact("binding")[(model, length)]
    text = (MAPS / "mha_1pass" / "fusemax.yaml").read_text().replace("uniform_shape(32768)", f"uniform_shape({outer})")
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=64, H=heads, E=e, F=e, M=n, P=n))
    report = spec.estimate(parse_mapping(text), "fusemax")
    assert report.dram_bytes == pytest.approx(float(row["traffic"]), rel=1e-12)
    assert report.latency_s == pytest.approx(float(row["latency"]), rel=1e-9)
    assert report.utilization["array2d"] == pytest.approx(float(row["util_2d"]), rel=1e-9)
    assert report.utilization["array1d"] == pytest.approx(float(row["util_1d"]), rel=1e-9)


@pytest.mark.parametrize("name, mapping, length", [("unfused", "unfused", "1K"), ("unfused", "unfused", "16K"),
                                                   ("flat", "flat", "4K")])
def test_baseline_artifact_rows(name, mapping, length):
    row = _artifact(name)[("BERT", length)]
    n = {"1K": 1024, "4K": 4096, "16K": 16384}[length]
    spec = cascade.load(ATT / "mha_3pass.einsum", dict(B=64, H=12, E=64, F=64, M=n, P=n))
    report = spec.estimate(MAPS / "mha_3pass" / f"{mapping}.yaml", "flat_cloud")
    assert report.latency_s == pytest.approx(float(row["latency"]), rel=1e-9)
    if name == "unfused":  # QK and A written and read back once: 4 M P words beyond the compulsory
        assert report.dram_bytes == pytest.approx(float(row["traffic"]), rel=1e-12)


@pytest.mark.parametrize("model, length, heads, e, n, outer", [
    ("BERT", "1K", 12, 64, 1024, 1024), ("XLM", "4K", 16, 128, 4096, 4096), ("T5", "16K", 8, 64, 16384, 8192)])
def test_cascade_ablation_rows(model, length, heads, e, n, outer):
    """FuseMax's cascade on the baseline arrays (attn-cascade.csv): only QK and SLNV on the 2D
    array, the softmax on the 1D array at 2 ops per exp(x - m): latency and utilisation equal the
    artifact's; traffic too with the outer query tile of at most 8192 rows."""
    row = _artifact("cascade")[(model, length)]
    text = (MAPS / "mha_1pass" / "fusemax_on_flat.yaml").read_text().replace("uniform_shape(32768)", f"uniform_shape({outer})")
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=64, H=heads, E=e, F=e, M=n, P=n))
    report = spec.estimate(parse_mapping(text), "cascade_on_flat")
    assert report.dram_bytes == pytest.approx(float(row["traffic"]), rel=1e-12)
    assert report.latency_s == pytest.approx(float(row["latency"]), rel=1e-9)
    assert report.utilization["array2d"] == pytest.approx(float(row["util_2d"]), rel=1e-9)
    assert report.utilization["array1d"] == pytest.approx(float(row["util_1d"]), rel=1e-9)


@pytest.mark.parametrize("model, length, heads, e, n, outer", [
    ("BERT", "1K", 12, 64, 1024, 1024), ("XLM", "64K", 16, 128, 65536, 16384)])
def test_fusemax_energy_from_the_ert_tables(model, length, heads, e, n, outer):
    """FuseMax's energy (attn-binding.csv, pJ) from the ERT numbers in fusemax.yaml: within 1%."""
    row = _artifact("binding")[(model, length)]
    text = (MAPS / "mha_1pass" / "fusemax.yaml").read_text().replace("uniform_shape(32768)", f"uniform_shape({outer})")
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=64, H=heads, E=e, F=e, M=n, P=n))
    report = spec.estimate(parse_mapping(text), "fusemax")
    assert report.energy_j * 1e12 == pytest.approx(float(row["energy"]), rel=0.01)
    macs = 2 * 64 * heads * n * n * e  # QK and SLNV alone: the floor of the 2D array's energy
    assert report.extra["energy_pj"]["array2d"]["mac"] > macs * 17.1645


def test_lambdified_model_equals_numeric_model():
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=2, H=3, E=64, F=64, M=5000, P=3000))
    target = load_target("fusemax")
    base = (MAPS / "mha_1pass" / "fusemax.yaml").read_text()
    formulas = cost_formulas(spec.bind(parse_mapping(base)), target)
    fn, names = lambdify_cost(formulas)
    for m0, p0, p1 in [(256, 256, 128), (64, 32, 4), (100, 48, 3)]:
        text = base.replace("uniform_shape(32768), uniform_shape(256)", f"uniform_shape({p0 * p1}), "
                            f"uniform_shape({p0})").replace("M: [uniform_shape(256)]", f"M: [uniform_shape({m0})]")
        report = spec.estimate(parse_mapping(text), target)
        values = dict(formulas.values, M0=m0, P0=p0, P1=p1)
        latency, traffic = fn(*[np.asarray(values[n]) for n in names])
        assert float(latency) == pytest.approx(report.latency_s, rel=1e-12)
        assert float(traffic) == pytest.approx(report.dram_bytes, rel=1e-12)


# A compute-bound target counted in cycles (clock 1 Hz, DRAM practically free): latency_s is
# the slowest unit's cycles. Array axes of 3 and 2 PEs, so small tiles fold more than once.
RAGGED = parse_target("""
name: ragged
kind: spatial
clock_hz: 1
word_bytes: 2
dram: {bandwidth_bytes_per_s: 1000000000000000}
buffer: {capacity_bytes: 1000000000}
units:
  row: {shape: [3], ops: [mac, add]}
  grid: {shape: [3, 2], ops: [mac, add]}
""", "ragged.yaml")
SCALED = """cascade scaled
shape M = 29, P = 5, M0 = 4
split M = M1 * M0
input A[M, P], S[P]
output Z[M, P]

Z[m1, m0, p] = A[m1, m0, p] * S[p]
"""


def _folds(tiles, n):
    """Folds of tiles that pass through an axis of n PEs one after another."""
    return sum(-(-t // n) for t in tiles)


def _matmul_mapping(m_tiles, n_tiles=(), space=("M0",), unit="row"):
    parts = {"M": m_tiles, **({"N": n_tiles} if n_tiles else {})}
    levels = ", ".join(f"{r}: [{', '.join(f'uniform_shape({t})' for t in ts)}]" for r, ts in parts.items())
    time = [r for r in ("M2", "M1", "N1" if n_tiles else "N", "K") if r != "M2" or len(m_tiles) == 2]
    return (f"partitioning: {{{levels}}}\nspacetime: {{default: {{space: [{', '.join(space)}], "
            f"time: [{', '.join(time)}]}}}}\nbinding: {{default: {unit}}}")


@pytest.mark.parametrize("case", ["one-level", "two-level", "2d", "cascade-split"])
def test_ragged_space_tile_costs_its_own_folds(case):
    """A space rank that is the innermost tile of a rank the statement iterates whole is
    processed tile by tile: the ragged last tile costs ceil(extent / n) folds, not a full
    tile's. Matmul (one mac per point) with M = 29 in tiles of 4 on 3 PEs: tiles 4 x 7 and 1,
    2 folds each and 1 for the last, 15 folds (a full-tile count would give 14.5)."""
    if case == "cascade-split":  # M0 of the cascade's own split, in a statement over m1 and m0
        spec = cascade.loads(SCALED)
        mapping = "spacetime: {default: {space: [M0], time: [M1, P]}}\nbinding: {default: row}"
        expected = _folds([4] * 7 + [1], 3) * 5
    else:
        spec = cascade.load(ROOT / "specs" / "matmul.einsum", {"K": 5, "M": 29, "N": 11})
        if case == "one-level":
            mapping, expected = _matmul_mapping((4,)), _folds([4] * 7 + [1], 3) * 11 * 5
        elif case == "two-level":  # 29 = 12 + 12 + 5; the last 12-tile leaves tiles 4 and 1
            mapping = _matmul_mapping((12, 4))
            expected = _folds([4, 4, 4] + [4, 4, 4] + [4, 1], 3) * 11 * 5
        else:  # M0 on 3 PEs, N0 (11 = 5 + 5 + 1) on 2 PEs
            mapping = _matmul_mapping((4,), (5,), space=("M0", "N0"), unit="grid")
            expected = _folds([4] * 7 + [1], 3) * _folds([5, 5, 1], 2) * 5
    report = spec.estimate(parse_mapping(mapping), RAGGED)
    unit = "grid" if case == "2d" else "row"
    assert report.per_unit[unit]["cycles"] == pytest.approx(expected, rel=1e-12)
    assert report.latency_s == pytest.approx(expected, rel=1e-12)


def test_unsplit_space_rank_occupancy_is_unchanged():
    """An unsplit space rank of extent e folds ceil(e/n) times: M = 29 on 3 PEs, 10 folds."""
    spec = cascade.load(ROOT / "specs" / "matmul.einsum", {"K": 5, "M": 29, "N": 11})
    mapping = "spacetime: {default: {space: [M], time: [N, K]}}\nbinding: {default: row}"
    assert spec.estimate(parse_mapping(mapping), RAGGED).latency_s == pytest.approx(10 * 11 * 5, rel=1e-12)


def _tiles(size, shapes):
    """The innermost tiles of `size` elements cut by tile shapes, outermost first."""
    pieces = [size]
    for t in shapes:
        pieces = [min(t, piece - start) for piece in pieces for start in range(0, piece, t)]
    return pieces


@pytest.mark.parametrize("m_tiles, n_tiles, space, unit", [
    ((4,), (), ("M0",), "row"), ((12, 4), (), ("M0",), "row"), ((4,), (5,), ("M0", "N0"), "grid")],
    ids=["one-level", "two-level", "2d"])
def test_lambdified_ragged_cycles_equal_numeric(m_tiles, n_tiles, space, unit):
    """The lambdified formula, built once and evaluated on arrays of shapes and tiles (as the
    search does), gives the numeric model's latency and traffic, full and ragged tiles alike,
    and both equal the per-tile fold count."""
    shapes = {"K": 5, "M": 29, "N": 11}
    spec = cascade.load(ROOT / "specs" / "matmul.einsum", shapes)
    formulas = cost_formulas(spec.bind(parse_mapping(_matmul_mapping(m_tiles, n_tiles, space, unit))), RAGGED)
    fn, names = lambdify_cost(formulas)
    points = [(m, n, m0, m1, n0) for m in (24, 29, 31, 50) for n in (10, 11) for m0 in (2, 3, 4, 5)
              for m1 in (2, 3) for n0 in (4, 5)]
    reports, counts = [], []
    for m, n, m0, m1, n0 in points:
        ms = (m1 * m0, m0) if len(m_tiles) == 2 else (m0,)
        mapping = parse_mapping(_matmul_mapping(ms, (n0,) if n_tiles else (), space, unit))
        reports.append(cascade.load(ROOT / "specs" / "matmul.einsum", dict(shapes, M=m, N=n)).estimate(mapping, RAGGED))
        counts.append(_folds(_tiles(m, ms), 3) * (_folds(_tiles(n, (n0,)), 2) if n_tiles else n) * shapes["K"])
    columns = {"M": [p[0] for p in points], "N": [p[1] for p in points], "M0": [p[2] for p in points],
               "M1": [p[3] for p in points], "N0": [p[4] for p in points]}
    values = [np.asarray(columns.get(name, formulas.values[name])) for name in names]
    latency, traffic = fn(*values)
    for k, (report, count) in enumerate(zip(reports, counts)):
        assert report.latency_s == pytest.approx(count, rel=1e-12), points[k]
        assert float(latency[k]) == pytest.approx(report.latency_s, rel=1e-12), points[k]
        assert float(traffic[k]) == pytest.approx(report.dram_bytes, rel=1e-12), points[k]
    assert any(p[0] % p[2] for p in points)  # ragged tiles are among the points


def test_estimate_cli_json_and_symbolic(capsys):
    code = main(["estimate", str(ATT / "mha_1pass.einsum"), "-m", str(MAPS / "mha_1pass" / "fusemax.yaml"),
                 "-t", "fusemax", "--json", "--symbolic"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("dram_bytes", "dram_read_bytes", "dram_write_bytes", "latency_s", "utilization", "per_tensor",
                "per_unit", "symbolic"):
        assert key in data
    assert data["symbolic"]["K.reads"] == "B*E*H*M*ceiling(P/(P0*P1))"
    assert data["dram_bytes"] == data["dram_read_bytes"] + data["dram_write_bytes"]
    code = main(["estimate", str(ATT / "mha_1pass.einsum"), "-m", str(MAPS / "mha_1pass" / "fusemax.yaml"),
                 "-t", "fusemax"])
    out = capsys.readouterr().out
    assert code == 0 and "latency" in out and "array1d" in out and "memory-bound" in out  # tiny default shapes


def test_target_errors(tmp_path, capsys):
    with pytest.raises(TargetError, match="clock_hz: expected a number"):
        parse_target("clock_hz: fast\nword_bytes: 2\ndram: {bandwidth_bytes_per_s: 1}\nbuffer: {capacity_bytes: 1}\n"
                     "units: {a: {shape: [2], ops: [mac]}}")
    with pytest.raises(TargetError, match="units.a.ops: unknown fma"):
        parse_target("clock_hz: 1\nword_bytes: 2\ndram: {bandwidth_bytes_per_s: 1}\nbuffer: {capacity_bytes: 1}\n"
                     "units: {a: {shape: [2], ops: [fma]}}")
    bad = tmp_path / "t.yaml"
    bad.write_text("clock_hz: 1\nword_bytes: 2\ndram: {bandwidth_bytes_per_s: 1}\nbuffer: {capacity_bytes: 99999999}\n"
                   "units: {a: {shape: [2], ops: [mac, add]}}\n")
    code = main(["estimate", str(ATT / "attention_3pass.einsum"), "-t", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "needs 'max' operations" in err and "Traceback" not in err
    code = main(["estimate", str(ATT / "attention_3pass.einsum"), "-t", str(tmp_path / "missing.yaml")])
    assert code == 2 and "cannot read target" in capsys.readouterr().err
    code = main(["estimate", str(ATT / "attention_3pass.einsum"), "-t", "fusemx"])  # a misspelt bundled name
    err = capsys.readouterr().err
    assert code == 2 and "fusemx: no such target file, nor a bundled target" in err
    assert "bundled: cascade_on_flat, flat_cloud, flat_edge, fusemax, grayskull_e150" in err
    with pytest.raises(TargetError, match=r"^t\.yaml:2:17: not valid YAML: expected"):  # a YAML syntax error, placed
        parse_target("clock_hz: 1\nunits: {a: [1, 2}\n", "t.yaml")


def test_unknown_unit_in_binding(capsys):
    spec = cascade.load(ROOT / "specs" / "matmul.einsum")
    with pytest.raises(TargetError, match="unit 'tensorcore' is not in target fusemax"):
        spec.estimate(parse_mapping("binding: {default: tensorcore}"), "fusemax")


def _without_energy(name: str) -> str:
    text = (ROOT / "specs" / "targets" / f"{name}.yaml").read_text()
    return text[:text.index("# Energy per action")]


def test_energy_per_action_by_level_and_unit():
    """Z = A^T B unmapped on FuseMax's 2D array: DRAM (A, B read; Z written) in 8-byte actions,
    the buffer filled and drained once per word in 256-word actions, K M N MACs, one register
    write per MAC, leakage per PE and cycle over the latency (all in pJ)."""
    k, m, n = 64, 32, 16
    text = _without_energy("fusemax") + (
        "energy:\n  dram: {read: 100, write: 200, bytes_per_action: 8}\n"
        "  buffer: {read: 30, write: 20, words_per_action: 256}\n"
        "  units:\n    array2d: {mac: 3, add: 1, max: 1, reg_write: 0.5, leak: 0.001}\n")
    target = parse_target(text, "e.yaml")
    report = cascade.load(ROOT / "specs" / "matmul.einsum", {"K": k, "M": m, "N": n}).estimate(None, target)
    read_b, write_b = 2 * (k * m + k * n), 2 * m * n
    cycles = report.latency_s * 940e6
    terms = report.extra["energy_pj"]
    assert terms["dram"] == pytest.approx({"read": read_b / 8 * 100, "write": write_b / 8 * 200})
    words = (read_b + write_b) / 2 / 256
    assert terms["buffer"] == pytest.approx({"read": words * 30, "write": words * 20})
    assert terms["array2d"] == pytest.approx({"mac": k * m * n * 3, "reg_write": k * m * n * 0.5,
                                              "leak": cycles * 65536 * 0.001})
    total = read_b / 8 * 100 + write_b / 8 * 200 + words * 50 + k * m * n * 3.5 + cycles * 65.536
    assert report.energy_j == pytest.approx(total * 1e-12)
    spec_formula = cascade.load(ROOT / "specs" / "matmul.einsum", {"K": k, "M": m, "N": n}).estimate(
        None, target, symbolic=True).symbolic["energy_pj"]
    import sympy

    names = {x: sympy.Symbol(x, positive=True) for x in ("K", "M", "N", "cycles")}
    value = sympy.sympify(spec_formula, locals=names).subs({names["K"]: k, names["M"]: m, names["N"]: n,
                                                            names["cycles"]: cycles})
    assert float(value) == pytest.approx(total) and "K" in spec_formula


def test_bad_energy_section_names_the_place(tmp_path, capsys):
    from cascade.cli import main

    path = tmp_path / "t.yaml"
    path.write_text(_without_energy("fusemax") + "energy:\n  units:\n    array3d: {mac: 1}\n    array2d: {fma: 2}\n")
    assert main(["estimate", str(ROOT / "specs" / "matmul.einsum"), "-t", str(path)]) == 2
    err = capsys.readouterr().err
    assert "energy.units.array3d: not a unit of this target" in err and "energy.units.array2d.fma: unknown action" in err
    assert "Traceback" not in err


def test_bundled_energies_cite_the_ert_files():
    for name, files in (("fusemax", ("ERT-2d-fusemax.yaml", "ERT-1d-fusemax.yaml")),
                        ("flat_cloud", ("ERT-2d-flat.yaml", "ERT-1d-flat.yaml"))):
        text = (ROOT / "specs" / "targets" / f"{name}.yaml").read_text()
        assert all(f in text for f in files)
        assert load_target(name).energy["units"]["array2d"]["mac"] == 17.1645


def test_energy_from_per_access_energies(tmp_path):
    """Energy = DRAM bytes x pJ/byte + operations x pJ/op, from the target file."""
    text = _without_energy("fusemax") + "energy: {dram_byte_pj: 10, mac_pj: 1, add_pj: 0.5}\n"
    target = parse_target(text, "e.yaml")
    spec = cascade.load(ROOT / "specs" / "matmul.einsum", {"K": 64, "M": 32, "N": 16})
    report = spec.estimate(None, target)
    bytes_moved = 2 * (64 * 32 + 64 * 16 + 32 * 16)
    assert report.energy_j == pytest.approx((bytes_moved * 10 + 64 * 32 * 16 * 1) * 1e-12)
    assert spec.estimate(None, parse_target(_without_energy("fusemax"), "n.yaml")).energy_j is None


def test_unbound_einsums_go_to_the_first_unit_able_to_do_them():
    """With no binding at all, each Einsum runs on the target's first unit that can do all its
    operations: on fusemax, the divisions of A on array1d and the products on array2d; an
    explicit binding to a unit that cannot do them is still an error that names the fix."""
    spec = cascade.load(ATT / "attention_3pass.einsum", {"M": 64, "P": 64})
    report = spec.estimate(None, "fusemax")
    units = {u: set(d["ops"]) for u, d in report.per_unit.items()}
    points = 64 * 64
    assert "divide" in units["array1d"] and "divide" not in units["array2d"]
    assert report.per_unit["array1d"]["ops"] == {"divide": points}  # A[m, p] = SN[m, p] / SD[p]
    assert report.per_unit["array2d"]["ops"]["mac"] >= spec.shapes["E"] * points  # QK at least
    with pytest.raises(TargetError, match="bind A to array1d"):
        spec.estimate(parse_mapping("binding: {default: array2d}"), "fusemax")


@pytest.mark.parametrize("flag, what", [("-m", "mapping"), ("-t", "target")])
def test_a_binary_mapping_or_target_file_is_a_user_error(tmp_path, capsys, flag, what):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xca\xfe\x00\xff")
    argv = ["estimate", str(ROOT / "specs" / "matmul.einsum"), "-t", "fusemax", flag, str(bad)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}: cannot read {what}: not UTF-8 text" in err and "Traceback" not in err


@pytest.mark.parametrize("name, tables", [("fusemax", ("ART-2d-fusemax.yaml", "ART-1d-fusemax.yaml")),
                                          ("flat_cloud", ("ART-2d-flat.yaml", "ART-1d-flat.yaml"))])
def test_area_equals_the_art_tables(name, tables):
    """The target's area is the artifact's: every ART entry's instances x area, adders left out."""
    import yaml

    expected = 0.0
    for table in tables:
        for entry in yaml.safe_load((ARTIFACT / "energy_area" / table).read_text())["ART"]["tables"]:
            component = entry["name"].split(".")[1].split("[")[0]
            count = int(entry["name"].split("..")[1].rstrip("]"))
            if component != "add":
                expected += count * entry["area"]
    report = cascade.load(ROOT / "specs" / "matmul.einsum").estimate(None, name)
    assert report.extra["area_um2"]["total"] == pytest.approx(expected, rel=1e-12)
    assert main(["estimate", str(ROOT / "specs" / "matmul.einsum"), "-t", name]) == 0


def test_bad_area_section_names_the_place(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(_without_energy("fusemax") + "area:\n  buffer: -1\n  units:\n    array9: {per_pe: {mac: 1}}\n")
    assert main(["estimate", str(ROOT / "specs" / "matmul.einsum"), "-t", str(path)]) == 2
    err = capsys.readouterr().err
    assert "area.buffer: expected a non-negative number" in err and "area.units.array9: not a unit" in err
