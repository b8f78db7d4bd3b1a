"""A tiny vocabulary for building Python code as `ast` nodes, and an emitter of indented lines.

Generated modules are assembled from these nodes (and `ast.unparse`), never by pasting spec
text: every identifier taken from a spec is re-validated here before it becomes a Name.
"""

from __future__ import annotations

import ast
import keyword
import re

from ..errors import InternalError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def name(ident: str) -> ast.Name:
    if not _IDENT.match(ident) or keyword.iskeyword(ident):
        raise InternalError(f"refusing to generate identifier {ident!r}")
    return ast.Name(ident, ast.Load())


def store(ident: str) -> ast.Name:
    node = name(ident)
    node.ctx = ast.Store()
    return node


def const(value) -> ast.expr:
    if isinstance(value, float) and value != value:
        raise InternalError("NaN constant")
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        node = ast.Attribute(name("np"), "inf", ast.Load())
        return ast.UnaryOp(ast.USub(), node) if value < 0 else node
    if isinstance(value, (int, float, str)) or value is None:
        return ast.Constant(value)
    raise InternalError(f"unsupported constant {value!r}")


def np_attr(attr: str) -> ast.expr:
    if not _IDENT.match(attr):
        raise InternalError(f"bad numpy attribute {attr!r}")
    return ast.Attribute(name("np"), attr, ast.Load())


def call(func: ast.expr | str, *args: ast.expr, **kwargs: ast.expr) -> ast.Call:
    f = name(func) if isinstance(func, str) else func
    return ast.Call(f, list(args), [ast.keyword(k, v) for k, v in kwargs.items()])


def np_call(attr: str, *args: ast.expr, **kwargs: ast.expr) -> ast.Call:
    return call(np_attr(attr), *args, **kwargs)


def binop(left: ast.expr, op: str, right: ast.expr) -> ast.expr:
    ops = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div, "//": ast.FloorDiv, "%": ast.Mod}
    return ast.BinOp(left, ops[op](), right)


def tup(*items: ast.expr) -> ast.Tuple:
    return ast.Tuple(list(items), ast.Load())


def slice_(lo: ast.expr | None, hi: ast.expr | None) -> ast.Slice:
    return ast.Slice(lo, hi, None)


def subscript(value: ast.expr, index: list[ast.expr]) -> ast.expr:
    if not index:
        return value
    sl = index[0] if len(index) == 1 else ast.Tuple(index, ast.Load())
    return ast.Subscript(value, sl, ast.Load())


def assign(target: ast.expr, value: ast.expr) -> ast.stmt:
    if isinstance(target, ast.Subscript):
        target = ast.Subscript(target.value, target.slice, ast.Store())
    elif isinstance(target, ast.Name):
        target = store(target.id)
    return ast.Assign([target], value, lineno=0)


def text(node: ast.AST) -> str:
    return ast.unparse(ast.fix_missing_locations(node))


class Emitter:
    """Indented lines of Python; statements arrive as ast nodes, comments as plain text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def stmt(self, node: ast.stmt) -> None:
        for line in text(node).splitlines():
            self.lines.append("    " * self.depth + line)

    def raw(self, line: str) -> None:
        """A line of fixed generator text (never spec text)."""
        self.lines.append("    " * self.depth + line if line else "")

    def comment(self, line: str) -> None:
        safe = line.replace("\n", " ").replace("\r", " ")
        self.lines.append("    " * self.depth + "# " + safe)

    def open_for(self, var: str, extent: ast.expr) -> None:
        self.raw(f"for {name(var).id} in range({text(extent)}):")
        self.depth += 1

    def open_if(self, cond: ast.expr) -> None:
        self.raw(f"if {text(cond)}:")
        self.depth += 1

    def open_else(self) -> None:
        self.depth -= 1
        self.raw("else:")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"
