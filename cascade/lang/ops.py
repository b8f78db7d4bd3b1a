"""The one operator table: map and reduce operators, read by the checker, the printer, the
reference evaluator, the executor generator and the cost models.

Adding an operator is one row here. NumPy spellings are attribute names on the `numpy` module
(looked up with `getattr`, never `eval`), so this module does not import NumPy. An operator NumPy
lacks (`sigmoid`, `rsqrt`) is defined by `expand`: its meaning as an expression of other
operators, which the evaluators compute; the cost models charge it by its own name (a target's
`op_costs` row), not by its expansion.

Absent points (DESIGN.md section 2, the README's language section) merge per operator:
- `absent="union"` (`+ - max min`): an absent operand takes the operator's `identity` where the
  other operand is present *and reads every variable the absent one reads* (an operand does not
  supply points along a variable it is broadcast over: `QK[m, p] - GM[p]` is absent where `QK`
  is, `max(RM[m, p], S[m, p])` is `RM[m, p]` where `S` is absent); absent where both are;
- `absent="any"` (`* /`, every unary map, `pow`, comparisons): absent where any operand is
  absent;
- `absent="choice"` (`select(c, a, b)`): absent where `c` is, or where the operand it chooses is
  (a guard `select(fiber non-empty, R, -inf)` gives -inf where R is absent).
Constants and rank values (`0.5`, `E`, `p - m`) are present everywhere and supply no points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import ir


@dataclass(frozen=True, slots=True)
class MapOp:
    name: str  # as written in a spec: '+', 'exp', 'max'
    arity: int
    numpy: str  # numpy function name: 'add', 'exp', 'maximum' ('' when `expand` defines it)
    infix: bool = False
    absent: str = "any"  # 'union' or 'any': how absent operands merge (module docstring)
    identity: float = 0.0  # what an absent operand of a 'union' operator counts as
    symbol: str = ""  # a comparison's infix spelling inside a call: select(a > b, x, y)
    expand: Callable[[tuple[ir.Expr, ...]], ir.Expr] | None = None


@dataclass(frozen=True, slots=True)
class ReduceOp:
    name: str  # as written after '::'
    numpy: str  # numpy ufunc whose .reduce performs it
    identity: float  # the value of a reduction over no present point
    array_fn: str  # the numpy function reducing an array along axes: 'sum', 'max'


def _sigmoid(args: tuple[ir.Expr, ...]) -> ir.Expr:
    """sigmoid(x) = (1 + tanh(x / 2)) / 2: never overflows, unlike 1 / (1 + exp(-x))."""
    half = ir.Num(0.5)
    return ir.BinOp("*", half, ir.BinOp("+", ir.Num(1.0), ir.Call("tanh", (ir.BinOp("*", half, args[0]),))))


def _rsqrt(args: tuple[ir.Expr, ...]) -> ir.Expr:
    return ir.BinOp("/", ir.Num(1.0), ir.Call("sqrt", (args[0],)))


MAP_OPS: dict[str, MapOp] = {
    op.name: op
    for op in (
        MapOp("+", 2, "add", infix=True, absent="union", identity=0.0),
        MapOp("-", 2, "subtract", infix=True, absent="union", identity=0.0),
        MapOp("*", 2, "multiply", infix=True),
        MapOp("/", 2, "divide", infix=True),
        MapOp("neg", 1, "negative"),
        MapOp("exp", 1, "exp"),
        MapOp("log", 1, "log"),
        MapOp("sqrt", 1, "sqrt"),
        MapOp("abs", 1, "abs"),
        MapOp("max", 2, "maximum", absent="union", identity=float("-inf")),
        MapOp("min", 2, "minimum", absent="union", identity=float("inf")),
        MapOp("tanh", 1, "tanh"),
        MapOp("sigmoid", 1, "", expand=_sigmoid),
        MapOp("rsqrt", 1, "", expand=_rsqrt),
        MapOp("pow", 2, "power"),
        MapOp("select", 3, "where", absent="choice"),  # select(c, a, b): a where c holds (non-zero), else b
        MapOp("lt", 2, "less", symbol="<"),
        MapOp("le", 2, "less_equal", symbol="<="),
        MapOp("eq", 2, "equal", symbol="=="),
        MapOp("ne", 2, "not_equal", symbol="!="),
        MapOp("ge", 2, "greater_equal", symbol=">="),
        MapOp("gt", 2, "greater", symbol=">"),
    )
}

CALLABLE_MAP_OPS: tuple[str, ...] = tuple(n for n, op in MAP_OPS.items() if not op.infix and n != "neg")

COMPARISONS: dict[str, str] = {op.symbol: op.name for op in MAP_OPS.values() if op.symbol}

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


def union_takes_identity(absent_vars: set[str], present_vars: set[str]) -> bool:
    """May an absent operand of a 'union' operator count as its identity at a point where the
    other operand (reading `present_vars`) is present? Only if that operand supplies every point
    the absent one would have (it reads all of `absent_vars`)."""
    return absent_vars <= present_vars


def starts_empty(expr: ir.Expr) -> bool:
    """Is an `init` value the identity of a union-like operator (0, -inf, +inf)? Then the
    recurrence it starts holds no point yet: its first element is absent (a running max that has
    seen nothing, a running sum of nothing), so that `exp(RM[m1, p] - RM[m1+1, p])` over tiles
    with every key masked is absent, not exp(-inf - -inf), and a step whose contribution is
    absent carries the absence on."""
    match expr:
        case ir.Num(value=v):
            return any(op.absent == "union" and op.identity == v for op in MAP_OPS.values())
        case ir.Neg(operand=ir.Num(value=v)):
            return any(op.absent == "union" and op.identity == -v for op in MAP_OPS.values())
    return False
