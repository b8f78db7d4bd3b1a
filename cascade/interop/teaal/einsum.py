"""TeAAL's `einsum` section (declaration, expressions) -> an `ir.Cascade`, and its `.einsum` text.

Declared tensors that no expression writes are inputs, written tensors that none reads are
outputs, the rest are intermediates (inferred, not declared); bare scalars such as the `a` of
`a * T1[m, n]` become rank-less inputs `a[]`. Every access is put in its tensor's declared rank
order. Each expression is read by a small recursive-descent parser (`_ExprParser`): sums and
products of accesses, scalars and numbers; what the language cannot express (index arithmetic,
`take`) raises `TeaalImportError` with a one-line reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any

from ...errors import SpecError
from ...limits import MAX_NESTING, quote
from ...lang import ir
from .common import DEFAULT_SHAPE, RANK, ImportLog, TeaalImportError

_TENSOR = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|(\S))")


class EinsumReader:
    """Reads the einsum section; afterwards `ranks_of` and `iters` describe its tensors and Einsums."""

    def __init__(self, log: ImportLog):
        self.file = log.file
        self.note, self.fail = log.note, log.fail
        self.ranks_of: dict[str, tuple[str, ...]] = {}  # every tensor -> its ranks (storage order)
        self.iters: dict[str, tuple[str, ...]] = {}  # Einsum -> the ranks it iterates

    def cascade(self, section: MappingABC[str, Any]) -> ir.Cascade:
        from ...lang.parse import name_from_stem

        declared = self.declaration(section.get("declaration"))
        key = "expressions" if "expressions" in section else "expression"
        exprs = section.get(key)
        if key == "expression" and exprs is not None:
            self.note("einsum.expression: read as 'expressions' (the key TeAAL expects)")
        for extra in section:
            if extra not in ("declaration", "expressions", "expression"):
                self.note(f"einsum.{extra}: not a TeAAL einsum key (declaration, expressions): skipped")
        if isinstance(exprs, str):
            exprs = [exprs]
        if not isinstance(exprs, list) or not exprs or not all(isinstance(e, str) for e in exprs):
            raise self.fail("einsum.expressions: expected a list of Einsums like 'Z[m, n] = A[k, m] * B[k, n]'")
        parsed = [_ExprParser(text, self.fail).statement() for text in exprs]
        written = [lhs.tensor for _, lhs, _ in parsed]
        for name in dict.fromkeys(written):
            if written.count(name) > 1:
                raise self.fail(f"{name} is written by {written.count(name)} expressions: re-defining a tensor is not "
                                "supported (a cascade writes each tensor once)")
        reads: list[ir.Access] = [a for _, _, e in parsed for a in ir.expr_reads(e)]
        self.ranks_of = dict(declared)
        for text, acc in [(t, a) for t, lhs, e in parsed for a in (lhs, *ir.expr_reads(e))]:
            if acc.tensor not in self.ranks_of:
                self.ranks_of[acc.tensor] = tuple(v.upper() for v in acc.variables)
                self.note(f"einsum.declaration: scalar {acc.tensor} is not declared: imported as the rank-less "
                          f"tensor {acc.tensor}[]" if not acc.indices else
                          f"einsum.declaration: {acc.tensor} is not declared: its ranks "
                          f"[{', '.join(self.ranks_of[acc.tensor])}] are taken from '{text}'")
        statements = []
        for text, lhs, expr in parsed:
            lhs = self.ordered(lhs, text)
            expr = _map_reads(expr, lambda a, text=text: self.ordered(a, text))
            statements.append(ir.Einsum(lhs, expr))
            iterated = [v for a in (lhs, *ir.expr_reads(expr)) for v in a.variables]
            self.iters[lhs.tensor] = tuple(dict.fromkeys(v.upper() for v in iterated))
        read_names = {a.tensor for a in reads}
        unused = [t for t in declared if t not in read_names and t not in written]
        if unused:
            self.note(f"einsum.declaration: {', '.join(unused)} declared but used by no expression: kept as inputs")
        names = list(self.ranks_of)
        inputs = [ir.TensorDecl(t, self.ranks_of[t]) for t in names if t not in written]
        outputs = [ir.TensorDecl(t, self.ranks_of[t]) for t in names if t in written and t not in read_names]
        return ir.Cascade(name_from_stem(Path(self.file).stem), (), (), tuple(inputs), tuple(outputs),
                          tuple(statements))

    def declaration(self, value: Any) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, MappingABC) or not value:
            raise self.fail("einsum.declaration: expected a table of tensors and their ranks, e.g. 'A: [K, M]'")
        out = {}
        for tensor, ranks in value.items():
            ranks = [] if ranks is None else ranks
            if not isinstance(tensor, str) or not _TENSOR.match(tensor):
                raise self.fail(f"einsum.declaration: tensor name {tensor!r} is not a name like A or T1")
            if not isinstance(ranks, list) or not all(isinstance(r, str) and RANK.match(r) for r in ranks):
                raise self.fail(f"einsum.declaration.{tensor}: expected a list of upper-case rank names, got {ranks!r}")
            if len(set(ranks)) != len(ranks):
                raise self.fail(f"einsum.declaration.{tensor}: a rank is named twice in [{', '.join(ranks)}]")
            out[tensor] = tuple(ranks)
        return out

    def ordered(self, acc: ir.Access, text: str) -> ir.Access:
        """The access with its indices in the tensor's declared rank order (each index names its rank)."""
        ranks = self.ranks_of[acc.tensor]
        by_rank = {v.upper(): i for v, i in zip(acc.variables, acc.indices)}
        shown = f"{acc.tensor}[{', '.join(acc.variables)}]"
        if len(acc.indices) != len(ranks) or len(by_rank) != len(acc.indices) or set(by_rank) != set(ranks):
            raise self.fail(f"'{text}': {shown} does not index {acc.tensor}[{', '.join(ranks)}] by the lower-case "
                            "names of its ranks, each once (diagonal or renamed indices are not supported)")
        if tuple(by_rank) != ranks:
            self.note(f"einsum: {shown} in '{text}' reordered to the declared rank order [{', '.join(ranks)}]")
        return ir.Access(acc.tensor, tuple(by_rank[r] for r in ranks))


def einsum_text(log: ImportLog, cascade: ir.Cascade) -> str:
    """The checked `.einsum` text of the imported cascade, headed by the import report."""
    from ...lang.check import check
    from ...lang.parse import parse
    from ...lang.show import show

    header = [f"# Imported from the TeAAL specification {Path(log.file).name} by `cascade import-teaal`.",
              (f"# TeAAL gives no shapes: every rank defaults to {DEFAULT_SHAPE} (twice its largest tile where the "
               "mapping partitions it);"),
              "# override them with --shape R=N."]
    if log.report:
        header.append("# Skipped or changed on import:")
        header.extend(f"#   {line}" for line in log.report)
    text = "\n".join(header) + "\n" + show(cascade)
    try:
        check(parse(text, file=f"{cascade.name}.einsum"))
    except SpecError as exc:
        raise log.fail(f"the imported cascade does not check: {exc.first.message}") from None
    return text


# ---------------------------------------------------------------- TeAAL expressions -> IR


def _map_reads(expr: ir.Expr, fn) -> ir.Expr:
    match expr:
        case ir.Read(access=a):
            return ir.Read(fn(a))
        case ir.Neg(operand=o):
            return ir.Neg(_map_reads(o, fn))
        case ir.BinOp(op=op, left=l, right=r):
            return ir.BinOp(op, _map_reads(l, fn), _map_reads(r, fn))
    return expr


class _ExprParser:
    """One TeAAL Einsum (`Z[m, n] = a * A[k, m] * B[k, n] + C[m, n]`) -> (text, lhs Access, Expr).

    Sums and products of tensor accesses, bare scalars (rank-less tensors) and numbers; each
    index must be one rank variable. Anything else fails with a one-line reason.
    """

    def __init__(self, text: str, fail):
        self.text, self.fail_with = " ".join(text.split()), fail
        self.tokens: list[tuple[str, str, int, int]] = []
        for m in _TOKEN.finditer(self.text):
            kind = "name" if m.group(1) else "number" if m.group(2) else "op"
            self.tokens.append((kind, m.group(m.lastindex or 0), m.start(m.lastindex or 0), m.end()))
        self.pos = 0
        self.depth = self.operators = 0

    def fail(self, message: str) -> TeaalImportError:
        return self.fail_with(f"{quote(self.text)}: {message}")

    @property
    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def next(self) -> tuple[str, str, int, int]:
        if self.pos >= len(self.tokens):
            raise self.fail("unexpected end of the expression")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expect(self, value: str) -> None:
        if self.peek != value:
            raise self.fail(f"expected '{value}' but found '{self.peek or 'the end'}'")
        self.next()

    def statement(self) -> tuple[str, ir.Access, ir.Expr]:
        kind, name, _, _ = self.next()
        if kind != "name" or self.peek != "[":
            raise self.fail("expected the written tensor, like Z[m, n] = ...")
        lhs = self.access(name)
        self.expect("=")
        expr = self.sum()
        if self.pos < len(self.tokens):
            raise self.fail(f"unexpected '{self.peek}'")
        return self.text, lhs, expr

    def sum(self) -> ir.Expr:
        expr = self.product()
        while self.peek in ("+", "-"):
            op = self.next()[1]
            expr = ir.BinOp(op, expr, self.product())
            self.count_operator()
        return expr

    def count_operator(self) -> None:
        """Operators nest the expression tree one level each: at most MAX_NESTING per expression."""
        self.operators += 1
        if self.operators > MAX_NESTING:
            raise self.fail(f"more than {MAX_NESTING} operators in one expression: split it into several Einsums")

    def product(self) -> ir.Expr:
        expr = self.unary()
        while self.peek == "*":
            self.next()
            expr = ir.BinOp("*", expr, self.unary())
            self.count_operator()
        return expr

    def unary(self) -> ir.Expr:
        kind, value, _, _ = self.next()
        if value in ("-", "("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.fail(f"nested more than {MAX_NESTING} levels deep (parentheses or signs): write it flatter")
            try:
                if value == "-":
                    return ir.Neg(self.unary())
                expr = self.sum()
                self.expect(")")
                return expr
            finally:
                self.depth -= 1
        if kind == "number":
            return ir.Num(float(value))
        if kind != "name":
            raise self.fail(f"unexpected '{value}' (TeAAL Einsums are sums of products of tensors and scalars)")
        if self.peek == "(":
            if value == "take":
                raise self.fail("take() (TeAAL's operator that keeps one operand where all operands' coordinates "
                                "intersect) is not supported: the .einsum language has no take")
            raise self.fail(f"operator {value}() is not supported (TeAAL Einsums are sums of products)")
        if self.peek == "[":
            return ir.Read(self.access(value))
        return ir.Read(ir.Access(value, ()))  # a scalar: a rank-less tensor

    def access(self, name: str) -> ir.Access:
        self.expect("[")
        indices: list[ir.Index] = []
        while self.peek not in ("]", ""):
            indices.append(self.index())
            if self.peek == ",":
                self.next()
        self.expect("]")
        return ir.Access(name, tuple(indices))

    def index(self) -> ir.Index:
        start = self.pos
        while self.peek not in (",", "]", ""):
            self.next()
        tokens = self.tokens[start:self.pos]
        if not tokens:
            raise self.fail("an empty index")
        if len(tokens) == 1 and tokens[0][0] == "name" and re.fullmatch(r"[a-z][a-z0-9_]*", tokens[0][1]):
            return ir.VarIndex(tokens[0][1])
        text = self.text[tokens[0][2]:tokens[-1][3]].strip()
        if len(tokens) > 1:
            raise self.fail(f"index arithmetic '{text}' (as in convolutions' sliding windows) is not supported: "
                            "each index of a cascade access is one rank variable")
        raise self.fail(f"index '{text}' is not a lower-case rank variable")
