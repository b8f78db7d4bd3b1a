"""`cascade sweep` and `cascade.plot`: the table, the JSON points (checked against `Spec.estimate`
at the same shapes and against the closed form of FuseMax's compulsory traffic), refused points,
`--over` syntax, `--plot` with and without matplotlib, and the TTY-only progress line."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

import cascade
from cascade.cli import main
from cascade.commands.sweep import Axis, Progress, format_bytes, format_seconds, parse_over
from cascade.errors import CascadeError

ROOT = Path(__file__).resolve().parent.parent
MHA1 = str(ROOT / "specs" / "attention" / "mha_1pass.einsum")
MHA3 = str(ROOT / "specs" / "attention" / "mha_3pass.einsum")
FUSEMAX = str(ROOT / "mappings" / "mha_1pass" / "fusemax.yaml")
FLAT = str(ROOT / "mappings" / "mha_3pass" / "flat.yaml")
UNFUSED = str(ROOT / "mappings" / "mha_3pass" / "unfused.yaml")
B, H, E = 2, 3, 64
SMALL = ["--shape", f"B={B}", "--shape", f"H={H}"]


def sweep(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["sweep", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def three_pairs(*over: str) -> list[str]:
    return [MHA1, "-m", FUSEMAX, "--pair", f"{MHA3}:{FLAT}", "--pair", f"{MHA3}:{UNFUSED}",
            "-t", "fusemax", *SMALL, *over]


# ---------------------------------------------------------------- JSON points vs the model


def test_json_points_equal_estimate_at_the_same_shapes(capsys):
    code, out, _ = sweep(capsys, *three_pairs("--over", "M=P=1024,4096"), "--json")
    assert code == 0
    points = json.loads(out)
    assert [(p["pair"], p["values"]) for p in points] == [
        (pair, {"M": n, "P": n}) for n in (1024, 4096)
        for pair in ("mha_1pass:fusemax", "mha_3pass:flat", "mha_3pass:unfused")]
    specs = {"mha_1pass:fusemax": (MHA1, FUSEMAX), "mha_3pass:flat": (MHA3, FLAT), "mha_3pass:unfused": (MHA3, UNFUSED)}
    for p in points:
        spec_path, mapping = specs[p["pair"]]
        n = p["values"]["M"]
        expected = cascade.load(spec_path, {"B": B, "H": H, "M": n, "P": n}).estimate(mapping, "fusemax")
        assert p["refused"] is None
        report = p["report"]
        assert report["shapes"]["M"] == report["shapes"]["P"] == n
        assert report["dram_bytes"] == expected.dram_bytes
        assert report["dram_read_bytes"] == expected.dram_read_bytes
        assert report["dram_write_bytes"] == expected.dram_write_bytes
        assert report["latency_s"] == expected.latency_s
        assert report["bound"] == expected.bound
        assert report["utilization"] == expected.utilization
        assert report["per_tensor"] == expected.per_tensor


@pytest.mark.parametrize("n", [512, 2048, 8192])
def test_fusemax_traffic_is_compulsory(capsys, n):
    """While P fits one outer tile (P2 = 1), K and V stream past once: Q, K, V read and AV
    written once each, 4 * B * H * N * E words of 2 bytes."""
    code, out, _ = sweep(capsys, MHA1, "-m", FUSEMAX, "-t", "fusemax", *SMALL, "--over", f"M=P={n}", "--json")
    assert code == 0
    (point,) = json.loads(out)
    assert point["report"]["dram_bytes"] == 4 * B * H * n * E * 2
    assert point["report"]["dram_read_bytes"] == 3 * B * H * n * E * 2


def test_two_flag_form_moves_ranks_together_like_the_chained_form(capsys):
    assert parse_over(["M=1024,4096", "P=1024,4096"]) == [Axis(("M", "P"), (1024, 4096))]
    assert parse_over(["M=P=1024,4096"]) == [Axis(("M", "P"), (1024, 4096))]
    assert parse_over(["M=256,512", "P=128,256"]) == [Axis(("M",), (256, 512)), Axis(("P",), (128, 256))]
    code, out, _ = sweep(capsys, MHA3, "-m", FLAT, "-t", "fusemax", *SMALL,
                         "--over", "M=256,512", "--over", "P=128,256", "--json")
    assert code == 0
    assert [p["values"] for p in json.loads(out)] == [{"M": 256, "P": 128}, {"M": 512, "P": 256}]


# ---------------------------------------------------------------- the table


def test_table_has_a_row_per_point_and_pair(capsys):
    code, out, _ = sweep(capsys, *three_pairs("--over", "M=P=1024,4096"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "sweep on fusemax: M=P in 1024, 4096"
    header = next(line for line in lines if "latency" in line)
    for column in ("M=P", "pair", "latency", "DRAM traffic", "bound", "array2d util", "array1d util"):
        assert column in header
    expected = cascade.load(MHA1, {"B": B, "H": H, "M": 4096, "P": 4096}).estimate(FUSEMAX, "fusemax")
    row = next(line for line in lines if line.lstrip().startswith("4096"))
    assert row.split()[:2] == ["4096", "mha_1pass:fusemax"]
    assert format_seconds(expected.latency_s) in row
    assert format_bytes(expected.dram_bytes) in row
    assert expected.bound in row
    assert f"{expected.utilization['array2d']:.1%}" in row
    rows = [line for line in lines if line.endswith("%")]
    assert len(rows) == 6
    first = next(line for line in lines if line.lstrip().startswith("1024"))
    assert f" {format_bytes(4 * B * H * 1024 * E * 2)} " in first and format_bytes(4 * B * H * 1024 * E * 2) == "3 MiB"


def test_formatting_of_seconds_and_bytes():
    assert format_seconds(2.5) == "2.5 s"
    assert format_seconds(0.0020131) == "2.013 ms"
    assert format_seconds(2.344e-4) == "234.4 us"
    assert format_seconds(5e-9) == "5 ns"
    assert format_bytes(402653184) == "384 MiB"
    assert format_bytes(1.5 * 2**30) == "1.5 GiB"
    assert format_bytes(100) == "100 B"


# ---------------------------------------------------------------- refused points


def test_refused_points_are_reported_and_the_sweep_goes_on(capsys):
    # FLAT loads all of K and V per block of query rows: at M = 65536 that is 16 MiB, FuseMax's
    # whole buffer (a block of scores that does not fit would spill; loaded tiles are refused)
    argv = [MHA1, "-m", FUSEMAX, "--pair", f"{MHA3}:{FLAT}", "-t", "fusemax", *SMALL, "--over", "M=P=1024,65536"]
    code, out, _ = sweep(capsys, *argv, "--json")
    assert code == 0
    points = {(p["pair"], p["values"]["M"]): p for p in json.loads(out)}
    assert len(points) == 4
    refused = points[("mha_3pass:flat", 65536)]
    assert refused["report"] is None
    assert "loaded tiles are not spilled" in refused["refused"] and "flat.yaml" in refused["refused"]
    with pytest.raises(cascade.errors.MappingError, match="loaded tiles are not spilled"):
        cascade.load(MHA3, {"B": B, "H": H, "M": 65536, "P": 65536}).estimate(FLAT, "fusemax")
    for key in (("mha_1pass:fusemax", 1024), ("mha_3pass:flat", 1024), ("mha_1pass:fusemax", 65536)):
        assert points[key]["refused"] is None and points[key]["report"]["dram_bytes"] > 0

    code, out, _ = sweep(capsys, *argv)
    assert code == 0
    row = next(line for line in out.splitlines() if "mha_3pass:flat" in line and "refused" in line)
    assert row.split()[-2:] == ["refused", "[1]"]
    note = next(line for line in out.splitlines() if line.startswith("[1] refused: "))
    assert refused["refused"] in note


# ---------------------------------------------------------------- user errors (exit 2)


@pytest.mark.parametrize("over, message", [
    ("M", "write RANK=V1,V2"),
    ("M=", "write RANK=V1,V2"),
    ("=1024", "write RANK=V1,V2"),
    ("M=1024,x", "write RANK=V1,V2"),
    ("M=0,1024", "positive integers"),
    ("M=1024;2048", "write RANK=V1,V2"),
    ("M=-4", "write RANK=V1,V2"),
    ("M=M=4", "rank M is swept twice"),
    ("Q=1024", "has no rank Q"),
])
def test_bad_over_is_a_user_error(capsys, over, message):
    code, out, err = sweep(capsys, MHA3, "-m", FLAT, "-t", "fusemax", "--over", over)
    assert code == 2
    assert out == ""
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--over", "M=1,2", "--over", "P=1"], "need as many values"),
    (["--over", "M=1,2", "--over", "M=3,4"], "rank M is swept twice"),
    (["--over", "M=256", "--shape", "M=512"], "either fixed or swept"),
    (["--over", "M=256", "--plot", "out.jpg"], "unknown figure format"),
])
def test_inconsistent_options_are_user_errors(capsys, argv, message):
    code, _, err = sweep(capsys, MHA3, "-m", FLAT, "-t", "fusemax", *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_derived_rank_and_missing_spec_are_user_errors(capsys):
    code, _, err = sweep(capsys, MHA1, "-m", FUSEMAX, "-t", "fusemax", "--over", "M1=4")
    assert code == 2 and "derived" in err and "sweep M0 instead" in err
    code, _, err = sweep(capsys, "-t", "fusemax", "--over", "M=256")
    assert code == 2 and "nothing to sweep" in err
    code, _, err = sweep(capsys, "-m", FLAT, "-t", "fusemax", "--over", "M=256")
    assert code == 2 and "-m MAPPING goes with a SPEC" in err


def test_help_says_how_ranks_move_together(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    assert "M=P=1024,4096,16384" in out and "move together" in out and "--pair" in out


# ---------------------------------------------------------------- plots


def test_plot_without_matplotlib_says_how_to_install(capsys, monkeypatch, tmp_path):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib...` now raises ImportError
    out_png = tmp_path / "sweep.png"
    code, out, err = sweep(capsys, MHA3, "-m", FLAT, "-t", "fusemax", "--over", "M=P=256", "--plot", str(out_png))
    assert code == 2
    assert "install matplotlib (pip install 'cascade[plot]')" in err
    assert out == "" and not out_png.exists()  # refused before any point is estimated


def test_plot_writes_a_png_with_refused_points(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is optional (the 'plot' extra); needed to draw")
    out_png = tmp_path / "attention.png"
    code, out, _ = sweep(capsys, *three_pairs("--over", "M=P=1024,4096,65536"), "--plot", str(out_png))
    assert code == 0
    assert f"wrote {out_png}" in out and "refused [1]" in out
    data = out_png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_of_only_refused_points_still_draws(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is optional (the 'plot' extra); needed to draw")
    from cascade.plot import plot_sweep

    out_svg = tmp_path / "none.svg"
    plot_sweep({"a:b": [(1024, None, None), (4096, None, None)]}, "M = P", "on nowhere", out_svg)
    assert "no point fits the target" in out_svg.read_text()


def test_plot_path_is_checked_before_the_sweep(tmp_path):
    from cascade.plot import check_plot_path

    with pytest.raises(CascadeError, match="no folder"):
        check_plot_path(tmp_path / "missing" / "out.png")
    with pytest.raises(CascadeError, match="unknown figure format"):
        check_plot_path(tmp_path / "out")


# ---------------------------------------------------------------- progress


def test_progress_only_on_a_terminal_and_erased_when_done(capsys):
    main(["sweep", MHA3, "-m", FLAT, "-t", "fusemax", "--over", "M=P=256"])
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal: no progress line
    assert Progress.for_stderr() is None
    stream = io.StringIO()
    progress = Progress(stream)
    progress.DELAY_S = 0.0
    progress(0, 2, "mha_3pass:flat M=P=256")
    progress(2, 2, "")
    assert stream.getvalue() == "\r\033[Ksweep 1/2: mha_3pass:flat M=P=256\r\033[K"
    quiet = io.StringIO()
    Progress(quiet)(2, 2, "")  # a sweep that ended before the delay never drew anything
    assert quiet.getvalue() == ""


# ---------------------------------------------------------------- --search


def test_search_sweep_takes_the_best_mapping_at_each_point(capsys, tmp_path):
    """A spec without a mapping is searched at each point: its JSON names the mapping found (the
    one `search` returns at those shapes), the report is that mapping's full estimate, and it is
    no worse on the objective than a hand-written mapping swept beside it."""
    from cascade.search import search

    softmax = str(ROOT / "specs" / "softmax_3pass.einsum")
    by_rows = tmp_path / "rows.yaml"
    by_rows.write_text("partitioning: {P: [uniform_shape(16)]}\nloop-order: {default: [P1, P0, M]}\nbinding: {default: array1d}\n")
    code, out, _ = sweep(capsys, softmax, "--search", "--objective", "traffic", "--pair", f"{softmax}:{by_rows}",
                         "-t", "flat_edge", "--shape", "P=256", "--over", "M=512,1024", "--json")
    assert code == 0
    points = json.loads(out)
    by = {(p["pair"], p["values"]["M"]): p for p in points}
    assert set(by) == {(pair, n) for pair in ("softmax_3pass:searched", "softmax_3pass:rows") for n in (512, 1024)}
    for n in (512, 1024):
        found, given = by[("softmax_3pass:searched", n)], by[("softmax_3pass:rows", n)]
        mapping = found["searched_mapping"]
        assert mapping["optimal"]  # the whole space scored or pruned by bound, not a budget cut
        assert mapping["families_scored"] + mapping["families_pruned"] <= mapping["families_total"]
        assert found["report"]["dram_bytes"] <= given["report"]["dram_bytes"]
        spec = cascade.load(softmax, {"M": n, "P": 256})
        direct = search(spec, "flat_edge", "traffic", 60, top=1).best[0]
        assert mapping["partitioning"] == {r: list(t) for r, t in direct.tiles.items()}
        assert found["report"]["dram_bytes"] == spec.estimate(direct.mapping, "flat_edge").dram_bytes
        assert "searched_mapping" not in given


def test_search_sweep_table_describes_the_mapping_found(capsys):
    code, out, _ = sweep(capsys, str(ROOT / "specs" / "matmul.einsum"), "--search", "-t", "flat_edge",
                         "--shape", "K=64", "--shape", "N=64", "--over", "M=512,1024")
    assert code == 0
    assert "matmul:searched" in out and "with the best mapping searched at each point" in out
    assert out.count("  searched: ") == 2  # one per point, after the utilizations


@pytest.mark.parametrize("argv, message", [
    ([MHA3, "-m", FLAT, "--search", "-t", "fusemax", "--over", "M=256"], "every pair here has one"),
    ([MHA3, "--search", "--budget", "0", "-t", "fusemax", "--over", "M=256"], "the budget must be positive and finite"),
])
def test_search_sweep_errors(capsys, argv, message):
    code, out, err = sweep(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_search_sweep_on_a_grid_target(capsys):
    """On Grayskull the searched mapping at each point is the grid search's, costed by the grid
    model; it is no slower than the paper's fused kernel at the same n (tiles n/8 on 8x8 cores)."""
    from cascade.mapping.mapping_file import parse_mapping

    scores = str(ROOT / "specs" / "attention" / "scores_softmax.einsum")
    code, out, _ = sweep(capsys, scores, "--search", "--budget", "5", "-t", "grayskull_e150",
                         "--over", "M=P=512,1024", "--json")
    assert code == 0
    fused = (ROOT / "mappings" / "scores_softmax" / "grayskull_fused.yaml").read_text()
    for point in json.loads(out):
        n = point["values"]["M"]
        assert point["searched_mapping"]["description"] and point["report"]["extra"]["cores"] >= 1
        paper = parse_mapping(fused.replace("uniform_shape(128)", f"uniform_shape({n // 8})"))
        kernel = cascade.load(scores, {"M": n, "P": n}).estimate(paper, "grayskull_e150")
        assert point["report"]["latency_s"] <= kernel.latency_s
