"""IR expressions <-> sympy: the only place the rewrite turns `.einsum` maps into algebra and back.

`to_sympy` maps every read to a real symbol chosen by the caller (so the same tensor can be an
atom, a running value or a constant), shapes to positive symbols and `inf` to `oo`. `to_ir`
turns a sympy expression back into IR, reads coming from a symbol -> IR table; it writes
subtractions and divisions rather than negative coefficients and powers, so the printed
cascade reads like a hand-written one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp

from ..lang import ir

_UNARY = {"exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "tanh": sp.tanh}


# what sympy raises when it gives up on an expression (a failed proof, never a crash of ours)
SYMPY_GAVE_UP = (NotImplementedError, TypeError, ValueError, ArithmeticError, RecursionError, sp.PolynomialError)


class NotAlgebraic(Exception):
    """A sympy expression with no `.einsum` spelling (the rule using it is refused)."""


def shape_symbol(rank: str) -> sp.Symbol:
    return sp.Symbol(rank, positive=True)


def to_sympy(expr: ir.Expr, symbol_of: Callable[[ir.Access], sp.Expr],
             index_of: Callable[[str], sp.Expr] | None = None) -> sp.Expr:
    """The sympy value of an IR expression; `symbol_of` names each read, `index_of` each index
    value (a rank variable used as a value; without it an index value is `NotAlgebraic`)."""
    match expr:
        case ir.Num(value=v):
            if v == float("inf"):
                return sp.oo
            if v == float("-inf"):
                return -sp.oo
            return sp.Integer(int(v)) if float(v).is_integer() else sp.Float(v)
        case ir.ShapeScalar(rank=r):
            return shape_symbol(r)
        case ir.Read(access=a):
            return symbol_of(a)
        case ir.IndexValue(var=v) if index_of is not None:
            return index_of(v)
        case ir.Neg(operand=o):
            return -to_sympy(o, symbol_of, index_of)
        case ir.BinOp(op=op, left=l, right=r):
            a, b = to_sympy(l, symbol_of, index_of), to_sympy(r, symbol_of, index_of)
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
        case ir.Call(fn=fn, args=args):
            vals = [to_sympy(x, symbol_of, index_of) for x in args]
            if fn in _UNARY:
                return _UNARY[fn](vals[0])
            if fn == "pow":
                return sp.Pow(vals[0], vals[1])
            if fn in ("max", "min"):
                return sp.Max(*vals) if fn == "max" else sp.Min(*vals)
    from ..lang.show import show_expr

    raise NotAlgebraic(f"no algebra for '{show_expr(expr)}'")


def to_ir(expr: sp.Expr, read_of: Mapping[sp.Symbol, ir.Expr]) -> ir.Expr:
    """An IR expression computing `expr`; symbols come from `read_of` (shapes by name)."""
    if expr in read_of:
        return read_of[expr]
    if expr is sp.nan or expr is sp.zoo:
        raise NotAlgebraic(f"an undefined value ({expr})")
    if expr.is_Symbol:
        return ir.ShapeScalar(str(expr))
    if expr is sp.oo:
        return ir.Num(float("inf"))
    if expr is -sp.oo:
        return ir.Num(float("-inf"))
    if expr.is_Number:
        if expr.is_Rational and not expr.is_Integer:
            return ir.BinOp("/", ir.Num(float(expr.p)), ir.Num(float(expr.q)))
        return ir.Num(float(expr))
    if expr.is_Add:
        terms = list(expr.as_ordered_terms())
        pos = [t for t in terms if not t.could_extract_minus_sign()]
        neg = [-t for t in terms if t.could_extract_minus_sign()]
        if not pos:
            return ir.Neg(to_ir(sp.Add(*neg), read_of))
        out = to_ir(pos[0], read_of)
        for t in pos[1:]:
            out = ir.BinOp("+", out, to_ir(t, read_of))
        for t in neg:
            out = ir.BinOp("-", out, to_ir(t, read_of))
        return out
    if expr.is_Mul or (expr.is_Pow and expr.exp.is_negative):
        if expr.could_extract_minus_sign() and expr.is_Mul:
            return ir.Neg(to_ir(-expr, read_of))
        num, den = sp.fraction(expr, exact=True)
        if den != 1:
            return ir.BinOp("/", to_ir(num, read_of), to_ir(den, read_of))
        factors = list(expr.as_ordered_factors())
        out = to_ir(factors[0], read_of)
        for f in factors[1:]:
            out = ir.BinOp("*", out, to_ir(f, read_of))
        return out
    if expr.is_Pow:
        base, e = expr.args
        if e == sp.Rational(1, 2):
            return ir.Call("sqrt", (to_ir(base, read_of),))
        if e.is_Integer and e > 0:
            b = to_ir(base, read_of)
            out = b
            for _ in range(int(e) - 1):
                out = ir.BinOp("*", out, b)
            return out
        return ir.Call("pow", (to_ir(base, read_of), to_ir(e, read_of)))
    if isinstance(expr, sp.exp):
        return ir.Call("exp", (to_ir(expr.args[0], read_of),))
    if isinstance(expr, sp.log):
        return ir.Call("log", (to_ir(expr.args[0], read_of),))
    if isinstance(expr, sp.tanh):
        return ir.Call("tanh", (to_ir(expr.args[0], read_of),))
    if isinstance(expr, sp.Abs):
        return ir.Call("abs", (to_ir(expr.args[0], read_of),))
    if isinstance(expr, (sp.Max, sp.Min)):
        fn = "max" if isinstance(expr, sp.Max) else "min"
        args = [to_ir(a, read_of) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = ir.Call(fn, (out, a))
        return out
    raise NotAlgebraic(f"no .einsum spelling for {expr}")


def is_zero(expr: sp.Expr) -> bool:
    """True only when sympy proves `expr` identically 0 (a failed proof is False)."""
    if expr == 0:
        return True
    for simplify in (sp.expand, lambda e: sp.simplify(sp.powsimp(sp.expand(e), force=True))):
        try:
            if simplify(expr) == 0:
                return True
        except SYMPY_GAVE_UP:  # sympy gave up: not proved
            return False
    return False
