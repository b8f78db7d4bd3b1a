"""A mapping's `pipeline` (phases per tile, `{drain: X}`): closed-form cycles, the artifact's
attn-arch rows, and clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import cascade
from cascade.cli import main
from cascade.errors import MappingError
from cascade.mapping.mapping_file import dump_mapping, parse_mapping

ROOT = Path(__file__).resolve().parent.parent
ATT = ROOT / "specs" / "attention"
ARCH = ROOT / "mappings" / "mha_1pass" / "fusemax_arch.yaml"
EXTERNAL = ROOT.parent / "shared" / "external" / "fusemax"


def _arch(outer: int = 32768, extra: str = "") -> str:
    return ARCH.read_text().replace("uniform_shape(32768)", f"uniform_shape({outer})") + extra


def test_phases_sum_to_the_closed_form():
    """FuseMax's arrays (256x256 and 256 PEs) with M, P multiples of 256: every Einsum's cycles
    in closed form (ops / PEs), the phases summed by hand as StallProposal does:
    max(QK+LM, RD+AV) + LM*256 + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV+RNV)."""
    b, h, e, m, p = 1, 2, 64, 1024, 512
    f = e
    pes2, pes1 = 256 * 256, 256
    qk, lm, sln, sld, slnv = (b * h * m * p * k / pes2 for k in (e, 1, 7, 1, f))
    tiles = b * h * (m // 256) * p  # (m1, p) points of the 1D statistics
    rm, prm, spd, rd = (tiles * k / pes1 for k in (1, 7, 1, 1))
    spnv = rnv = tiles * f / pes1
    av = b * h * p * f / pes1  # one divide per output
    expected = max(qk + lm, rd + av) + lm * 256 + rm + max(sln + sld, prm + spd) + max(slnv, spnv + rnv)
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=b, H=h, E=e, F=f, M=m, P=p))
    report = spec.estimate(parse_mapping(_arch(p)), "fusemax")
    (group,) = report.groups
    assert group["compute_s"] * 940e6 == pytest.approx(expected, rel=1e-12)
    assert [ph["phase"] for ph in group["phases"]][1] == "drain LM"
    assert group["phases"][1]["cycles"] == pytest.approx(lm * 256, rel=1e-12)
    # without the pipeline the units overlap whole: the slower array's total
    bound = spec.estimate(parse_mapping(_arch(p).split("pipeline:")[0]), "fusemax")
    whole = max(qk + lm + sln + sld + slnv, rm + prm + spd + rd + spnv + rnv + av)
    assert bound.groups[0]["compute_s"] * 940e6 == pytest.approx(whole, rel=1e-12)


@pytest.mark.skipif(not EXTERNAL.is_dir(), reason="needs ../shared/external/fusemax")
@pytest.mark.parametrize("model, length, heads, e, n, outer", [
    ("BERT", "1K", 12, 64, 1024, 1024), ("XLM", "64K", 16, 128, 65536, 16384)])
def test_attn_arch_rows(model, length, heads, e, n, outer):
    """attn-arch.csv: latency and utilisation equal the artifact's, traffic exactly."""
    with open(EXTERNAL / "attn-arch.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if (r["model"], r["seq_len"]) == (model, length))
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=64, H=heads, E=e, F=e, M=n, P=n))
    report = spec.estimate(parse_mapping(_arch(outer)), "fusemax")
    assert report.dram_bytes == float(row["traffic"])
    assert report.latency_s == pytest.approx(float(row["latency"]), rel=1e-9)
    assert report.utilization["array2d"] == pytest.approx(float(row["util_2d"]), rel=1e-9)
    assert report.utilization["array1d"] == pytest.approx(float(row["util_1d"]), rel=1e-9)


def test_pipeline_round_trips_through_dump():
    mapping = parse_mapping(_arch())
    again = parse_mapping(dump_mapping(mapping))
    assert again.pipeline == mapping.pipeline and mapping.pipeline[1].drain == "LM"


@pytest.mark.parametrize("tail, message", [
    ("  - [QQ]\n", r"pipeline\[5\]: unknown Einsum QQ"),
    ("  - [QK]\n", r"QK in two phases"),
    ("  - {drain: QK}\n", r"drain: QK\}: QK reduces no rank across the array"),
    ("  - {wait: LM}\n", r"pipeline\[5\]: expected \{drain: EINSUM\}"),
])
def test_bad_pipelines_are_refused(tail, message):
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=1, H=1, E=64, F=64, M=512, P=512))
    with pytest.raises(MappingError, match=message):
        spec.estimate(parse_mapping(_arch(512, tail), "arch.yaml"), "fusemax")


def test_a_pipeline_missing_an_einsum_exits_2(tmp_path, capsys):
    text = _arch(256).replace("  - [SLNV, SPNV, RNV]\n", "  - [SLNV, SPNV]\n")
    (tmp_path / "arch.yaml").write_text(text)
    spec = tmp_path / "a.einsum"
    spec.write_text((ATT / "mha_1pass.einsum").read_text().replace("M = 256, P = 256", "M = 512, P = 256"))
    code = main(["estimate", str(spec), "-m", str(tmp_path / "arch.yaml"), "-t", "fusemax"])
    err = capsys.readouterr().err
    assert code == 2 and "RNV in no phase" in err and "arch.yaml: pipeline" in err


def test_symbolic_model_follows_the_pipeline():
    """The cost formulas (what the DSE and the search evaluate) give the numeric model's latency
    under a pipeline, drain included, at several tile shapes."""
    from cascade.model.symbolic import cost_formulas, lambdify_cost
    from cascade.model.target import load_target

    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=2, H=3, E=64, F=64, M=4096, P=2048))
    target = load_target("fusemax")
    formulas = cost_formulas(spec.bind(parse_mapping(_arch(2048))), target)
    fn, names = lambdify_cost(formulas)
    values = dict(formulas.values)
    report = spec.estimate(parse_mapping(_arch(2048)), target)
    assert fn(*[values[n] for n in names])[0] == pytest.approx(report.latency_s, rel=1e-12)
    plain = spec.estimate(parse_mapping(_arch(2048).split("pipeline:")[0]), target)
    assert report.latency_s > 2 * plain.latency_s  # the drain and the phases cost something


def test_estimate_and_map_show_the_phases(capsys):
    code = main(["estimate", str(ATT / "mha_1pass.einsum"), "-m", str(ARCH), "-t", "fusemax", "--shape", "M=1024"])
    out = capsys.readouterr().out
    assert code == 0 and "phase drain LM" in out and "phase SLNV, SPNV, RNV" in out
    assert main(["map", str(ATT / "mha_1pass.einsum"), "-m", str(ARCH)]) == 0
    assert "phases  QK, LM, RD, AV | drain LM | RM" in capsys.readouterr().out


def test_a_pipeline_on_a_grid_target_is_refused():
    spec = cascade.load(ATT / "mha_1pass.einsum", dict(B=1, H=1, E=64, F=64, M=512, P=512))
    with pytest.raises(MappingError, match="phases are costed on spatial targets only; grayskull_e150"):
        spec.estimate(parse_mapping(_arch(512), "arch.yaml"), "grayskull_e150")
