"""Filters (masks) on the reduced rank in the rewrite: where a fiber, or one tile of it, has a
present point.

Each filter conjunct on r is read as a bound: `r >= A` (lower), `r <= B` (upper), both (`==`),
or none (it does not mention r); A and B are integer affine expressions of the other
variables and shapes (`p - 8 < m` is `m >= p - 7`). A conjunction of such bounds has an integer
point in [lo, hi] exactly when every A <= hi, every B >= lo and every A <= B (Fourier-Motzkin
elimination, exact for unit coefficients). That gives
- `fiber_guard`: the fiber r in [0, R - 1] is non-empty (the guard of a deferred or rescaled
  final value, where the original gives 0 and the rolled form 0/0);
- `tile_filter`: tile r1 (points r1*R0 .. r1*R0 + R0 - 1, and below R) is non-empty; a local
  reduction filtered by it is absent on an empty tile, so its recurrence step carries the old
  running values instead of rescaling them by exp(-inf - -inf).
A bound with a coefficient other than +-1 on r, and `!=`, are refused (no exact projection).
"""

from __future__ import annotations

import sympy as sp

from ..lang import ir
from .roles import Refusal, rename_compare


def _sym(aff: ir.Affine) -> sp.Expr:
    match aff:
        case ir.AffVar(var=v):
            return sp.Symbol(v, integer=True)
        case ir.AffConst(value=c):
            return sp.Integer(c)
        case ir.AffShape(rank=r):
            return sp.Symbol(r, positive=True, integer=True)
        case ir.AffNeg(operand=o):
            return -_sym(o)
        case ir.AffBin(op=op, left=l, right=r):
            a, b = _sym(l), _sym(r)
            return a + b if op == "+" else a - b if op == "-" else a * b
    raise TypeError(aff)


def _affine(expr: sp.Expr) -> ir.Affine:
    """An integer affine sympy expression back to IR (variables lower case, shapes upper case)."""
    expr = sp.expand(expr)
    if expr.is_Integer:
        return ir.AffConst(int(expr))
    if expr.is_Symbol:
        return ir.AffVar(expr.name) if expr.name.islower() else ir.AffShape(expr.name)
    if expr.is_Add:
        terms = list(expr.as_ordered_terms())
        out = _affine(terms[0])
        for t in terms[1:]:
            out = ir.AffBin("-", out, _affine(-t)) if t.could_extract_minus_sign() else ir.AffBin("+", out, _affine(t))
        return out
    if expr.is_Mul:
        if expr.could_extract_minus_sign():
            return ir.AffNeg(_affine(-expr))
        factors = list(expr.as_ordered_factors())
        out = _affine(factors[0])
        for f in factors[1:]:
            out = ir.AffBin("*", out, _affine(f))
        return out
    raise TypeError(expr)


def bounds(cmp: ir.Compare, var: str) -> list[tuple[str, sp.Expr]]:
    """The filter as bounds on `var`: [('lower', A)] for var >= A, [('upper', B)] for var <= B,
    both for `==`, [] when it does not mention var."""
    r = sp.Symbol(var, integer=True)
    diff = sp.expand(_sym(cmp.left) - _sym(cmp.right))  # the filter is `diff op 0`
    coeff = diff.coeff(r)
    if coeff == 0:
        return []
    rest = diff - coeff * r
    text = _text(cmp)
    if coeff not in (1, -1) or rest.has(r):
        raise Refusal(cmp.span, f"the filter '{text}' has coefficient {abs(coeff)} on {var}: only 1 projects "
                                "exactly onto tiles; 2 passes kept")
    if cmp.op == "!=":
        raise Refusal(cmp.span, f"the filter '{text}' leaves a hole in the fiber of {var}: only bounds "
                                "(< <= == >= >) are projected onto tiles; 2 passes kept")
    # coeff * r + rest op 0  ->  r op' -rest / coeff, strict bounds tightened by 1 (integers)
    value = -rest * coeff
    op = cmp.op if coeff == 1 else {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}[cmp.op]
    if op == "<":
        return [("upper", value - 1)]
    if op == "<=":
        return [("upper", value)]
    if op == ">":
        return [("lower", value + 1)]
    if op == ">=":
        return [("lower", value)]
    return [("lower", value), ("upper", value)]


def has_lower_bound(filters: list[ir.Compare], var: str) -> bool:
    return any(kind == "lower" for cmp in filters for kind, _ in bounds(cmp, var))


def _project(filters: list[ir.Compare], var: str, lo: list[ir.Affine], hi: list[ir.Affine]) -> list[ir.Compare]:
    """Conditions, free of `var`, under which some var with every lo <= var <= every hi satisfies
    every filter. A single bound is written as the filter at the extreme point (`m <= p` at
    m = 0 is `0 <= p`); a pair of bounds as A <= B. Conditions sympy decides true are dropped;
    one decided false is a refusal (every fiber empty)."""
    out: list[ir.Compare] = []
    lowers: list[sp.Expr] = []
    uppers: list[sp.Expr] = []

    def add(cmp: ir.Compare, decided: sp.Expr) -> None:
        if decided is sp.true:
            return
        if decided is sp.false:
            raise Refusal(cmp.span, f"the filter '{_text(cmp)}' leaves every fiber empty")
        if cmp not in out:
            out.append(cmp)

    for cmp in filters:
        for kind, value in bounds(cmp, var):
            (lowers if kind == "lower" else uppers).append(value)
            for extreme in (hi if kind == "lower" else lo):
                at = rename_compare(cmp, {var: extreme})
                at = ir.Compare(at.op, at.left, at.right)
                add(at, _decide(at))
    for a in lowers:
        for b in uppers:
            cmp = ir.Compare("<=", _affine(a), _affine(b))
            add(cmp, _decide(cmp))
    return out


def _decide(cmp: ir.Compare) -> sp.Expr:
    """sp.true / sp.false when sympy decides the comparison for every value of its variables
    (shapes are positive integers), else the undecided relation."""
    diff = sp.expand(_sym(cmp.left) - _sym(cmp.right))
    return {"<": sp.Lt, "<=": sp.Le, "==": sp.Eq, "!=": sp.Ne, ">=": sp.Ge, ">": sp.Gt}[cmp.op](diff, 0)


def fiber_guard(filters: list[ir.Compare], var: str, rank: str) -> list[ir.Compare]:
    """Where the fiber of `var` (0 .. rank - 1) has a point every filter keeps."""
    last = ir.AffBin("-", ir.AffShape(rank), ir.AffConst(1))
    return _project(filters, var, [ir.AffConst(0)], [last])


def tile_filter(filters: list[ir.Compare], var: str, rank: str, outer: str, inner: str) -> list[ir.Compare]:
    """Where tile `outer` (points outer*R0 + 0 .. R0 - 1, below R) has a point every filter keeps."""
    first = ir.AffBin("*", ir.AffVar(outer), ir.AffShape(inner))
    last_in_tile = ir.AffBin("-", ir.AffBin("+", first, ir.AffShape(inner)), ir.AffConst(1))
    last = ir.AffBin("-", ir.AffShape(rank), ir.AffConst(1))
    return _project(filters, var, [first], [last_in_tile, last])


def _text(cmp: ir.Compare) -> str:
    from ..lang.show import show_compare

    return show_compare(cmp)
