"""Text -> `Cascade`: the only place that knows the grammar or Lark.

The grammar (`grammar/cascade.lark`) comes from `cascade.resources.grammar_text()`. Each line is
parsed on its own (one statement a line), so every syntax error of a file is reported at once,
each as a `Diagnostic` with file:line:col and what was expected. One Transformer turns Lark trees
into frozen IR; trees never leave this module.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ..errors import Diagnostic, Span, SpecError, source_lines
from ..resources import grammar_text
from . import ir
from .ops import COMPARISONS

MAX_DEPTH = 200  # nesting depth of one statement's parse tree (see _too_deep)

_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "NUMBER": "a number",
    "COMPARE": "a comparison (<, <=, ==, !=, >=, >)",
    "$END": "end of line",
}


@functools.cache
def _parser() -> Any:
    import lark

    return lark.Lark(
        grammar_text(),
        start="statement",
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def parse_file(path: str | Path) -> ir.Cascade:
    """Parse a `.einsum` file; raises `SpecError` listing every syntax error."""
    from ..limits import quote
    from ..yaml_text import read_bounded

    if not isinstance(path, (str, Path)):
        raise SpecError([Diagnostic(None, f"{quote(path)}: a spec is given as a file path (str or pathlib.Path)")])
    p = Path(path)
    try:
        text = read_bounded(p).decode("utf-8-sig")  # -sig: a byte-order mark from some editors is not text
    except OSError as exc:
        raise SpecError([Diagnostic(None, f"{path}: cannot read spec: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise SpecError([Diagnostic(Span(str(path), line, 1), f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                                    "cannot be decoded): a spec is a plain-text .einsum file")]) from None
    return parse(text, file=str(path), default_name=name_from_stem(p.stem))


def name_from_stem(stem: str) -> str:
    """A cascade name from a file name: `my-spec` -> `my_spec`, `2pass` -> `cascade_2pass`."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    return name if name[:1].isalpha() else "cascade_" + name


def parse(text: str, file: str = "<spec>", default_name: str = "cascade") -> ir.Cascade:
    """Parse `.einsum` text into a `Cascade`; raises `SpecError` listing every syntax error."""
    import lark

    lines = source_lines(text)
    diagnostics: list[Diagnostic] = []
    parts: list[tuple[str, Any, Span]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.split("#", 1)[0].strip():
            continue
        builder = _Builder(file, lineno, line)
        try:
            tree = _parser().parse(line)
        except lark.exceptions.UnexpectedInput as exc:
            diagnostics.append(_bracket_diagnostic(file, lineno, line) or _syntax_diagnostic(exc, file, lineno, line))
            continue
        too_deep = _too_deep(tree)
        if too_deep is not None:
            diagnostics.append(Diagnostic(builder.span_of(too_deep), f"expression nested more than {MAX_DEPTH} "
                                          "levels deep: split it into intermediate tensors", line))
            continue
        kind, value = builder.transform(tree)
        diagnostics.extend(builder.errors)
        parts.append((kind, value, Span(file, lineno, 1, lineno, len(line) + 1)))
    cascade = _assemble(parts, file, default_name, text, lines, diagnostics)
    if diagnostics:
        raise SpecError(diagnostics)
    return cascade


def _assemble(parts, file, default_name, text, lines, diagnostics) -> ir.Cascade:
    name, name_span = default_name, None
    shapes: list[ir.ShapeDecl] = []
    splits: list[ir.Split] = []
    inputs: list[ir.TensorDecl] = []
    outputs: list[ir.TensorDecl] = []
    statements: list[ir.Statement] = []
    for kind, value, span in parts:
        if kind == "cascade":
            if name_span is not None:
                diagnostics.append(
                    Diagnostic(span, f"second 'cascade' line (the first, at line {name_span.line}, "
                               "already names it): keep one", lines[span.line - 1])
                )
            name, name_span = value, span
        elif kind == "shape":
            shapes.extend(value)
        elif kind == "split":
            splits.append(value)
        elif kind == "input":
            inputs.extend(value)
        elif kind == "output":
            outputs.extend(value)
        else:
            statements.append(value)
    return ir.Cascade(
        name=name,
        shapes=tuple(shapes),
        splits=tuple(splits),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        statements=tuple(statements),
        source=text,
        file=file,
    )


def _too_deep(tree: Any) -> Any:
    """The part of a statement (its expression, filter, ...) nested deeper than MAX_DEPTH, or None.

    Every later stage walks expressions recursively; bounding the depth here (without
    recursion) keeps them all clear of Python's recursion limit on pathological input such as
    a 3000-term sum on one line.
    """
    stack = [(c, 2, c) for c in tree.children if hasattr(c, "children")]
    while stack:
        node, depth, part = stack.pop()
        if depth > MAX_DEPTH:
            return part
        stack.extend((c, depth + 1, part) for c in node.children if hasattr(c, "children"))
    return None


_CLOSER = {"(": ")", "[": "]"}


def _bracket_diagnostic(file: str, lineno: int, line: str) -> Diagnostic | None:
    """A clearer message than the parser's for a line whose brackets do not balance."""
    code = line.split("#", 1)[0]
    open_: list[tuple[str, int]] = []
    for k, ch in enumerate(code, start=1):
        if ch in _CLOSER:
            open_.append((ch, k))
        elif ch in ")]":
            if not open_:
                return Diagnostic(Span(file, lineno, k, lineno, k + 1),
                                  f"syntax error: unbalanced bracket: '{ch}' closes nothing", line)
            opener, col = open_.pop()
            if _CLOSER[opener] != ch:
                return Diagnostic(Span(file, lineno, k, lineno, k + 1),
                                  f"syntax error: unbalanced bracket: '{ch}' closes the '{opener}' at column "
                                  f"{col}; expected '{_CLOSER[opener]}'", line)
    if open_:
        opener, col = open_[-1]
        return Diagnostic(Span(file, lineno, col, lineno, col + 1),
                          f"syntax error: unbalanced bracket: '{opener}' is never closed; add "
                          f"'{_CLOSER[opener]}'", line)
    return None


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def _syntax_diagnostic(exc: Any, file: str, lineno: int, line: str) -> Diagnostic:
    import lark

    col = getattr(exc, "column", None)
    if not isinstance(col, int) or col < 1:
        col = len(line.rstrip()) + 1
    expected: set[str] = set()
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        expected = set(exc.expected)
        token = exc.token
        found = "end of line" if token.type == "$END" else f"'{token}'"
        if token.type == "$END":
            col = len(line.split("#", 1)[0].rstrip()) + 1
    elif isinstance(exc, lark.exceptions.UnexpectedCharacters):
        expected = set(exc.allowed or ())
        found = f"character {line[col - 1]!r}" if col - 1 < len(line) else "end of line"
        if col - 1 < len(line) and line[col - 1] == "_":
            found += " (a name starts with a letter)"
    else:
        found = "end of line"
        expected = set(getattr(exc, "expected", ()) or ())
    words = sorted({_describe_terminal(t) for t in expected})
    message = f"syntax error: unexpected {found}"
    if words:
        message += ", expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))
    return Diagnostic(Span(file, lineno, col, lineno, col + 1), message, line)


def _lark_transformer_base() -> Any:
    import lark

    return lark.Transformer


class _Builder:
    """Turns the Lark tree of one line into (kind, IR value); records errors, never raises."""

    def __init__(self, file: str, lineno: int, line: str):
        self.file, self.lineno, self.line = file, lineno, line
        self.errors: list[Diagnostic] = []

    # -- plumbing
    def transform(self, tree: Any) -> tuple[str, Any]:
        return self._node(tree)

    def span_of(self, node: Any) -> Span:
        meta = getattr(node, "meta", node)
        line = getattr(meta, "line", 1) or 1
        col = getattr(meta, "column", 1) or 1
        end_col = getattr(meta, "end_column", col + 1) or col + 1
        end_line = getattr(meta, "end_line", line) or line
        if end_line != line:
            end_col = len(self.line) + 1
        return Span(self.file, self.lineno, col, self.lineno, end_col)

    def error(self, node: Any, message: str) -> None:
        self.errors.append(Diagnostic(self.span_of(node), message, self.line))

    def _node(self, node: Any) -> Any:
        handler = getattr(self, "t_" + node.data)
        return handler(node, node.children)

    # -- statements
    def t_cascade_decl(self, node, ch):
        return "cascade", str(ch[0])

    def t_shape_decl(self, node, ch):
        return "shape", [self._shape_item(i) for i in ch]

    def _shape_item(self, item) -> ir.ShapeDecl:
        name, value = (str(t) for t in item.children)
        negative = item.data == "negative_shape_item"
        if negative or not value.isdigit():
            self.error(item.children[1], f"shape {name} = {'-' if negative else ''}{value}: a shape is a "
                                         f"positive whole number, e.g. {name} = 1024")
        size = int(value) if value.isdigit() and not negative else 1
        return ir.ShapeDecl(name, size, self.span_of(item.children[0]))

    def t_split_decl(self, node, ch):
        return "split", ir.Split(str(ch[0]), tuple(str(c) for c in ch[1:]), self.span_of(ch[0]))

    def t_input_decl(self, node, ch):
        return "input", [self._tensor_decl(c) for c in ch]

    def t_output_decl(self, node, ch):
        return "output", [self._tensor_decl(c) for c in ch]

    def _tensor_decl(self, node) -> ir.TensorDecl:
        name, *rest = node.children
        ranks = tuple(str(t) for t in rest[0].children) if rest else ()
        return ir.TensorDecl(str(name), ranks, self.span_of(name))

    def t_init_stmt(self, node, ch):
        return "init", ir.Init(self._access(ch[0]), self._expr(ch[1]), self.span_of(node))

    def t_einsum_stmt(self, node, ch):
        lhs, expr, *clauses = ch
        reduction, filters = None, ()
        for clause in clauses:
            if clause.data == "reduction":
                op, names = clause.children
                reduction = ir.Reduction(str(op), tuple(str(n) for n in names.children), self.span_of(op))
            else:
                filters = tuple(self._compare(c) for c in clause.children)
        return "einsum", ir.Einsum(self._access(lhs), self._expr(expr), reduction, filters, self.span_of(node))

    # -- accesses and indices
    def _access(self, node) -> ir.Access:
        name, *rest = node.children
        indices = tuple(self._index(a) for a in rest[0].children) if rest else ()
        return ir.Access(str(name), indices, self.span_of(node))

    def _index(self, node) -> ir.Index:
        aff = self._affine(node)
        span = self.span_of(node)
        match aff:
            case ir.AffVar(var=v):
                return ir.VarIndex(v, 0, span)
            case ir.AffConst(value=c):
                return ir.ConstIndex(c, span)
            case ir.AffShape(rank=r):
                return ir.LastIndex(r, span)
            case ir.AffBin(op="+", left=ir.AffVar(var=v), right=ir.AffConst(value=c)) | ir.AffBin(
                op="+", left=ir.AffConst(value=c), right=ir.AffVar(var=v)
            ):
                return ir.VarIndex(v, c, span)
            case ir.AffBin(op="-", left=ir.AffVar(var=v), right=ir.AffConst(value=c)):
                return ir.VarIndex(v, -c, span)
        self.error(node, "an index must be a rank variable (m), a variable plus an integer (m+1), "
                         "an integer (0) or a rank name for the last element (M1)")
        return ir.ConstIndex(0, span)

    # -- affine expressions
    def _affine(self, node) -> ir.Affine:
        span = self.span_of(node)
        if not hasattr(node, "data"):  # a bare token can only come from '(' affine ')' collapsing
            return self._aff_token(node)
        kind = node.data
        if kind == "aff_int":
            return ir.AffConst(int(node.children[0]), span)
        if kind == "aff_name":
            return self._aff_token(node.children[0])
        if kind == "aff_neg":
            inner = self._affine(node.children[0])
            if isinstance(inner, ir.AffConst):
                return ir.AffConst(-inner.value, span)
            return ir.AffNeg(inner, span)
        op = {"aff_add": "+", "aff_sub": "-", "aff_mul": "*"}[kind]
        return ir.AffBin(op, self._affine(node.children[0]), self._affine(node.children[1]), span)

    def _aff_token(self, tok) -> ir.Affine:
        text, span = str(tok), self.span_of(tok)
        if text[0].isupper():
            return ir.AffShape(text, span)
        return ir.AffVar(text, span)

    def _compare(self, node) -> ir.Compare:
        left, op, right = node.children
        return ir.Compare(str(op), self._affine(left), self._affine(right), self.span_of(node))

    # -- value expressions
    def _expr(self, node) -> ir.Expr:
        span = self.span_of(node)
        kind = node.data
        ch = node.children
        if kind == "number":
            return ir.Num(float(ch[0]), span)
        if kind == "inf":
            return ir.Num(float("inf"), span)
        if kind == "access":
            return ir.Read(self._access(node), span)
        if kind == "scalar_name":
            text = str(ch[0])
            if not text[0].isupper():
                return ir.IndexValue(text, span)
            return ir.ShapeScalar(text, span)
        if kind == "value_compare":
            left, op, right = ch
            return ir.Call(COMPARISONS[str(op)], (self._expr(left), self._expr(right)), span)
        if kind == "neg":
            inner = self._expr(ch[0])
            if isinstance(inner, ir.Num):
                return ir.Num(-inner.value, span)
            return ir.Neg(inner, span)
        if kind == "call":
            return ir.Call(str(ch[0]), tuple(self._expr(c) for c in ch[1:]), span)
        op = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
        return ir.BinOp(op, self._expr(ch[0]), self._expr(ch[1]), span)
