"""The cascade IR: frozen, slotted dataclasses that carry source spans.

A `Cascade` is what a `.einsum` file says, nothing more: declarations (shapes, splits, inputs,
outputs) and statements (`Init` and `Einsum`) in source order. Spans never take part in
equality, so `parse(show(c)) == c`. Anything derived (tensor ranks, iteration spaces, order of
evaluation) lives in `cascade.lang.semantics.Semantics`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Union

from ..errors import Span


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)  # type: ignore[return-value]


# ---------------------------------------------------------------- index expressions (accesses)


@dataclass(frozen=True, slots=True)
class VarIndex:
    """`m` (offset 0) or `m+1` (offset 1): a rank variable plus an integer offset."""

    var: str
    offset: int = 0
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ConstIndex:
    """A fixed integer coordinate, e.g. the `0` of `init RM[0, p]`."""

    value: int
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class LastIndex:
    """A rank name used as an index: the last element of that rank (`RNV[M1, f, p]`)."""

    rank: str
    span: Span | None = _span()


Index = Union[VarIndex, ConstIndex, LastIndex]


@dataclass(frozen=True, slots=True)
class Access:
    """A tensor read or written at a list of index expressions: `K[e, m1, m0]`."""

    tensor: str
    indices: tuple[Index, ...]
    span: Span | None = _span()

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(i.var for i in self.indices if isinstance(i, VarIndex))


# ---------------------------------------------------------------- affine expressions (filters)


@dataclass(frozen=True, slots=True)
class AffVar:
    var: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AffConst:
    value: int
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AffShape:
    """A rank's shape used as an integer (`M0` in `m1*M0 + m0`)."""

    rank: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AffBin:
    op: str  # '+', '-', '*'
    left: "Affine"
    right: "Affine"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AffNeg:
    operand: "Affine"
    span: Span | None = _span()


Affine = Union[AffVar, AffConst, AffShape, AffBin, AffNeg]


@dataclass(frozen=True, slots=True)
class Compare:
    """One conjunct of a `where` filter: `m1*M0 + m0 < p + 4`."""

    op: str  # '<', '<=', '==', '!=', '>=', '>'
    left: Affine
    right: Affine
    span: Span | None = _span()


# ---------------------------------------------------------------- value expressions


@dataclass(frozen=True, slots=True)
class Num:
    """A numeric constant, including `inf` and `-inf`."""

    value: float
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ShapeScalar:
    """A rank's shape used as a value: the `E` of `/ sqrt(E)`."""

    rank: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class IndexValue:
    """A rank variable used as a value: the `m` of `p - m` is the coordinate of `m` at each point."""

    var: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Read:
    access: Access
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Neg:
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class BinOp:
    """`+ - * /` between two expressions."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """A named map operator: `exp(x)`, `max(a, b)`; names are checked against `cascade.lang.ops`."""

    fn: str
    args: tuple["Expr", ...]
    span: Span | None = _span()


Expr = Union[Num, ShapeScalar, IndexValue, Read, Neg, BinOp, Call]


# ---------------------------------------------------------------- statements and declarations


@dataclass(frozen=True, slots=True)
class Reduction:
    """`:: max(m0)`: the reduce operator and the variables it reduces."""

    op: str
    variables: tuple[str, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Einsum:
    """`LHS = expr [:: op(vars)] [where cond and ...]`; named after the tensor it writes."""

    lhs: Access
    expr: Expr
    reduction: Reduction | None = None
    filters: tuple[Compare, ...] = ()
    span: Span | None = _span()

    @property
    def name(self) -> str:
        return self.lhs.tensor


@dataclass(frozen=True, slots=True)
class Init:
    """`init RM[0, p] = -inf`: the initial element of a recurrence's iterative rank."""

    lhs: Access
    expr: Expr
    span: Span | None = _span()

    @property
    def name(self) -> str:
        return self.lhs.tensor


Statement = Union[Einsum, Init]


@dataclass(frozen=True, slots=True)
class TensorDecl:
    """`K[E, M]` in an `input` or `output` line: a tensor and its storage rank order."""

    name: str
    ranks: tuple[str, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ShapeDecl:
    rank: str
    size: int
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Split:
    """`split M = M1 * M0`: M viewed as (M1, M0); M1 = ceil(M / M0)."""

    rank: str
    parts: tuple[str, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Cascade:
    name: str
    shapes: tuple[ShapeDecl, ...] = ()
    splits: tuple[Split, ...] = ()
    inputs: tuple[TensorDecl, ...] = ()
    outputs: tuple[TensorDecl, ...] = ()
    statements: tuple[Statement, ...] = ()
    source: str = field(default="", compare=False, repr=False)
    file: str = field(default="<spec>", compare=False, repr=False)

    @property
    def einsums(self) -> tuple[Einsum, ...]:
        return tuple(s for s in self.statements if isinstance(s, Einsum))

    @property
    def inits(self) -> tuple[Init, ...]:
        return tuple(s for s in self.statements if isinstance(s, Init))

    def shape_dict(self) -> dict[str, int]:
        return {s.rank: s.size for s in self.shapes}

    def einsum(self, name: str) -> Einsum:
        for e in self.einsums:
            if e.name == name:
                return e
        raise KeyError(name)


# ---------------------------------------------------------------- walkers


def expr_reads(expr: Expr) -> list[Access]:
    """Every tensor access in an expression, left to right."""
    match expr:
        case Read(access=a):
            return [a]
        case Neg(operand=o):
            return expr_reads(o)
        case BinOp(left=l, right=r):
            return expr_reads(l) + expr_reads(r)
        case Call(args=args):
            return [a for arg in args for a in expr_reads(arg)]
    return []


def map_reads(expr: Expr, fn: Callable[[Read], Expr]) -> Expr:
    """The expression with every `Read` replaced by `fn(read)`; `Neg`, `BinOp` and `Call` are
    rebuilt around the results and every other leaf is kept as it is."""
    match expr:
        case Read():
            return fn(expr)
        case Neg(operand=o):
            return Neg(map_reads(o, fn))
        case BinOp(op=op, left=l, right=r):
            return BinOp(op, map_reads(l, fn), map_reads(r, fn))
        case Call(fn=name, args=args):
            return Call(name, tuple(map_reads(x, fn) for x in args))
    return expr


def affine_vars(aff: Affine) -> list[AffVar]:
    match aff:
        case AffVar():
            return [aff]
        case AffBin(left=l, right=r):
            return affine_vars(l) + affine_vars(r)
        case AffNeg(operand=o):
            return affine_vars(o)
    return []


def linear_form(aff: Affine, shape: Callable[[str], Any], number: Callable[[int], Any]
                ) -> tuple[dict[str, Any], Any] | None:
    """An affine expression as ({variable: coefficient}, constant), coefficients free of zeros;
    None where two variables multiply. `shape(rank)` and `number(n)` give the arithmetic (sympy
    symbols and integers, or the table's sizes)."""
    match aff:
        case AffVar(var=v):
            return {v: number(1)}, number(0)
        case AffConst(value=n):
            return {}, number(n)
        case AffShape(rank=r):
            return {}, shape(r)
        case AffNeg(operand=o):
            f = linear_form(o, shape, number)
            return None if f is None else ({v: -c for v, c in f[0].items()}, -f[1])
        case AffBin(op=op, left=left, right=right):
            fl, fr = linear_form(left, shape, number), linear_form(right, shape, number)
            if fl is None or fr is None:
                return None
            if op in ("+", "-"):
                sign = 1 if op == "+" else -1
                out = dict(fl[0])
                for v, c in fr[0].items():
                    out[v] = out.get(v, 0) + sign * c
                return {v: c for v, c in out.items() if c != 0}, fl[1] + sign * fr[1]
            if op == "*" and not fl[0]:
                return {v: fl[1] * c for v, c in fr[0].items()}, fl[1] * fr[1]
            if op == "*" and not fr[0]:
                return {v: fr[1] * c for v, c in fl[0].items()}, fl[1] * fr[1]
    return None


def affine_shapes(aff: Affine) -> list[AffShape]:
    match aff:
        case AffShape():
            return [aff]
        case AffBin(left=l, right=r):
            return affine_shapes(l) + affine_shapes(r)
        case AffNeg(operand=o):
            return affine_shapes(o)
    return []


def expr_shapes(expr: Expr) -> list[ShapeScalar]:
    match expr:
        case ShapeScalar():
            return [expr]
        case Neg(operand=o):
            return expr_shapes(o)
        case BinOp(left=l, right=r):
            return expr_shapes(l) + expr_shapes(r)
        case Call(args=args):
            return [s for arg in args for s in expr_shapes(arg)]
    return []


def expr_index_values(expr: Expr) -> list[IndexValue]:
    match expr:
        case IndexValue():
            return [expr]
        case Neg(operand=o):
            return expr_index_values(o)
        case BinOp(left=l, right=r):
            return expr_index_values(l) + expr_index_values(r)
        case Call(args=args):
            return [s for arg in args for s in expr_index_values(arg)]
    return []


def expr_read_vars(expr: Expr) -> set[str]:
    """The variables the tensor reads of an expression iterate (rank values and constants add none)."""
    return {v for a in expr_reads(expr) for v in a.variables}


def expr_calls(expr: Expr) -> list[Call]:
    match expr:
        case Call(args=args):
            return [expr] + [c for arg in args for c in expr_calls(arg)]
        case Neg(operand=o):
            return expr_calls(o)
        case BinOp(left=l, right=r):
            return expr_calls(l) + expr_calls(r)
    return []


def product_factors(expr: Expr) -> list[Expr] | None:
    """The factors of a product of reads, numbers and shape scalars (`a * b * 2`), or None when
    `expr` is anything else."""
    match expr:
        case BinOp(op="*", left=left, right=right):
            lf, rf = product_factors(left), product_factors(right)
            return None if lf is None or rf is None else lf + rf
        case Read() | Num() | ShapeScalar():
            return [expr]
    return None
