"""The printer: `parse(show(c)) == c` for every bundled and corpus spec, `cascade show` output
re-checks, and a hypothesis property over random IR (expressions, filters, indices) and random
text."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade.cli import main
from cascade.lang import ir
from cascade.lang.check import check
from cascade.lang.parse import parse, parse_file
from cascade.lang.show import show, show_number

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").rglob("*.einsum")) + sorted((ROOT / "tests" / "cascades").glob("*.einsum"))


def spec_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_there_are_specs_to_round_trip():
    assert len([p for p in SPEC_FILES if "tests" not in p.parts]) >= 10
    assert len(SPEC_FILES) >= 35


@pytest.mark.parametrize("path", SPEC_FILES, ids=spec_id)
def test_show_round_trips(path: Path):
    cascade = parse_file(path)
    text = show(cascade)
    again = parse(text, file="shown.einsum")
    assert again == cascade
    assert show(again) == text  # the normal form is a fixed point
    check(again)  # and it is still valid


@pytest.mark.parametrize("path", SPEC_FILES, ids=spec_id)
def test_cascade_show_output_rechecks(path: Path, tmp_path: Path, capsys):
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    shown = tmp_path / path.name
    shown.write_text(out)
    assert main(["check", str(shown)]) == 0
    assert "ok" in capsys.readouterr().out
    assert parse_file(shown) == parse_file(path)


def test_show_normalises_layout():
    text = """# a comment
shape   M=4,P = 3
input X[M,P]
output Y[P]
Y[p]=-(X[m,p]*2) + -3 :: max(m)   where m<=p+1 and (m - 1) * 2 != -p
"""
    shown = show(parse(text, default_name="lay"))
    assert shown == """cascade lay
shape M = 4, P = 3
input X[M, P]
output Y[P]

Y[p] = -(X[m, p] * 2) + -3 :: max(m) where m <= p + 1 and (m - 1) * 2 != -p
"""


def test_show_json(capsys):
    path = ROOT / "specs" / "attention" / "attention_1pass.einsum"
    assert main(["show", str(path), "--json", "--shape", "M=100"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cascade"] == "attention_1pass"
    assert data["shapes"]["M"] == 100 and data["shapes"]["M1"] == 1
    assert parse(data["text"]) == parse_file(path)


# ------------------------------------------------------------------ random IR

TENSORS = st.sampled_from(["A", "QK", "X1", "Snv", "t_2", "RM"])
VARS = st.sampled_from(["m", "p", "m1", "m0", "e", "b2"])
RANKS = st.sampled_from(["M", "P", "M1", "M0", "E", "B_2"])
FNS = st.sampled_from(["exp", "log", "sqrt", "abs", "foo"])
FNS2 = st.sampled_from(["max", "min", "bar"])

indices = st.one_of(
    st.builds(ir.VarIndex, VARS, st.integers(-3, 3)),
    st.builds(ir.ConstIndex, st.integers(-2, 9)),
    st.builds(ir.LastIndex, RANKS),
)
accesses = st.builds(ir.Access, TENSORS, st.lists(indices, max_size=4).map(tuple))
numbers = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-10**6, 10**6).map(float),
    st.sampled_from([0.5, 1e-6, 2.5e-05, 1e30, -1e30, 1e16, 0.1 + 0.2]),
)


def not_num(e: ir.Expr) -> bool:
    return not isinstance(e, ir.Num)  # the parser folds -<number> into the number


def extend_expr(children):
    return st.one_of(
        st.builds(ir.Neg, children.filter(not_num)),
        st.builds(ir.BinOp, st.sampled_from("+-*/"), children, children),
        st.builds(lambda fn, a: ir.Call(fn, (a,)), FNS, children),
        st.builds(lambda fn, a, b: ir.Call(fn, (a, b)), FNS2, children, children),
    )


exprs = st.recursive(
    st.one_of(st.builds(ir.Num, numbers), st.builds(ir.ShapeScalar, RANKS), st.builds(ir.Read, accesses)),
    extend_expr,
    max_leaves=12,
)


def extend_affine(children):
    return st.one_of(
        st.builds(ir.AffNeg, children.filter(lambda a: not isinstance(a, ir.AffConst))),
        st.builds(ir.AffBin, st.sampled_from("+-*"), children, children),
    )


affines = st.recursive(
    st.one_of(st.builds(ir.AffVar, VARS), st.builds(ir.AffConst, st.integers(-5, 20)), st.builds(ir.AffShape, RANKS)),
    extend_affine,
    max_leaves=6,
)
compares = st.builds(ir.Compare, st.sampled_from(["<", "<=", "==", "!=", ">=", ">"]), affines, affines)
reductions = st.builds(ir.Reduction, st.sampled_from(["sum", "max", "min", "prod", "avg"]),
                       st.lists(VARS, min_size=1, max_size=3).map(tuple))
einsums = st.builds(ir.Einsum, accesses, exprs, st.none() | reductions, st.lists(compares, max_size=3).map(tuple))
inits = st.builds(ir.Init, accesses, exprs)
decls = st.builds(ir.TensorDecl, TENSORS, st.lists(RANKS, max_size=4).map(tuple))
cascades = st.builds(
    ir.Cascade,
    name=st.sampled_from(["c", "attention_1pass", "X2"]),
    shapes=st.lists(st.builds(ir.ShapeDecl, RANKS, st.integers(0, 5000)), max_size=4).map(tuple),
    splits=st.lists(st.builds(ir.Split, RANKS, st.lists(RANKS, min_size=2, max_size=3).map(tuple)),
                    max_size=2).map(tuple),
    inputs=st.lists(decls, max_size=3).map(tuple),
    outputs=st.lists(decls, max_size=2).map(tuple),
    statements=st.lists(st.one_of(einsums, inits), max_size=5).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(cascades)
def test_random_ir_round_trips(cascade: ir.Cascade):
    text = show(cascade)
    assert parse(text) == cascade, text


@settings(max_examples=300, deadline=None)
@given(exprs)
def test_random_expression_round_trips(expr: ir.Expr):
    stmt = ir.Einsum(ir.Access("Y", ()), expr)
    back = parse(show(ir.Cascade("c", statements=(stmt,))))
    assert back.statements[0].expr == expr


@settings(max_examples=200, deadline=None)
@given(st.lists(compares, min_size=1, max_size=3))
def test_random_filter_round_trips(filters):
    stmt = ir.Einsum(ir.Access("Y", (ir.VarIndex("m"),)), ir.Num(1.0), None, tuple(filters))
    back = parse(show(ir.Cascade("c", statements=(stmt,))))
    assert back.statements[0].filters == tuple(filters)


# ------------------------------------------------------------------ random text


def _atom_text():
    return st.one_of(
        st.integers(0, 99).map(str),
        st.sampled_from(["0.5", "1e-3", "2.", ".25", "inf", "E", "M0"]),
        st.builds(lambda t, ix: f"{t}[{', '.join(ix)}]", TENSORS,
                  st.lists(st.sampled_from(["m", "p+1", "m1 + 2", "0", "M1", "3 + m0", "e - 1"]), max_size=3)),
    )


def _extend_text(children):
    return st.one_of(
        st.builds(lambda a: f"-{a}", children),
        st.builds(lambda a: f"({a})", children),
        st.builds(lambda a, op, b: f"{a} {op} {b}", children, st.sampled_from("+-*/"), children),
        st.builds(lambda f, a: f"{f}({a})", FNS, children),
        st.builds(lambda f, a, b: f"{f}({a}, {b})", FNS2, children, children),
    )


expr_texts = st.recursive(_atom_text(), _extend_text, max_leaves=10)
affine_texts = st.recursive(
    st.one_of(st.integers(0, 9).map(str), VARS, RANKS),
    lambda ch: st.one_of(st.builds(lambda a: f"-{a}", ch), st.builds(lambda a: f"({a})", ch),
                         st.builds(lambda a, op, b: f"{a} {op} {b}", ch, st.sampled_from("+-*"), ch)),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(expr_texts, st.lists(st.tuples(affine_texts, st.sampled_from(["<", "<=", "==", "!=", ">=", ">"]),
                                      affine_texts), max_size=2))
def test_random_text_round_trips(expr_text: str, filters):
    line = f"Y[m, p] = {expr_text}"
    if filters:
        line += " where " + " and ".join(f"{a} {op} {b}" for a, op, b in filters)
    first = parse(line + "\n")
    assert parse(show(first)) == first


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False))
def test_numbers_print_exactly(value: float):
    text = show_number(value)
    assert parse(f"Y[] = {text}\n").statements[0].expr == ir.Num(value)
    if not math.isinf(value):
        assert float(text) == value
