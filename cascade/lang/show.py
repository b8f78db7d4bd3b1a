"""IR -> normalised `.einsum` text (`cascade show`). `parse(show(c)) == c` for every cascade."""

from __future__ import annotations

import math

from . import ir
from .ops import MAP_OPS

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def show(cascade: ir.Cascade) -> str:
    lines = [f"cascade {cascade.name}"]
    if cascade.shapes:
        lines.append("shape " + ", ".join(f"{s.rank} = {s.size}" for s in cascade.shapes))
    for split in cascade.splits:
        lines.append(f"split {split.rank} = " + " * ".join(split.parts))
    if cascade.inputs:
        lines.append("input " + ", ".join(show_decl(d) for d in cascade.inputs))
    if cascade.outputs:
        lines.append("output " + ", ".join(show_decl(d) for d in cascade.outputs))
    lines.append("")
    lines.extend(show_statement(s) for s in cascade.statements)
    return "\n".join(lines) + "\n"


def show_decl(decl: ir.TensorDecl) -> str:
    return f"{decl.name}[{', '.join(decl.ranks)}]"


def show_statement(stmt: ir.Statement) -> str:
    if isinstance(stmt, ir.Init):
        return f"init {show_access(stmt.lhs)} = {show_expr(stmt.expr)}"
    text = f"{show_access(stmt.lhs)} = {show_expr(stmt.expr)}"
    if stmt.reduction is not None:
        text += f" :: {stmt.reduction.op}({', '.join(stmt.reduction.variables)})"
    if stmt.filters:
        text += " where " + " and ".join(show_compare(c) for c in stmt.filters)
    return text


def show_access(access: ir.Access) -> str:
    return f"{access.tensor}[{', '.join(show_index(i) for i in access.indices)}]"


def show_index(index: ir.Index) -> str:
    match index:
        case ir.VarIndex(var=v, offset=0):
            return v
        case ir.VarIndex(var=v, offset=o) if o > 0:
            return f"{v}+{o}"
        case ir.VarIndex(var=v, offset=o):
            return f"{v}-{-o}"
        case ir.ConstIndex(value=c):
            return str(c)
        case ir.LastIndex(rank=r):
            return r
    raise TypeError(index)


def show_compare(cmp: ir.Compare) -> str:
    return f"{show_affine(cmp.left)} {cmp.op} {show_affine(cmp.right)}"


def show_affine(aff: ir.Affine, parent: int = 0, right: bool = False) -> str:
    match aff:
        case ir.AffVar(var=v):
            return v
        case ir.AffConst(value=c):
            return str(c) if c >= 0 or parent == 0 else f"({c})"
        case ir.AffShape(rank=r):
            return r
        case ir.AffNeg(operand=o):
            return "-" + show_affine(o, 3)
        case ir.AffBin(op=op, left=l, right=r):
            return _bracket(f"{show_affine(l, _PRECEDENCE[op])} {op} {show_affine(r, _PRECEDENCE[op], True)}",
                            _PRECEDENCE[op], parent, right)
    raise TypeError(aff)


def show_number(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def show_expr(expr: ir.Expr, parent: int = 0, right: bool = False) -> str:
    match expr:
        case ir.Num(value=v):
            text = show_number(v)
            return f"({text})" if text.startswith("-") and parent >= 3 else text
        case ir.ShapeScalar(rank=r):
            return r
        case ir.Read(access=a):
            return show_access(a)
        case ir.Neg(operand=o):
            return "-" + show_expr(o, 3)
        case ir.IndexValue(var=v):
            return v
        case ir.Call(fn=fn, args=args):
            return f"{fn}({', '.join(show_argument(a) for a in args)})"
        case ir.BinOp(op=op, left=l, right=r):
            prec = _PRECEDENCE[op]
            return _bracket(f"{show_expr(l, prec)} {op} {show_expr(r, prec, True)}", prec, parent, right)
    raise TypeError(expr)


def show_argument(expr: ir.Expr) -> str:
    """A call's argument; a comparison there is written infix: select(a > b, x, y)."""
    op = MAP_OPS.get(expr.fn) if isinstance(expr, ir.Call) else None
    if op is not None and op.symbol and len(expr.args) == 2:  # type: ignore[union-attr]
        left, right = expr.args  # type: ignore[union-attr]
        return f"{show_expr(left)} {MAP_OPS[expr.fn].symbol} {show_expr(right)}"
    return show_expr(expr)


def _bracket(text: str, prec: int, parent: int, right: bool) -> str:
    """Parenthesise when the parent binds tighter, or equally from the right (a - (b - c))."""
    if prec < parent or (right and prec == parent):
        return f"({text})"
    return text
