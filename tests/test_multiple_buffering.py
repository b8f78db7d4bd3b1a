"""A mapping's `multiple-buffering`: each loaded tile is held that many times, which the footprint
that decides spilling counts (cascade.model.spill), the same in the symbolic model's formula; the
spill it causes is what the executor's trace shows; bad values are refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

import cascade
from cascade.errors import MappingError
from cascade.mapping.mapping_file import dump_mapping, parse_mapping
from cascade.model.target import parse_target
from oracles import assert_trace_equals_model, traced_run_matches_reference

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "mha_3pass.einsum"
FLAT = ROOT / "mappings" / "mha_3pass" / "flat.yaml"
SHAPES = dict(B=1, H=2, M=300, P=200)  # ragged tiles on purpose


def mapping(copies: int | None):
    text = FLAT.read_text()
    if copies is not None:
        text += f"\nmultiple-buffering: {copies}\n"
    return parse_mapping(text, f"flat_x{copies}.yaml")


def target(capacity: int):
    text = (ROOT / "specs" / "targets" / "flat_cloud.yaml").read_text().replace("in_place: true", "in_place: false")
    old = next(line for line in text.splitlines() if "capacity_bytes:" in line)
    return parse_target(text.replace(old, f"  capacity_bytes: {capacity}"), "small_flat.yaml")


def test_loads_count_once_per_copy_numerically_and_symbolically():
    from cascade.model.footprint import load_elements
    from cascade.model.spill import group_footprints
    from cascade.model.symbolic import footprint_formula
    from cascade.model.symbols import SymbolTable

    spec = cascade.load(SPEC, SHAPES)
    one, two = spec.bind(mapping(None)), spec.bind(mapping(2))
    assert one.mapping.multiple_buffering == 1 and two.mapping.multiple_buffering == 2
    for g, ((i1, l1, _), (i2, l2, _)) in enumerate(zip(group_footprints(one), group_footprints(two))):
        loaded = sum(load_elements(one, ld) for ld in one.loads if ld.statements[0] in one.groups[g].statements)
        assert i2 == i1 and l2 - l1 == loaded  # the intermediates once, every loaded tile a second time
    for mc in (one, two):
        table = SymbolTable(mc)
        formula = footprint_formula(mc, table)
        numeric = max(i + p for i, p, _ in group_footprints(mc))
        assert float(formula.subs(table.substitutions())) == numeric


def test_double_buffering_spills_what_fits_single_buffered_and_the_trace_agrees():
    from cascade.model.spill import group_footprints

    spec = cascade.load(SPEC, SHAPES)
    one, two = spec.bind(mapping(None)), spec.bind(mapping(2))
    word = 2
    single = max(i + p for i, p, _ in group_footprints(one)) * word
    double = max(i + p for i, p, _ in group_footprints(two)) * word
    assert double > single
    capacity = (single + double) // 2  # fits single-buffered, not double-buffered
    tgt = target(capacity)
    assert not spec.estimate(mapping(None), tgt).extra.get("spills")
    report = spec.estimate(mapping(2), tgt)
    assert report.extra.get("spills")
    # the spilled fraction of the group that overflows: (I + 2L - B) / I, from the footprints
    (inter, pinned, _), = [f for f in group_footprints(two) if (f[0] + f[1]) * word > capacity]
    from cascade.model.spill import plan_spills

    (spill,) = [s for s in plan_spills(two, tgt)[0] if s.fraction]
    assert spill.fraction == pytest.approx((inter + pinned - capacity / word) / inter, rel=1e-12)
    _, trace = traced_run_matches_reference(spec, mapping(2), tgt, 5)
    assert_trace_equals_model(report, trace, word)


@pytest.mark.parametrize("value", ["0", "9", "two", "true", "1.5", "[2]"])
def test_bad_values_are_refused_naming_the_key(value):
    with pytest.raises(MappingError) as exc:
        parse_mapping(FLAT.read_text() + f"\nmultiple-buffering: {value}\n", "bad.yaml")
    assert "bad.yaml: multiple-buffering:" in str(exc.value) and "1 to 8" in str(exc.value)


def test_dump_round_trips():
    m = mapping(2)
    again = parse_mapping(dump_mapping(m), "again.yaml")
    assert again.multiple_buffering == 2
    assert "multiple-buffering" not in dump_mapping(mapping(None))
