"""Small `ast` builders for the Triton generator: `tl.*` calls, subscripts that add axes, `if`
and `for` statements. Every name is made by the generator; no spec text ever becomes code."""

from __future__ import annotations

import ast

from .pyast import binop, call, const, name, store


def attr(base: str, *chain: str) -> ast.expr:
    node: ast.expr = name(base)
    for a in chain:
        node = ast.Attribute(node, a, ast.Load())
    return node


def tl(fn: str, *args: ast.expr, **kwargs: ast.expr) -> ast.Call:
    return call(attr("tl", fn), *args, **kwargs)


def method(obj: ast.expr, fn: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Attribute(obj, fn, ast.Load()), list(args), [])


def expand(expr: ast.expr, position: int, ndim: int) -> ast.expr:
    """A vector as axis `position` of an `ndim`-dimensional block: `x[:, None]`, `x[None, :]`."""
    if ndim <= 1:
        return expr
    index = [ast.Slice() if i == position else const(None) for i in range(ndim)]
    return ast.Subscript(expr, ast.Tuple(index, ast.Load()), ast.Load())


def and_all(terms: list[ast.expr]) -> ast.expr | None:
    out = None
    for t in terms:
        out = t if out is None else ast.BinOp(out, ast.BitAnd(), t)
    return out


def compare(left: ast.expr, op: str, right: ast.expr) -> ast.expr:
    ops = {"<": ast.Lt, "<=": ast.LtE, "==": ast.Eq, "!=": ast.NotEq, ">=": ast.GtE, ">": ast.Gt}
    return ast.Compare(left, [ops[op]()], [right])


def assign(target: str, value: ast.expr) -> ast.stmt:
    return ast.Assign([store(target)], value, lineno=0)


def if_(cond: ast.expr, body: list[ast.stmt], orelse: list[ast.stmt] | None = None) -> ast.stmt:
    return ast.If(cond, body or [ast.Pass()], orelse or [])


def for_range(var: str, lo: ast.expr, body: list[ast.stmt], hi: ast.expr) -> ast.stmt:
    return ast.For(store(var), call("range", lo, hi), body or [ast.Pass()], [], lineno=0)


def float_const(value: float) -> ast.expr:
    if value == float("inf"):
        return call("float", const("inf"))
    if value == float("-inf"):
        return call("float", const("-inf"))
    return const(float(value))


__all__ = ["attr", "tl", "method", "expand", "and_all", "compare", "assign", "if_", "for_range",
           "float_const", "binop", "call", "const", "name"]
