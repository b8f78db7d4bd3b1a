"""FLAT's own block of query rows (mappings/mha_3pass/flat_block*.yaml): the block's scores held on
chip, passed through the array 256 rows at a time, AV run pass by pass after the block's softmax
by its own loop order (an Einsum whose loop-order departs from the default runs its own nest,
cascade.mapping.schedule). Traffic against a closed form counted by hand, the footprint against
the block's scores, the spill against the executor's trace, the symbolic formulas, the
artifact's rows, and a departing order over a recurrence's iterative rank refused."""

from __future__ import annotations

import csv
from math import ceil
from pathlib import Path

import pytest

import cascade
from cascade.errors import MappingError
from cascade.mapping.mapping_file import parse_mapping
from cascade.model.target import parse_target
from oracles import assert_trace_equals_model, traced_run_matches_reference

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "mha_3pass.einsum"
MAPPINGS = ROOT / "mappings" / "mha_3pass"
ARTIFACT = ROOT.parent / "shared" / "external" / "fusemax"


def block_mapping(rows: int, name: str = "flat_block"):
    text = (MAPPINGS / f"{name}.yaml").read_text()
    assert "P: [uniform_shape(4096), uniform_shape(256)]" in text
    return parse_mapping(text.replace("uniform_shape(4096)", f"uniform_shape({rows})"), f"{name}_{rows}.yaml")


def small_flat(capacity: int):
    text = (ROOT / "specs" / "targets" / "flat_cloud.yaml").read_text()
    old = next(line for line in text.splitlines() if "capacity_bytes:" in line)
    return parse_target(text.replace(old, f"  capacity_bytes: {capacity}"), "small_flat.yaml")


def passes(p: int, block: int, tile: int = 256) -> int:
    """256-row passes over P in blocks of `block` rows (ragged blocks and passes count whole)."""
    sizes = [block] * (p // block) + ([p % block] if p % block else [])
    return sum(ceil(s / tile) for s in sizes)


def check_trace(spec, mapping, target, report, seed):
    _, trace = traced_run_matches_reference(spec, mapping, target, seed)
    assert_trace_equals_model(report, trace, target.word_bytes)


def test_av_runs_its_own_nest_after_the_blocks_softmax():
    spec = cascade.load(SPEC, dict(B=1, H=1, E=4, F=4, M=600, P=700))
    mc = spec.bind(block_mapping(512))
    ranks = {mc.semantics.statements[k].name: [mc.loop_of[lid] for lid in mc.paths[k]]
             for k in range(len(mc.semantics.statements))}
    assert ranks["QK"] == ["B1", "H1", "P2", "M1", "P1"]
    assert ranks["AV"] == ["B1", "H1", "P2", "P1", "M1"]
    a, av = (mc.paths[k] for k, s in enumerate(mc.semantics.statements) if s.name in ("A", "AV"))
    assert av[:3] == a[:3] and av[3] not in a  # shares the block's loop, then opens its own passes


def test_traffic_closed_form_and_trace_without_spill():
    """Q once per key tile and per pass, K and V once per pass, AV written once: nothing else."""
    import sympy as sp

    from cascade.model.symbolic import cost_formulas
    from cascade.model.symbols import SymbolTable
    from cascade.model.target import load_target

    b, h, e, f, m, p, block = 1, 2, 8, 8, 600, 1324, 512
    spec = cascade.load(SPEC, dict(B=b, H=h, E=e, F=f, M=m, P=p))
    mapping = block_mapping(block)
    report = spec.estimate(mapping, "flat_cloud")
    assert not report.extra.get("spills")
    n = passes(p, block)
    expected = b * h * (e * p * ceil(m / 256) + e * m * n + f * m * n + f * p)
    assert report.dram_bytes == 2 * expected
    check_trace(spec, mapping, small_flat(32 * 2**20), report, seed=7)
    mc = spec.bind(mapping)  # the symbolic model's formulas (dse) give the same traffic and latency
    formulas = cost_formulas(mc, load_target("flat_cloud"))
    table = SymbolTable(mc)
    table.symbols.update(formulas.symbols)
    table.values.update(formulas.values)
    subs = table.substitutions()
    assert float(sp.sympify(formulas.dram_bytes).subs(subs)) == pytest.approx(report.dram_bytes, rel=1e-12)
    assert float(sp.sympify(formulas.latency_s).subs(subs)) == pytest.approx(report.latency_s, rel=1e-12)


def test_the_blocks_scores_are_held_and_spill_as_the_trace_shows():
    """The intermediates on chip are one block's scores (SN and A overwrite QK in place) and its
    row max and sum (the symbolic footprint says the same); a buffer smaller than that spills
    (F - B) / I of them, as the executor's trace counts."""
    import sympy as sp

    from cascade.model.spill import group_footprints
    from cascade.model.symbolic import footprint_formula
    from cascade.model.symbols import SymbolTable

    b, h, e, f, m, p, block = 1, 2, 4, 4, 300, 700, 256 * 2
    spec = cascade.load(SPEC, dict(B=b, H=h, E=e, F=f, M=m, P=p))
    mapping = block_mapping(block)
    mc = spec.bind(mapping)
    (inter, pinned, kept), = group_footprints(mc, in_place=True)
    assert inter == block * m + 2 * block
    capacity = 2 * (inter + pinned) * 9 // 10
    target = small_flat(capacity)
    report = spec.estimate(mapping, target, symbolic=True)
    assert any("spills to DRAM" in line for line in report.extra["spills"])
    fraction = (inter + pinned - capacity / 2) / inter
    assert report.per_tensor["A"]["write_bytes"] == pytest.approx(2 * fraction * b * h * m * p, rel=1e-9)
    check_trace(spec, mapping, target, report, seed=8)
    table = SymbolTable(mc)  # the symbolic footprint (what dse and the search prune by) agrees
    assert float(sp.sympify(footprint_formula(mc, table, in_place=True)).subs(table.substitutions())) == inter + pinned


@pytest.mark.skipif(not ARTIFACT.is_dir(), reason="the FuseMax artifact's results are in ../shared")
@pytest.mark.parametrize("model, length, heads, e, n, name", [
    ("BERT", "4K", 12, 64, 4096, "flat_block"), ("T5", "16K", 8, 64, 16384, "flat_block"),
    ("XLM", "16K", 16, 128, 16384, "flat_block_q")])
def test_artifact_rows_with_flats_own_block(model, length, heads, e, n, name):
    """FLAT's configured block (flat_validation.csv: a whole head at `head` granularity, else P1)
    spills as the artifact's FLAT does: traffic within 1% (the artifact counts 7 score accesses
    of X / (S + X), the model 8 of X / S: the one spill rule for every mapping)."""
    with open(ARTIFACT / "flat_validation.csv") as fh:
        config = next(r for r in csv.DictReader(fh) if (r["platform"], r["models"], r["seq_len"]) == ("cloud", model, length))
    with open(ARTIFACT / "attn-flat.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if (r["model"], r["seq_len"]) == (model, length))
    rows = n if config["fusion_granularity"] == "head" else int(config["P1"])
    spec = cascade.load(SPEC, dict(B=64, H=heads, E=e, F=e, M=n, P=n))
    report = spec.estimate(block_mapping(rows, name), "flat_cloud")
    assert report.extra.get("spills")
    assert report.dram_bytes == pytest.approx(float(row["traffic"]), rel=1e-2)
    assert report.latency_s == pytest.approx(float(row["latency"]), rel=1e-9)


def test_a_departing_order_over_a_recurrence_is_refused():
    """SLN runs inside the running max's recurrence over M1 (mha_1pass): an own order putting P1
    outside M1 would split the recurrence's loop, so it is refused with the entry named."""
    from dataclasses import replace

    spec = cascade.load(ROOT / "specs" / "attention" / "mha_1pass.einsum")
    mapping = spec.bind(ROOT / "mappings" / "mha_1pass" / "fusemax.yaml").mapping
    order = dict(mapping.loop_order)
    order["SLN"] = ("B1", "H1", "P2", "P1", "M1", "P0", "M0", "B0", "H0")  # default: P2, M1, P1
    with pytest.raises(MappingError, match=r"loop-order\.SLN: .*M1 is a recurrence's iterative rank"):
        spec.bind(replace(mapping, loop_order=order))
