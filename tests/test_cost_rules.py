"""Cost rules a researcher relies on (issue 12, items 5 and 7): factors that do not vary along a
reduced rank are applied once per output point, a division by a constant costs a multiply, and
an omitted `spacetime` means what the README says (nothing spatial: one PE), reported per Einsum.
Every expected count is a closed form in the shapes, written here independently of the model."""

from __future__ import annotations

import json

import pytest

import cascade
from cascade.cli import main
from cascade.mapping.mapping_file import parse_mapping

SCALED = """cascade scaled
shape E = 64, M = 512, P = 384
input Q[E, P], K[E, M]
output QK[M, P]
QK[m, p] = Q[e, p] * K[e, m] / sqrt(E)
"""

PRESCALED = """cascade prescaled
shape E = 64, M = 512, P = 384
input Q[E, P], K[E, M]
output QK[M, P]
QS[e, p] = Q[e, p] / sqrt(E)
QK[m, p] = QS[e, p] * K[e, m]
"""

SPACE = "spacetime: {default: {space: [M, P], time: [E]}}"
PRE_SPACE = "spacetime: {default: {space: [M, P], time: [E]}, QS: {space: [E, P], time: []}}"
E, M, P = 64, 512, 384


def test_scale_inside_a_contraction_costs_like_the_prescaled_form():
    """Why 4: `Q*K/sqrt(E)` was charged E*M*P divides and moved to the 1D array. The scale does
    not vary along e, so it costs one mac per output point: E*M*P + M*P macs, all on the 2D
    array, against E*P + E*M*P for the pre-scaled form; latencies agree within 1/E."""
    scaled = cascade.loads(SCALED).estimate(parse_mapping(SPACE), "fusemax")
    pre = cascade.loads(PRESCALED).estimate(parse_mapping(PRE_SPACE), "fusemax")
    assert scaled.per_unit["array2d"]["ops"] == {"mac": E * M * P + M * P}
    assert pre.per_unit["array2d"]["ops"] == {"mac": E * P + E * M * P}
    assert scaled.per_unit["array1d"]["ops"] == {} and pre.per_unit["array1d"]["ops"] == {}
    compute = lambda r: sum(g["compute_s"] for g in r.groups)
    assert compute(scaled) == pytest.approx(compute(pre), rel=1.0 / E)


def test_default_binding_keeps_a_scaled_matrix_product_on_the_2d_array():
    report = cascade.loads(SCALED).estimate(None, "fusemax")
    assert [(p["einsum"], p["unit"]) for p in report.placement] == [("QK", "array2d")]


@pytest.mark.parametrize("form", ["X[m, p] / M", "X[m, p] * (1 / M)", "(1 / M) * X[m, p]"])
def test_divide_by_a_shape_and_multiply_by_its_reciprocal_cost_alike(form):
    text = f"shape M = 96, P = 40\ninput X[M, P]\noutput Y[M, P]\nY[m, p] = {form}\n"
    report = cascade.loads(text).estimate(parse_mapping("spacetime: {default: {space: [M], time: [P]}}"),
                                          "fusemax")
    assert report.per_unit["array2d"]["ops"] == {"mac": 96 * 40}
    assert report.per_unit["array1d"]["ops"] == {}


def test_a_per_row_divisor_inside_a_sum_is_applied_once_per_output_point():
    """O[f, p] = sum_m S[m, p] V[f, m] / D[p]: F*M*P macs (the sum of products) and F*P divides."""
    text = ("shape F = 8, M = 50, P = 30\ninput S[M, P], V[F, M], D[P]\noutput O[F, P]\n"
            "O[f, p] = S[m, p] * V[f, m] / D[p]\n")
    report = cascade.loads(text).estimate(None, "fusemax")
    ops = {k: v for d in report.per_unit.values() for k, v in d["ops"].items()}
    assert ops == {"mac": 8 * 50 * 30, "divide": 8 * 30}


def test_a_factor_varying_along_the_reduced_rank_is_not_hoisted():
    """sum_m X[m, p] / D[m] keeps one divide and one add per point (M*P each)."""
    text = "shape M = 50, P = 30\ninput X[M, P], D[M]\noutput O[P]\nO[p] = X[m, p] / D[m]\n"
    report = cascade.loads(text).estimate(None, "fusemax")
    ops = {k: v for d in report.per_unit.values() for k, v in d["ops"].items()}
    assert ops == {"divide": 50 * 30, "add": 50 * 30}


MATMUL = "shape K = 48, M = 40, N = 24\ninput A[K, M], B[K, N]\noutput Z[M, N]\nZ[m, n] = A[k, m] * B[k, n]\n"


def test_an_omitted_spacetime_is_nothing_spatial():
    """Why 6: with no spacetime the matmul runs on one PE (K*M*N cycles), never faster than a
    mapping that puts a rank in space, and written out in full (declaration order, empty space,
    its own group, the first able unit) it costs exactly the same."""
    spec = cascade.loads(MATMUL)
    omitted = spec.estimate(parse_mapping(""), "fusemax")
    full = spec.estimate(parse_mapping("loop-order: {default: [M, N, K]}\n"
                                       "spacetime: {default: {space: [], time: [M, N, K]}}\n"
                                       "fusion: [[Z]]\nbinding: {default: array2d}"), "fusemax")
    assert omitted.to_json() == full.to_json()
    assert omitted.per_unit["array2d"]["cycles"] == 48 * 40 * 24
    assert omitted.placement == [{"einsum": "Z", "unit": "array2d", "space": [], "occupancy": 1 / 256**2}]
    for space in ("[K]", "[M]", "[M, N]"):
        spread = spec.estimate(parse_mapping(f"spacetime: {{default: {{space: {space}}}}}"), "fusemax")
        assert spread.latency_s < omitted.latency_s, space


def test_the_lambdified_model_agrees_on_nothing_spatial():
    from cascade.model.symbolic import cost_formulas, lambdify_cost

    spec = cascade.loads(MATMUL)
    from cascade.model.target import load_target

    target = load_target("fusemax")
    fn, names = lambdify_cost(cost_formulas(spec.bind(parse_mapping("")), target))
    values = {"K": 48, "M": 40, "N": 24}
    latency, _ = fn(*[values[n] for n in names])
    assert latency == pytest.approx(spec.estimate(None, target).latency_s, rel=1e-12)


def test_estimate_prints_the_placement(tmp_path, capsys):
    path = tmp_path / "mm.einsum"
    path.write_text(MATMUL)
    mapping = tmp_path / "m.yaml"
    mapping.write_text("spacetime: {default: {space: [M, N], time: [K]}}\n")
    assert main(["estimate", str(path), "-m", str(mapping), "-t", "fusemax"]) == 0
    out = capsys.readouterr().out
    assert "Z          on array2d    space: M, N" in out
    assert main(["estimate", str(path), "-t", "fusemax", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["placement"][0]["space"] == []
