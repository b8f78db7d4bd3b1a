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

`presence` says which filters a statement's points must satisfy, following the operator table
(`cascade.lang.ops`): an intersection-like map needs all its operands' conditions; a union-like
one (`+ - max min`) needs an operand's conditions when the other operand cannot stand in for it
(it does not read all its variables), and only their common conditions when both read the same
variables (`XF[m, p] + Y[m, p]` is present where either is). It also says whether the conditions
are exact (present exactly where they hold): filters from it only drop points that are absent
anyway; an emptiness decided from them (a guard, a rescaled tile) needs them exact.
"""

from __future__ import annotations

import sympy as sp

from ..lang import ir
from ..lang.ops import MAP_OPS
from .roles import Refusal, Roles, call_mapping, rename_compare, rename_expr


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


_CALL = {"<": "lt", "<=": "le", "==": "eq", "!=": "ne", ">=": "ge", ">": "gt"}


def _value(aff: ir.Affine) -> ir.Expr:
    match aff:
        case ir.AffVar(var=v):
            return ir.IndexValue(v)
        case ir.AffConst(value=c):
            return ir.Num(float(c))
        case ir.AffShape(rank=r):
            return ir.ShapeScalar(r)
        case ir.AffNeg(operand=o):
            return ir.Neg(_value(o))
        case ir.AffBin(op=op, left=l, right=r):
            return ir.BinOp(op, _value(l), _value(r))
    raise TypeError(aff)


def guarded_value(guard: list[ir.Compare], value: ir.Expr, identity: float) -> ir.Expr:
    """`value` where every guard holds, else the reduction's identity (a max over no point is
    -inf, present, which an absent value read as 0 would not give): nested `select`s."""
    out = value
    for cmp in reversed(guard):
        out = ir.Call("select", (ir.Call(_CALL[cmp.op], (_value(cmp.left), _value(cmp.right))), out,
                                 ir.Num(identity)))
    return out


def _text(cmp: ir.Compare) -> str:
    from ..lang.show import show_compare

    return show_compare(cmp)


def presence(roles: Roles, name: str) -> tuple[list[ir.Compare], bool]:
    """The filters every point of statement `name` satisfies (its own `where` and what its body's
    presence needs), over its own variables, and whether it is present exactly where they hold."""
    stmt = roles.writer[name]
    conds, exact = _expr(roles, stmt.expr)
    return _dedupe(list(stmt.filters) + conds), exact


def _expr(roles: Roles, expr: ir.Expr) -> tuple[list[ir.Compare], bool]:
    match expr:
        case ir.Read(access=acc):
            stmt = roles.writer.get(acc.tensor)
            if stmt is None:
                return [], True  # an input: present everywhere
            idx_map, aff_map = call_mapping(stmt, acc)
            if roles.kind.get(acc.tensor) != "stream":  # a reduction or a constant: present where its own filter holds
                own = [rename_compare(c, aff_map) for c in stmt.filters if _only_lhs(c, stmt)]
                return own, True
            inner, exact = _expr(roles, rename_expr(stmt.expr, idx_map))
            return [rename_compare(c, aff_map) for c in stmt.filters] + inner, exact
        case ir.Neg(operand=o):
            return _expr(roles, o)
        case ir.BinOp(op=op, left=l, right=r):
            return _merge(roles, op, [l, r])
        case ir.Call(fn=fn, args=args):
            return _merge(roles, fn, list(args))
    return [], True  # numbers, shapes, index values: present everywhere


def atom_presence(roles: Roles, acc: ir.Access) -> tuple:
    """A read's presence as a hashable key: its conditions (as text) and whether they are exact."""
    return expr_presence(roles, ir.Read(acc))


def expr_presence(roles: Roles, expr: ir.Expr) -> tuple:
    """An expression's presence as a hashable key (conditions as text, exact)."""
    conds, exact = _expr(roles, expr)
    return tuple(sorted({_key(c) for c in conds})), exact


def _merge(roles: Roles, op: str, args: list[ir.Expr]) -> tuple[list[ir.Compare], bool]:
    parts = [_expr(roles, a) for a in args]
    spec = MAP_OPS.get(op)
    if spec is None or spec.absent != "union" or len(args) != 2:
        return [c for conds, _ in parts for c in conds], all(e for _, e in parts)
    (ca, ea), (cb, eb) = parts
    va, vb = ir.expr_read_vars(args[0]), ir.expr_read_vars(args[1])
    if va == vb:  # present where either is
        keys = {_key(c) for c in cb}
        common = [c for c in ca if _key(c) in keys]
        return common, ea and eb and {_key(c) for c in ca} == keys
    conds, exact = [], True
    if not va <= vb:  # b cannot stand in for an absent a
        conds, exact = conds + ca, exact and ea
    if not vb <= va:
        conds, exact = conds + cb, exact and eb
    return conds, exact


def _only_lhs(cmp: ir.Compare, stmt: ir.Einsum) -> bool:
    return {v.var for v in ir.affine_vars(cmp.left) + ir.affine_vars(cmp.right)} <= set(stmt.lhs.variables)


def _key(cmp: ir.Compare) -> str:
    return _text(cmp)


def _dedupe(cmps: list[ir.Compare]) -> list[ir.Compare]:
    out, seen = [], set()
    for c in cmps:
        if _key(c) not in seen:
            seen.add(_key(c))
            out.append(c)
    return out
