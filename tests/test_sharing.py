"""Buffer sharing by liveness (`buffer: {in_place: true}`, cascade.model.sharing): footprints
against closed forms, the symbolic footprint against the numeric one, the spill it leaves
against the executor's trace on a small buffer, and the results unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

import cascade
from cascade.errors import TargetError
from cascade.model.sharing import storage_classes
from cascade.model.spill import group_footprints
from cascade.model.target import parse_target
from oracles import assert_trace_equals_model, traced_run_matches_reference

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "mha_3pass.einsum"
MAPS = ROOT / "mappings" / "mha_3pass"


def target(capacity: int, in_place: bool):
    text = (ROOT / "specs" / "targets" / "flat_cloud.yaml").read_text()
    text = text.replace("in_place: true", f"in_place: {str(in_place).lower()}")
    old = next(line for line in text.splitlines() if "capacity_bytes:" in line)
    return parse_target(text.replace(old, f"  capacity_bytes: {capacity}"), "small_flat.yaml")


def kept(mc, group):
    names = dict.fromkeys(mc.semantics.statements[k].name for k in group.statements)
    return tuple(t for t in names if not mc.storage[t].dram)


def test_flat_intermediates_share_one_score_tile():
    """FLAT's QK, SN and A: SN = exp(QK - GM) is QK's last reader and writes over it, A = SN / SD
    over SN; GM and SD live beside them. Peak: one M x P0 score tile and two rows of statistics
    (flat_bypass: P0 = 256 rows, QK and SN over the whole M; A one 256 x 256 tile)."""
    m, p0 = 600, 256
    mc = cascade.load(SPEC, dict(B=1, H=2, M=m, P=300)).bind(MAPS / "flat_bypass.yaml")
    group = mc.groups[0]
    steps = storage_classes(mc, group, kept(mc, group), True)
    assert all(("QK", "SN", "A") in live for live in steps)
    assert {t for live in steps for cls in live for t in cls} == {"QK", "GM", "SN", "SD", "A"}
    (inter, _, _), = group_footprints(mc, True)
    assert inter == m * p0 + 2 * p0
    (plain, _, _), = group_footprints(mc)
    assert plain == 2 * m * p0 + 256 * 256 + 2 * p0  # QK, SN whole rows, A one tile, GM, SD


def test_liveness_without_in_place_reader():
    """unfused's softmax kernel writes A to DRAM: nothing is overwritten in place, but GM (dead
    once SN has read it) and SD (written after) never hold storage at once."""
    mc = cascade.load(SPEC, dict(B=1, H=2, M=200, P=300)).bind(MAPS / "unfused.yaml")
    group = next(g for g in mc.groups if "SN" in kept(mc, g))
    steps = storage_classes(mc, group, kept(mc, group), True)
    assert not any(len(cls) > 1 for live in steps for cls in live)
    assert not any({("GM",), ("SD",)} <= set(live) for live in steps)
    assert set(kept(mc, group)) == {"GM", "SN", "SD"}
    (_, (shared, _, _), _) = group_footprints(mc, True)
    (_, (plain, _, _), _) = group_footprints(mc)
    rows = 256  # unfused's 256-row blocks: GM and SD one row statistic each, SN one block of scores
    assert plain == 200 * rows + 2 * rows and shared == 200 * rows + rows


@pytest.mark.parametrize("mapping, shapes", [("flat_bypass", dict(B=1, H=2, M=600, P=300)),
                                              ("flat", dict(B=2, H=2, M=300, P=200)),
                                              ("unfused", dict(B=1, H=2, M=200, P=300))])
def test_symbolic_footprint_equals_numeric(mapping, shapes):
    from cascade.model.symbolic import footprint_formula
    from cascade.model.symbols import SymbolTable

    mc = cascade.load(SPEC, shapes).bind(MAPS / f"{mapping}.yaml")
    for in_place in (False, True):
        table = SymbolTable(mc)
        formula = footprint_formula(mc, table, in_place)
        numeric = max(inter + pinned for inter, pinned, _ in group_footprints(mc, in_place))
        assert int(formula.subs(table.substitutions())) == numeric


CASES = [  # mapping, shapes, a buffer between the shared and the unshared footprint, and one below both
    ("flat", dict(B=2, H=2, M=300, P=200), 300_000, 180_000),
    ("flat_bypass", dict(B=1, H=1, E=4, F=4, M=600, P=300), 500_000, 250_000),
]


@pytest.mark.parametrize("mapping, shapes, between, below", CASES)
def test_sharing_spills_less_and_trace_equals_model(mapping, shapes, between, below):
    """Between the two footprints only the unshared buffer spills; below both, the shared one
    spills a smaller fraction, and the executor's trace generated for that target counts exactly
    the model's traffic, tensor by tensor, with the results unchanged."""
    spec = cascade.load(SPEC, shapes)
    path = MAPS / f"{mapping}.yaml"
    assert spec.estimate(path, target(between, False)).extra.get("spills")
    assert not spec.estimate(path, target(between, True)).extra.get("spills")
    shared_tgt = target(below, True)
    shared, plain = spec.estimate(path, shared_tgt), spec.estimate(path, target(below, False))
    assert shared.extra.get("spills") and plain.extra.get("spills")
    assert shared.dram_bytes < plain.dram_bytes
    _, trace = traced_run_matches_reference(spec, path, shared_tgt, 5)
    word = shared_tgt.word_bytes
    assert_trace_equals_model(shared, trace, word)


def test_in_place_must_be_a_flag():
    text = (ROOT / "specs" / "targets" / "flat_cloud.yaml").read_text().replace("in_place: true", "in_place: 3")
    with pytest.raises(TargetError, match=r"buffer\.in_place"):
        parse_target(text, "bad.yaml")


BUNDLED = sorted((ROOT / "mappings").glob("*/*.yaml"))
SPEC_OF = {p.stem: p for p in (ROOT / "specs").rglob("*.einsum")}


def test_sharing_never_grows_a_footprint_of_any_bundled_mapping():
    """Every bundled mapping at its cascade's default shapes: per group, the shared footprint is
    at most the unshared one and at least its largest intermediate, and the symbolic footprint
    with sharing equals the numeric one."""
    from cascade.model.footprint import storage_elements
    from cascade.model.symbolic import footprint_formula
    from cascade.model.symbols import SymbolTable

    checked = 0
    for path in BUNDLED:
        mc = cascade.load(SPEC_OF[path.parent.name]).bind(path)
        shared, plain = group_footprints(mc, True), group_footprints(mc)
        for (s, pinned, names), (u, pinned_u, _) in zip(shared, plain):
            assert pinned == pinned_u and s <= u, path
            assert s >= max((storage_elements(mc, t) for t in names), default=0), path
        table = SymbolTable(mc)
        value = footprint_formula(mc, table, True).subs(table.substitutions())
        assert int(value) == max(i + p for i, p, _ in shared), path
        checked += 1
    assert checked >= 40
