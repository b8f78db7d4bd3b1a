"""The one operator table: map and reduce operators, read by the checker, the printer, the
reference evaluator and (later) the executor generator and cost models.

Adding an operator is one row here. NumPy spellings are attribute names on the `numpy` module
(looked up with `getattr`, never `eval`), so this module does not import NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MapOp:
    name: str  # as written in a spec: '+', 'exp', 'max'
    arity: int
    numpy: str  # numpy ufunc name: 'add', 'exp', 'maximum'
    infix: bool = False


@dataclass(frozen=True, slots=True)
class ReduceOp:
    name: str  # as written after '::'
    numpy: str  # numpy ufunc whose .reduce performs it
    identity: float  # the value of a reduction over no present point
    array_fn: str  # the numpy function reducing an array along axes: 'sum', 'max'


MAP_OPS: dict[str, MapOp] = {
    op.name: op
    for op in (
        MapOp("+", 2, "add", infix=True),
        MapOp("-", 2, "subtract", infix=True),
        MapOp("*", 2, "multiply", infix=True),
        MapOp("/", 2, "divide", infix=True),
        MapOp("neg", 1, "negative"),
        MapOp("exp", 1, "exp"),
        MapOp("log", 1, "log"),
        MapOp("sqrt", 1, "sqrt"),
        MapOp("abs", 1, "abs"),
        MapOp("max", 2, "maximum"),
        MapOp("min", 2, "minimum"),
    )
}

CALLABLE_MAP_OPS: tuple[str, ...] = tuple(n for n, op in MAP_OPS.items() if not op.infix and n != "neg")

REDUCE_OPS: dict[str, ReduceOp] = {
    op.name: op
    for op in (
        ReduceOp("sum", "add", 0.0, "sum"),
        ReduceOp("max", "maximum", float("-inf"), "max"),
        ReduceOp("min", "minimum", float("inf"), "min"),
        ReduceOp("prod", "multiply", 1.0, "prod"),
    )
}

DEFAULT_REDUCE = "sum"
