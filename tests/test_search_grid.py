"""Mapping search on a grid target (Grayskull): the best mapping found is no slower than the
bundled kernels and costs what it says; every mapping returned fits a core's L1; the CLI writes a
mapping that estimate accepts; on a space small enough to enumerate, it returns the true optimum."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

import cascade
from cascade.cli import main
from cascade.errors import CascadeError, MappingError
from cascade.mapping.mapping_file import dump_mapping, load_mapping, parse_mapping
from cascade.model.target import load_target, parse_target
from cascade.search import search
from cascade.search.grid import GridFamily, GridSpace

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "scores_softmax.einsum"
MAPS = ROOT / "mappings" / "scores_softmax"
TARGET_FILE = ROOT / "specs" / "targets" / "grayskull_e150.yaml"


def scores_softmax(n: int, **shapes: int):
    return cascade.load(SPEC, {"M": n, "P": n, **shapes})


def grayskull_variant(name: str, *edits: tuple[str, str]):
    text = TARGET_FILE.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    return parse_target(text, f"{name}.yaml")


@pytest.fixture(scope="module")
def grayskull():
    return load_target("grayskull_e150")


@pytest.fixture(scope="module")
def found(grayskull):
    """The latency search at n = 1024 (every family scored) and 2048 (with a budget: the families of
    one program come first and take a few seconds; those of several programs, last, are what it cuts)."""
    out = {}
    for n, budget in ((1024, 60.0), (2048, 5.0)):
        result = search(scores_softmax(n), grayskull, "latency", budget_s=budget, top=1)
        assert result.best and result.candidates_scored > 0
        out[n] = result
    assert out[1024].families_scored == out[1024].families_total
    return out


@pytest.mark.parametrize("n", [1024, 2048])
def test_search_is_no_slower_than_the_bundled_kernels(found, grayskull, n):
    spec = scores_softmax(n)
    fused = load_mapping(MAPS / "grayskull_fused.yaml")
    fused = dataclasses.replace(fused, partitioning={"P": (n // 8,), "M": (n // 8,)})  # (n/8)-blocks on 8x8 cores
    dedicated = load_mapping(MAPS / "grayskull_dedicated.yaml")  # both of its programs, as written
    best = found[n].best[0]
    assert best.latency_s <= spec.estimate(fused, grayskull).latency_s
    assert best.latency_s <= spec.estimate(dedicated, grayskull).latency_s


@pytest.mark.parametrize("n", [1024, 2048])
def test_the_mapping_found_costs_what_it_says(found, grayskull, n):
    spec = scores_softmax(n)
    best = found[n].best[0]
    for mapping in (best.mapping, parse_mapping(dump_mapping(best.mapping), "<written>")):
        report = spec.estimate(mapping, grayskull)
        assert report.latency_s == best.latency_s == best.objective
        assert report.dram_bytes == best.dram_bytes
        assert report.extra["l1_bytes_per_core"] == best.footprint_bytes
    space = {r for st in best.mapping.spacetime.values() for r in st.space}
    assert space and space <= set(best.family.order)  # loop ranks spread over the cores
    assert best.mapping.binding["QK"] == "matrix" and best.mapping.binding["SN"] == "vector"


def test_every_mapping_returned_fits_l1(grayskull):
    spec = scores_softmax(1024)
    space = GridSpace(spec, grayskull)
    for fusion in space.fusions():  # whole ranks: the scores of a row block overflow a core's L1
        with pytest.raises(MappingError, match="of L1 per core"):
            spec.estimate(space.mapping(GridFamily((), (), fusion, width=2), {}), grayskull)
    small = grayskull_variant("grayskull_64k", ("  l1_bytes: 1048576", "  l1_bytes: 65536"))
    with pytest.raises(MappingError, match="of L1 per core"):  # the bundled fused kernel needs 96 KiB
        spec.estimate(MAPS / "grayskull_fused.yaml", small)
    for target in (grayskull, small):
        result = search(spec, target, "latency", budget_s=30, top=3)
        assert len(result.best) == 3
        l1 = target.extra["grid"]["l1_bytes"]
        for c in result.best:
            report = spec.estimate(c.mapping, target)
            assert c.footprint_bytes <= l1
            assert all(g["l1_bytes_per_core"] <= l1 for g in report.groups)


def test_search_cli_on_grayskull(tmp_path, capsys):
    out = tmp_path / "best.yaml"
    shapes = ["--shape", "M=1024", "--shape", "P=1024"]
    code = main(["search", str(SPEC), "-t", "grayskull_e150", "-o", str(out), "--top", "1", *shapes])
    text = capsys.readouterr().out
    assert code == 0 and "floor: compulsory DRAM traffic" in text and " / space " in text and out.exists()
    assert main(["estimate", str(SPEC), "-m", str(out), "-t", "grayskull_e150", *shapes]) == 0
    capsys.readouterr()
    assert main(["search", str(SPEC), "-t", "grayskull_e150", "--objective", "energy", *shapes]) == 2
    err = capsys.readouterr().err
    assert "--objective energy: target grayskull_e150 gives no per-access energies" in err and "Traceback" not in err


# A 2x3 grid of cores on 4x4 tiles with 192 B of L1, small enough to enumerate, with the L1 refusing
# about 40% of the candidates and a dispatch that prunes the families of three programs or more.
TINY = grayskull_variant("tiny_grid", ("  shape: [10, 12]", "  shape: [2, 3]"),
                         ("  compute: [9, 12]", "  compute: [2, 3]"), ("  l1_bytes: 1048576", "  l1_bytes: 192"),
                         ("  tile: [32, 32]", "  tile: [4, 4]"), ("  dispatch_s: 0.00014", "  dispatch_s: 0.000005"))
TINY_SHAPES = {"E": 4, "M": 16, "P": 16}
WHOLE_UP_TO = 4


@pytest.fixture(scope="module")
def enumerated():
    """Every candidate of every family through `Spec.estimate`: the optimum of each objective, and
    how many candidates the L1 refused."""
    spec = cascade.load(SPEC, TINY_SHAPES)
    space = GridSpace(spec, TINY, WHOLE_UP_TO)
    best: dict[str, float] = {}
    refused = 0
    for family in space.families():
        axes = space.tile_options(family)
        for combo in itertools.product(*[options for _, options in axes]):
            try:
                report = spec.estimate(space.mapping(family, dict(zip([r for r, _ in axes], combo))), TINY)
            except CascadeError:
                refused += 1
                continue
            for objective, value in (("latency", report.latency_s), ("traffic", report.dram_bytes)):
                best[objective] = min(best.get(objective, float("inf")), value)
    return best, refused


@pytest.mark.parametrize("objective", ["latency", "traffic"])
def test_grid_search_finds_the_enumerated_optimum(enumerated, objective):
    truth, refused = enumerated
    assert refused > 0  # the L1 constraint is exercised, not vacuous
    spec = cascade.load(SPEC, TINY_SHAPES)
    result = search(spec, TINY, objective, budget_s=600, top=1, whole_up_to=WHOLE_UP_TO)
    assert result.families_scored == result.families_total
    assert result.best[0].objective == truth[objective]
