"""Energy of reductions across an array (`reduce_read` / `reduce_write`): per point of a statement
whose reduced rank the mapping lays across the unit's PEs, in closed form; the symbolic formula
and the DSE's plan charge the same."""

from __future__ import annotations

from pathlib import Path

import pytest

import cascade
from cascade.mapping.mapping_file import parse_mapping
from cascade.model.target import load_target

ROOT = Path(__file__).resolve().parent.parent
FUSEMAX = ROOT / "mappings" / "mha_1pass" / "fusemax.yaml"


def _spec_and_mapping(b=2, h=3, e=64, m=1024, p=512):
    spec = cascade.load(ROOT / "specs/attention/mha_1pass.einsum", dict(B=b, H=h, E=e, F=e, M=m, P=p))
    text = FUSEMAX.read_text().replace("uniform_shape(32768)", f"uniform_shape({p})")
    return spec, parse_mapping(text)


def test_reductions_across_the_array_charge_the_edge_register_file():
    """FuseMax's mapping lays M0 across the 2D array: LM (max over m0), SLD and SLNV (sums over
    m0) reduce across it; QK reduces e in time and the 1D statistics reduce nothing spatially.
    Points: LM = SLD = B H M P, SLNV = B H M P F."""
    b, h, e, m, p = 2, 3, 64, 1024, 512
    spec, mapping = _spec_and_mapping(b, h, e, m, p)
    target = load_target("fusemax")
    report = spec.estimate(mapping, target)
    points = 2 * b * h * m * p + b * h * m * p * e
    table = target.energy["units"]["array2d"]
    terms = report.extra["energy_pj"]["array2d"]
    assert terms["reduce_read"] == pytest.approx(points * table["reduce_read"], rel=1e-12)
    assert terms["reduce_write"] == pytest.approx(points * table["reduce_write"], rel=1e-12)
    assert "reduce_read" not in report.extra["energy_pj"]["array1d"]  # no such charge given for it
    # the total is the sum of its terms, as the breakdown says
    total = sum(sum(t.values()) for t in report.extra["energy_pj"].values()) * 1e-12
    assert report.energy_j == pytest.approx(total, rel=1e-12)


def test_no_spatial_reduction_no_charge():
    """The same cascade with every Einsum's space ranks dropped (nothing across the array):
    no reduce terms at all, though the target gives their energies."""
    spec, mapping = _spec_and_mapping()
    text = FUSEMAX.read_text().replace("uniform_shape(32768)", "uniform_shape(512)")
    text = text[:text.index("spacetime:")] + text[text.index("fusion:"):]
    report = spec.estimate(parse_mapping(text), load_target("fusemax"))
    assert report.extra["energy_pj"]["array2d"].get("reduce_read", 0) == 0


def test_symbolic_energy_formula_charges_the_same():
    import sympy as sp

    spec, mapping = _spec_and_mapping()
    report = spec.estimate(mapping, load_target("fusemax"), symbolic=True)
    names = {n: sp.Symbol(n, positive=True) for n in report.shapes}  # E is a rank here, not Euler's e
    formula = sp.sympify(report.symbolic["energy_pj"], locals=names)
    value = formula.subs({names[n]: v for n, v in report.shapes.items()})
    assert float(value) * 1e-12 == pytest.approx(report.energy_j, rel=1e-9)


def test_dse_plan_energy_equals_the_estimate():
    """The DSE's formula path (cost_formulas' reduced_points) and the numeric model agree."""
    from cascade.dse.evaluate import _energy_formula
    from cascade.model.symbolic import cost_formulas

    spec, mapping = _spec_and_mapping()
    target = load_target("fusemax")
    formulas = cost_formulas(spec.bind(mapping), target)
    values = {formulas.symbols[n]: v for n, v in formulas.values.items()}
    joules = _energy_formula(target, formulas, values)
    assert float(joules.subs(values)) == pytest.approx(spec.estimate(mapping, target).energy_j, rel=1e-9)
