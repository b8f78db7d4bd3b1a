"""Expressions of a Triton kernel: a statement's value over its block (`ExprEmitter`, a part of
`triton_kernel.KernelEmitter`, whose coordinates and parameters it uses).

Maps Triton has are `tl.*` calls; `tanh` is a jit helper of the module (`triton_exec.HELPERS`:
Triton's interpreter runs no libdevice); comparisons and `select` are `tl.where`; `pow` needs a
positive constant base (exp2) or a small integer exponent (products); a rank value is the block of
its coordinates made fp32; anything else is an exit-2 error naming the Einsum.

Two forms keep absent points (README, language section) and speed:

- `exp(a - b)` over a block with `b` broadcast along one of its ranks is, when the inputs are
  bf16/fp16 (`FAST_EXP`), `exp2(a * log2e - (b * log2e))`: one fused multiply-add per point and
  the product of `b` once per row (as FlashAttention does). Its exponent carries the rounding of
  `b * log2e`, a relative error of at most |b| 2^-24 in the result, far below bf16's 2^-9 for
  |b| < 2^12; fp32 inputs keep `tl.exp(a - b)` exactly.
- Absent points are held as their identity (a running max that has seen nothing holds -inf, a
  sum 0), so the value of a map over them is the value the rule gives wherever that is finite.
  The two places where it is not are guarded: `a - b` with `b` a max (min) value that may be
  absent reads `b` as 0 where it holds -inf (+inf), as the union rule counts an absent operand
  (so exp(-inf - -inf) is exp(-inf) = 0, never NaN), and `a / b` with `b` a sum that may be
  absent is 0 where `b` is (an absent quotient, read as 0), never 0/0.
"""

from __future__ import annotations

import ast
import math

from ..lang import ir
from ..lang.ops import MAP_OPS, REDUCE_OPS, starts_empty, union_takes_identity
from . import triton_ast as T

_MAP_FN = {"exp": "exp", "log": "log", "sqrt": "sqrt", "abs": "abs", "max": "maximum", "min": "minimum",
           "sigmoid": "sigmoid", "rsqrt": "rsqrt"}
_HELPER_FN = {"tanh": "_tanh"}  # maps Triton lacks (or lacks under its interpreter): jit helpers in the module
LOG2E = 1.4426950408889634


def absent_identities(sem) -> dict[str, float]:
    """Tensors that may hold absent points, each with the identity it holds there: a reduction
    a filter may leave empty (its op's identity) and a recurrence whose `init` starts it empty."""
    out: dict[str, float] = {}
    for info in sem.statements:
        stmt = info.statement
        if info.is_init and starts_empty(stmt.expr):
            out[info.name] = REDUCE_OPS["max"].identity if _value(stmt.expr) < 0 else (
                REDUCE_OPS["min"].identity if _value(stmt.expr) > 0 else 0.0)
        elif info.reduced and isinstance(stmt, ir.Einsum) and stmt.filters and info.reduce_op in ("max", "min", "sum"):
            out.setdefault(info.name, REDUCE_OPS[info.reduce_op].identity)
    return out


def _value(e: ir.Expr) -> float:
    return -e.operand.value if isinstance(e, ir.Neg) else e.value


def _inside(node: ast.expr, fn) -> ast.expr:
    """`fn` applied to a block before its broadcast (`x[:, None]` -> `fn(x)[:, None]`): per row."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple) and any(
            isinstance(i, ast.Constant) and i.value is None for i in node.slice.elts):
        return ast.Subscript(fn(node.value), node.slice, ast.Load())
    return fn(node)


def _broadcast(node: ast.expr) -> bool:
    return isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple)


class ExprEmitter:
    """Expression emission; the host class provides plan, sem, mc, need, block, offsets,
    scalar_coord, fail, helpers and current (the Einsum being emitted)."""

    def align(self, expr: ast.expr, dims, canon) -> ast.expr:
        if len(dims) == 2 and tuple(canon.index(d) for d in dims) == (1, 0):
            return T.tl("trans", expr)
        if len(canon) == 2 and len(dims) == 1:
            return T.expand(expr, canon.index(dims[0]), 2)
        return expr

    def expr(self, e: ir.Expr, operands, canon) -> ast.expr:
        match e:
            case ir.Num(value=v):
                return T.float_const(v)
            case ir.ShapeScalar(rank=r):
                return T.name(self.need("scalar", f"f_{r}"))
            case ir.Read(access=acc):
                return operands[str(acc)][0]
            case ir.Neg(operand=x):
                return ast.UnaryOp(ast.USub(), self.expr(x, operands, canon))
            case ir.BinOp(op=op, left=left, right=right):
                lhs, rhs = self.expr(left, operands, canon), self.expr(right, operands, canon)
                if op == "-":
                    rhs = self.guard_infinite(right, left, rhs)
                if op == "/":
                    return self.guard_quotient(right, lhs, rhs)
                return T.binop(lhs, op, rhs)
            case ir.IndexValue(var=v):  # a coordinate as a value: the integer block made fp32
                return T.binop(self.affine(ir.AffVar(v), canon), "+", T.const(0.0))
            case ir.Call(fn=fn, args=args):
                return self.call(fn, args, operands, canon)
        raise AssertionError(e)

    def absent_read(self, e: ir.Expr) -> float | None:
        """The identity a read holds where it is absent, if it may be (`absent_identities`)."""
        if isinstance(e, ir.Read):
            return self.absent_ids.get(e.access.tensor)
        return None

    def guard_infinite(self, right: ir.Expr, left: ir.Expr, node: ast.expr) -> ast.expr:
        ident = self.absent_read(right)
        if ident is None or ident in (0.0, 1.0) or not union_takes_identity(ir.expr_read_vars(right),
                                                                              ir.expr_read_vars(left)):
            return node
        return _inside(node, lambda x: T.tl("where", T.compare(x, "==", T.float_const(ident)), T.const(0.0), x))

    def guard_quotient(self, right: ir.Expr, lhs: ast.expr, rhs: ast.expr) -> ast.expr:
        quotient = T.binop(lhs, "/", rhs)
        if self.absent_read(right) != 0.0:
            return quotient
        return T.tl("where", T.compare(rhs, "==", T.const(0.0)), T.const(0.0), quotient)

    def exp_of_difference(self, arg: ir.Expr, operands, canon) -> ast.expr | None:
        """`exp(a - b)`, `b` broadcast over the block: exp2 of one multiply-add per point for
        low-precision inputs (FAST_EXP), else `tl.exp(a - b)`."""
        if not (isinstance(arg, ir.BinOp) and arg.op == "-"):
            return None
        a = self.expr(arg.left, operands, canon)
        b = self.guard_infinite(arg.right, arg.left, self.expr(arg.right, operands, canon))
        if not _broadcast(b) or _broadcast(a):
            return None
        exact = T.tl("exp", T.binop(a, "-", b))
        fast = T.call(T.attr("tl", "math", "exp2"), T.binop(T.binop(a, "*", T.const(LOG2E)), "-",
                                                            _inside(b, lambda x: T.binop(x, "*", T.const(LOG2E)))))
        return ast.IfExp(T.name(self.need("const", "FAST_EXP")), fast, exact)

    def call(self, fn: str, args, operands, canon) -> ast.expr:
        op = MAP_OPS[fn]
        if fn == "exp":
            fused = self.exp_of_difference(args[0], operands, canon)
            if fused is not None:
                return fused
        if fn in _MAP_FN:
            return T.tl(_MAP_FN[fn], *[self.expr(a, operands, canon) for a in args])
        if fn in _HELPER_FN:
            self.helpers.add(_HELPER_FN[fn])
            return T.call(_HELPER_FN[fn], *[self.expr(a, operands, canon) for a in args])
        if op.symbol:  # a comparison used as a value: 1 where it holds, else 0
            return T.method(self.condition(ir.Call(fn, args), operands, canon), "to", T.attr("tl", "float32"))
        if fn == "select":
            return T.tl("where", self.condition(args[0], operands, canon), self.expr(args[1], operands, canon),
                        self.expr(args[2], operands, canon))
        if fn == "pow":
            return self.power(args, operands, canon)
        if op.expand is not None:
            return self.expr(op.expand(args), operands, canon)
        self.fail(self.current, f"the map {fn} has no Triton form")
        raise AssertionError

    def condition(self, c: ir.Expr, operands, canon) -> ast.expr:
        if isinstance(c, ir.Call) and MAP_OPS[c.fn].symbol:
            return T.compare(self.expr(c.args[0], operands, canon), MAP_OPS[c.fn].symbol,
                             self.expr(c.args[1], operands, canon))
        return T.compare(self.expr(c, operands, canon), "!=", T.const(0.0))

    def power(self, args, operands, canon) -> ast.expr:
        """pow(a, b): a positive constant base as exp2(b * log2 a); a small integer exponent as products."""
        base, exponent = args
        if isinstance(base, ir.Num) and 0 < base.value < float("inf"):
            scaled = T.binop(self.expr(exponent, operands, canon), "*", T.const(math.log2(base.value)))
            return T.tl("exp2", scaled)
        if isinstance(exponent, ir.Num) and float(exponent.value).is_integer() and 0 <= exponent.value <= 4:
            out: ast.expr = T.const(1.0)
            for _ in range(int(exponent.value)):
                out = T.binop(out, "*", self.expr(base, operands, canon))
            return out
        self.fail(self.current, "pow(a, b) runs with a positive constant base a or an integer exponent b from 0 "
                                "to 4 only; write exp(b * log(a)) for a positive computed base")
        raise AssertionError

    def affine(self, a: ir.Affine, canon) -> ast.expr:
        match a:
            case ir.AffVar(var=v):
                role = self.plan.roles[v]
                if role.kind == "tile":
                    if role.level in self.sem.splits.get(role.rank, ()):  # m0 of split M: its place in the tile
                        return T.expand(T.tl("arange", T.const(0), self.block(role.level)), canon.index(role.level),
                                        len(canon))
                    return T.expand(T.name(self.offsets(role.level)[0]), canon.index(role.level), len(canon))
                return self.scalar_coord(v)[0]
            case ir.AffConst(value=c):
                return T.const(c)
            case ir.AffShape(rank=r):
                if r in self.mc.shapes and any(r == inner for _o, inner in self.sem.splits.values()):
                    return T.const(self.mc.shapes[r])
                return T.name(self.need("scalar", f"n_{r}"))
            case ir.AffNeg(operand=o):
                return ast.UnaryOp(ast.USub(), self.affine(o, canon))
            case ir.AffBin(op=op, left=left, right=right):
                return T.binop(self.affine(left, canon), op, self.affine(right, canon))
        raise AssertionError(a)
