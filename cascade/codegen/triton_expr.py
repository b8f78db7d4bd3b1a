"""Expressions of a Triton kernel: a statement's value over its block (`ExprEmitter`, a part of
`triton_kernel.KernelEmitter`, whose coordinates and parameters it uses).

Maps Triton has are `tl.*` calls; `tanh` is a jit helper of the module (`triton_exec.HELPERS`:
Triton's interpreter runs no libdevice); comparisons and `select` are `tl.where`; `pow` needs a
positive constant base (exp2) or a small integer exponent (products); a rank value is the block of
its coordinates made fp32; anything else is an exit-2 error naming the Einsum.
"""

from __future__ import annotations

import ast
import math

from ..lang import ir
from ..lang.ops import MAP_OPS
from . import triton_ast as T

_MAP_FN = {"exp": "exp", "log": "log", "sqrt": "sqrt", "abs": "abs", "max": "maximum", "min": "minimum",
           "sigmoid": "sigmoid", "rsqrt": "rsqrt"}
_HELPER_FN = {"tanh": "_tanh"}  # maps Triton lacks (or lacks under its interpreter): jit helpers in the module


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
                return T.binop(self.expr(left, operands, canon), op, self.expr(right, operands, canon))
            case ir.IndexValue(var=v):  # a coordinate as a value: the integer block made fp32
                return T.binop(self.affine(ir.AffVar(v), canon), "+", T.const(0.0))
            case ir.Call(fn=fn, args=args):
                return self.call(fn, args, operands, canon)
        raise AssertionError(e)

    def call(self, fn: str, args, operands, canon) -> ast.expr:
        op = MAP_OPS[fn]
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
