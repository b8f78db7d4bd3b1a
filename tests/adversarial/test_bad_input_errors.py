"""Class 5 of hostile input: bad input is an exit-2 message at the right place, never a traceback.

Numbers written oddly, long chains and wide Einsums, empty cascades, mapping and target fields of
the wrong type, loop orders that leave levels out, deep TeAAL expressions, unusable `.npz` files
and wrong values through the Python API.
"""

from __future__ import annotations

import numpy as np
import pytest

import cascade
from cascade.errors import CascadeError, InputError, MappingError, SpecError, TargetError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("item", ["M=²", "M=١٢", "M=" + "9" * 5000, "M=1e3", "M=-0", "M=" + "9" * 20])
def test_odd_numbers_in_shape_options(cli, root, item):
    code, out, err = cli("check", root / "specs" / "matmul.einsum", "--shape", item)
    assert code == 2 and out == "" and "write RANK=N with N a positive integer" in err
    assert len(err) < 400


def test_a_chain_of_a_thousand_einsums(tmp_path):
    lines = ["shape M = 3", "input A0[M]", "output A1000[M]"] + [f"A{i + 1}[m] = A{i}[m] + 1" for i in range(1000)]
    spec = cascade.load(write(tmp_path, "chain.einsum", "\n".join(lines) + "\n"))
    given = spec.random_inputs(seed=0)["A0"]
    np.testing.assert_allclose(spec.run(seed=0)["A1000"], given + 1000)  # closed form: a thousand +1 steps
    assert spec.passes().passes == {"M": 1}


def test_five_thousand_filters():
    cond = " and ".join(["m <= 2"] * 5000)
    spec = cascade.loads(f"shape M = 4\ninput X[M]\noutput Y[M]\nY[m] = X[m] where {cond}\n")
    x = spec.random_inputs(seed=2)["X"]
    np.testing.assert_allclose(spec.run({"X": x})["Y"], np.where(np.arange(4) <= 2, x, 0.0))


@pytest.mark.parametrize("count", [27, 70])
def test_more_index_variables_than_einsum_letters(cli, tmp_path, count):
    names = [f"R{i}" for i in range(count)]
    text = ("shape " + ", ".join(f"{n} = 1" for n in names) + "\ninput X[" + ", ".join(names) + "]\n"
            "output Y[R0]\nY[r0] = X[" + ", ".join(n.lower() for n in names) + "]\n")
    spec = write(tmp_path, "wide.einsum", text)
    code, _, err = cli("run", spec)
    assert code == 2 and f"wide.einsum:4:1: this Einsum uses {count} index variables; at most 26" in err


def test_26_index_variables_still_run(tmp_path):
    names = [f"R{i}" for i in range(26)]
    text = ("shape " + ", ".join(f"{n} = 1" for n in names) + "\ninput X[" + ", ".join(names) + "]\n"
            "output Y[R0]\nY[r0] = X[" + ", ".join(n.lower() for n in names) + "]\n")
    spec = cascade.loads(text)
    x = spec.random_inputs(seed=1)["X"]
    np.testing.assert_allclose(spec.run({"X": x})["Y"], x.reshape(1, -1).sum(axis=1))
    np.testing.assert_allclose(spec.executor().run(X=x)["Y"], x.reshape(1, -1).sum(axis=1))


def test_rankless_einsums_are_costed(root):
    spec = cascade.load(root / "tests" / "cascades" / "scalars_and_constants.einsum")
    report = spec.estimate(None, "fusemax")
    assert report.latency_s >= 0


@pytest.mark.parametrize("command", [["graph", "-o", "{tmp}/g.png"], ["search", "-t", "fusemax"]])
def test_an_empty_cascade(cli, tmp_path, command):
    spec = write(tmp_path, "empty.einsum", "")
    code, _, err = cli(command[0], spec, *[c.format(tmp=tmp_path) for c in command[1:]])
    assert code == 2 and "the cascade has no Einsums" in err


@pytest.mark.parametrize("text, fragment", [
    ("partitioning: 5\n", "partitioning: expected a table"),
    ("partitioning: {M: 5}\n", "partitioning.M: expected a list of levels"),
    ("partitioning: {M: [7]}\n", "7 is not supported"),
    ("partitioning: {M: [uniform_shape(" + "9" * 5000 + ")]}\n", "is not supported"),
    ("loop-order: {default: 3.5}\n", "loop-order.default: expected a list of names"),
    ("loop-order: true\n", "loop-order: expected a table"),
    ("spacetime: {default: {space: 5, time: [M]}}\n", "spacetime.default.space: expected a list"),
    ("fusion: true\n", "fusion: expected a list of groups"),
    ("binding: [1]\n", "binding: expected a table"),
    ("loop-orders: {default: [M]}\n", "unknown key 'loop-orders'"),
    ("fusion: [[Z]]\nfusion: [[Z]]\n", "duplicate key 'fusion'"),
])
def test_mapping_fields_of_the_wrong_type(cli, root, tmp_path, text, fragment):
    mapping = write(tmp_path, "m.yaml", text)
    code, _, err = cli("map", root / "specs" / "matmul.einsum", "-m", mapping)
    assert code == 2 and fragment in err and str(mapping) in err


def test_loop_order_omitting_the_outer_level_of_a_split(cli, root, tmp_path):
    mapping = write(tmp_path, "m.yaml", "partitioning: {P: [uniform_shape(512), uniform_shape(64)]}\n"
                                       "loop-order: {default: [P1, M, P0, E, F]}\n")
    code, out, _ = cli("run", root / "specs" / "attention" / "attention_3pass.einsum", "-m", mapping, "--check",
                       seconds=60, megabytes=400)
    assert code == 0 and "matches the reference" in out


@pytest.mark.parametrize("old, new, fragment", [
    ("ops: [mac, add, max]}", "ops: 5}", "units.array2d.ops: expected a non-empty list"),
    ("op_costs:\n", "op_costs: [1]\nop_costs_as_a_list:\n", "op_costs: expected a mapping"),
    ("word_bytes: 2 ", "word_bytes: .nan", "word_bytes: nan is not an integer"),
    ("clock_hz: 940000000", "clock_hz: []", "clock_hz: expected a number"),
])
def test_target_fields_of_the_wrong_type(cli, root, tmp_path, old, new, fragment):
    text = (root / "specs" / "targets" / "fusemax.yaml").read_text()
    assert old in text
    target = write(tmp_path, "t.yaml", text.replace(old, new, 1))
    code, _, err = cli("estimate", root / "specs" / "matmul.einsum", "-t", target)
    assert code == 2 and fragment in err


@pytest.mark.parametrize("section", ["units", "dram"])
def test_empty_target_sections(root, section):
    from cascade.model.target import parse_target

    text = (root / "specs" / "targets" / "fusemax.yaml").read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{section}:"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith((" ", "#")))
    cut = "\n".join(lines[:start] + [f"{section}: {{}}"] + lines[end:]) + "\n"
    with pytest.raises(TargetError, match=f"{section}: expected a mapping of fields, got {{}}"):
        parse_target(cut, "t.yaml")


def test_deep_and_long_teaal_expressions(cli, tmp_path):
    head = "einsum:\n  declaration:\n    A: [K]\n    Z: []\n  expressions:\n    - "
    deep = write(tmp_path, "deep.yaml", head + "Z[] = " + "(" * 5000 + "A[k]" + ")" * 5000 + "\n")
    long = write(tmp_path, "long.yaml", head + "Z[] = " + "+".join(["A[k]"] * 5000) + "\n")
    code, _, err = cli("import-teaal", deep, "-o", tmp_path / "o1")
    assert code == 2 and "nested more than 200 levels" in err and len(err) < 400
    code, _, err = cli("import-teaal", long, "-o", tmp_path / "o2")
    assert code == 2 and "more than 200 operators" in err


@pytest.mark.parametrize("arrays, fragment", [
    ({}, "holds no arrays"),
    ({"A": np.full((3, 2), "x")}, "is not a real number type"),
    ({"A": np.zeros((3, 2), "datetime64[s]")}, "is not a real number type"),
    ({"A": np.zeros((3, 2), [("a", "f8"), ("b", "i4")])}, "is not a real number type"),
    ({"A": np.zeros((3, 2), complex)}, "is not a real number type"),
])
def test_unusable_npz_inputs(cli, root, tmp_path, arrays, fragment):
    path = tmp_path / "in.npz"
    np.savez(path, **arrays)
    code, _, err = cli("run", root / "specs" / "matmul.einsum", "--shape", "K=3", "--shape", "M=2",
                       "--inputs", path)
    assert code == 2 and fragment in err


def test_wrong_values_through_the_api(root):
    with pytest.raises(SpecError, match="a spec is given as a file path"):
        cascade.load(None)
    with pytest.raises(SpecError, match="are strings"):
        cascade.loads(None)
    spec = cascade.load(root / "specs" / "matmul.einsum", shapes={"K": 3, "M": 2, "N": 4})
    with pytest.raises(MappingError, match="a mapping is given as a file path"):
        spec.bind({"partitioning": {}})
    with pytest.raises(TargetError, match="give a target file path or a bundled name"):
        spec.estimate(None, None)


def test_executor_input_errors_have_an_error_type_of_their_own(root):
    spec = cascade.load(root / "specs" / "matmul.einsum", shapes={"K": 3, "M": 2, "N": 4})
    module = spec.executor()
    with pytest.raises(module.InputError, match="missing input A") as info:
        module.run(B=np.ones((3, 4)))
    assert isinstance(info.value, ValueError)
    with pytest.raises(module.InputError, match="must be real numbers"):
        module.run(A=np.full((3, 2), "x"), B=np.ones((3, 4)))
    with pytest.raises(CascadeError):
        spec.run({"A": np.full((3, 2), "x")})
    assert issubclass(InputError, CascadeError)
