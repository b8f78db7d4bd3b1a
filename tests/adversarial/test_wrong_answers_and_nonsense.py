"""Classes 2 and 6 of hostile input: no wrong answer with exit 0, no nonsense silently accepted.

Integer and boolean inputs compute as the reference does (in float64), checked against plain NumPy;
default loop orders that leave split levels out are completed so every such mapping computes what
the reference does; non-finite and out-of-range target numbers, strings read as booleans, unknown
and duplicate keys, and output paths that would save nothing or block are refused.
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascade
from cascade.errors import TargetError
from cascade.mapping.mapping_file import parse_mapping
from cascade.model.target import parse_target


@pytest.mark.parametrize("dtype, value", [(np.int8, 100), (np.int16, 300), (np.bool_, True), (np.uint8, 255)])
def test_integer_and_bool_inputs_compute_in_float(root, dtype, value):
    spec = cascade.load(root / "specs" / "matmul.einsum", shapes={"K": 4, "M": 3, "N": 2})
    a, b = np.full((4, 3), value, dtype), np.full((4, 2), value, dtype)
    want = a.astype(np.float64).T @ b.astype(np.float64)  # 4 * value**2, never wrapped
    mapping = parse_mapping("partitioning: {K: [uniform_shape(2)]}\nloop-order: {default: [K1, M, N, K0]}\n")
    for module in (spec.executor(), spec.executor(mapping)):
        got = module.run(A=a, B=b)["Z"]
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(spec.run({"A": a, "B": b})["Z"], want)


RANKS = {"P": ["P2", "P1", "P0"], "F": ["F2", "F1", "F0"], "M": ["M1", "M0"]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_default_loop_orders_leaving_levels_out_compute_the_reference(root, data):
    """Any sub-list of the ranks, in any order that keeps each split's listed levels outermost
    first, is a valid default loop order; the executor must equal the reference for all."""
    spec = cascade.load(root / "specs" / "attention" / "attention_3pass.einsum",
                        shapes={"E": 3, "F": 4, "M": 6, "P": 8})
    names = ["P2", "P1", "P0", "M1", "M0", "E", "F2", "F1", "F0"]
    listed = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    for family in RANKS.values():  # keep listed outer levels in nesting order (others are an error)
        slots = [i for i, r in enumerate(listed) if r in family]
        for i, r in zip(slots, [r for r in family if r in listed]):
            listed[i] = r
    text = ("partitioning: {P: [uniform_shape(4), uniform_shape(2)], F: [uniform_shape(2), uniform_shape(1)], "
            "M: [uniform_shape(3)]}\n")
    if listed:
        text += f"loop-order: {{default: [{', '.join(listed)}]}}\n"
    if data.draw(st.booleans()):  # one fusion group: the group's loops merge the Einsums' orders
        text += f"fusion: [[{', '.join(s.name for s in spec.semantics.statements if not s.is_init)}]]\n"
    inputs = spec.random_inputs(seed=5)
    got = spec.executor(parse_mapping(text, "m.yaml")).run(**inputs)["AV"]
    np.testing.assert_allclose(got, spec.run(inputs)["AV"], rtol=1e-10, atol=1e-12)


def _fusemax(root) -> str:
    return (root / "specs" / "targets" / "fusemax.yaml").read_text()


@pytest.mark.parametrize("old, new, fragment", [
    ("clock_hz: 940000000", "clock_hz: .nan", "clock_hz: expected a finite number, got nan"),
    ("clock_hz: 940000000", "clock_hz: .inf", "clock_hz: expected a finite number, got inf"),
    ("bandwidth_bytes_per_s: 429496729600", "bandwidth_bytes_per_s: -.inf", "expected a finite number"),
    ("capacity_bytes: 16777216", "capacity_bytes: 0", "capacity_bytes: 0 is out of range"),
    ("capacity_bytes: 16777216", "capacity_bytes: -1", "capacity_bytes: -1 is out of range"),
    ("word_bytes: 2 ", "word_bytes: 0.5", "word_bytes: 0.5 is not an integer"),
    ("exp_absorbs_subtract: true", "exp_absorbs_subtract: 'no'", "exp_absorbs_subtract: 'no' is not true or false"),
    ("latency: max_per_group", "latency: max_per_grup", "is not a latency rule"),
    ("name: fusemax", "name: fusemax\nclok_hz: 5", "'clok_hz': not a target field"),
    ("name: fusemax", "name: fusemax\nclock_hz: 5", "duplicate key 'clock_hz'"),
])
def test_target_nonsense_is_refused(root, old, new, fragment):
    text = _fusemax(root)
    assert old in text
    with pytest.raises(TargetError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        parse_target(text.replace(old, new, 1), "t.yaml")


def test_bundled_targets_still_load():
    from cascade.errors import TargetError
    from cascade.model.gpu import gpu_target_file, load_gpu_target
    from cascade.model.target import bundled_targets, load_target

    for name in bundled_targets():
        if gpu_target_file(name) is not None:  # kind: gpu has its own reader (estimate only)
            assert load_gpu_target(gpu_target_file(name)).clock_hz > 0
            with pytest.raises(TargetError, match="costed by `cascade estimate` only"):
                load_target(name)
            continue
        target = load_target(name)
        assert target.clock_hz > 0 and target.word_bytes >= 1 and target.units


def test_estimate_json_holds_no_bare_nan(capsys, root):
    from cascade.cli import main

    code = main(["estimate", str(root / "specs" / "matmul.einsum"), "-t", "fusemax", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    json.loads(out, parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))


def test_output_paths_that_save_nothing_or_block(cli, root, tmp_path):
    spec = root / "specs" / "matmul.einsum"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, fragment in (("", "give a file name"), (str(fifo), "not a regular file"), (str(tmp_path), "a folder")):
        code, out, err = cli("run", spec, "--shape", "M=4", "--save", path, seconds=10)
        assert code == 2 and fragment in err and "saved" not in out


def test_import_teaal_does_not_overwrite_its_input(cli, tmp_path):
    source = tmp_path / "gemm.yaml"
    source.write_text("einsum:\n  declaration:\n    A: [K, M]\n    B: [K, N]\n    Z: [M, N]\n"
                      "  expressions:\n    - Z[m, n] = A[k, m] * B[k, n]\n")
    before = source.read_text()
    code, _, err = cli("import-teaal", source, "-o", tmp_path)
    assert code == 2 and "would overwrite the TeAAL spec itself" in err
    assert source.read_text() == before


def test_all_orders_of_a_two_level_split_are_checked_or_run(root):
    """Every permutation of P2, P1 listed explicitly is either refused at binding or correct."""
    spec = cascade.load(root / "specs" / "matmul.einsum", shapes={"K": 3, "M": 8, "N": 2})
    inputs = spec.random_inputs(seed=1)
    want = inputs["A"].T @ inputs["B"]
    for order in itertools.permutations(["M2", "M1", "K", "N"]):
        text = ("partitioning: {M: [uniform_shape(4), uniform_shape(2)]}\n"
                f"loop-order: {{default: [{', '.join(order)}]}}\n")
        try:
            module = spec.executor(parse_mapping(text, "m.yaml"))
        except cascade.errors.MappingError as exc:
            assert "nest outermost first" in str(exc)
            assert order.index("M1") < order.index("M2")
            continue
        np.testing.assert_allclose(module.run(**inputs)["Z"], want, rtol=1e-12)


@pytest.mark.parametrize("odd", ["\f", "\x85", "\u2028", "\u2029", "\x1c"])
def test_odd_line_breaks_do_not_shift_line_numbers(odd):
    text = f"shape M = 4\ninput X[M]  # a{odd} comment\noutput Y[M]\r\nY[m] = Q[m]\n"
    with pytest.raises(cascade.SpecError) as info:
        cascade.loads(text, file="odd.einsum")
    (d,) = info.value.diagnostics
    assert (d.span.line, d.span.col) == (4, 8) and d.source_line == "Y[m] = Q[m]"


@pytest.mark.parametrize("over", ["M=²", "M=" + "9" * 5000, "M=0", "M=4,-1"])
def test_odd_numbers_in_sweep_axes(cli, root, over):
    code, _, err = cli("sweep", root / "specs" / "matmul.einsum", "-t", "fusemax", "--over", over)
    assert code == 2 and "write RANK=V1,V2" in err and len(err) < 400
