"""Which tiles of a kernel loop a `where` filter leaves empty, full or partial (causal, windows).

For a loop over M1 (the outer part of `split M = M1 * M0`) whose body filters with affine
comparisons, `tile_bounds` gives, per program, the range of tiles where some point passes every
filter (*live*) and the range where every point passes every filter (*full*): the kernel runs the
live tiles only and drops the filter masks on the full ones. Both follow from each comparison
written as `c*m1 + rest <= 0` with an integer c: over a tile, `rest` lies between its smallest and
largest value (each variable at the end of its block that minimises or maximises it).

Skipping a tile is legal only when running it would change nothing
(`cascade.analysis.absent_step.skip_is_identity`); otherwise the loop runs every tile.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ..lang import ir
from . import triton_ast as T


@dataclass
class Linear:
    coef: dict[str, int]
    const: list[ast.expr]  # runtime terms, summed
    offset: int = 0


def linear(a: ir.Affine, shapes: dict[str, int], fixed: set[str]) -> Linear | None:
    """An affine expression as integer coefficients over variables; None when not linear that way.
    `fixed`: ranks whose shape is a compile-time constant (inner parts of splits)."""
    match a:
        case ir.AffVar(var=v):
            return Linear({v: 1}, [])
        case ir.AffConst(value=c):
            return Linear({}, [], c)
        case ir.AffShape(rank=r):
            if r in fixed:
                return Linear({}, [], shapes[r])
            return Linear({}, [T.name(f"n_{r}")])
        case ir.AffNeg(operand=o):
            x = linear(o, shapes, fixed)
            return None if x is None else _scale(x, -1)
        case ir.AffBin(op=op, left=left, right=right):
            lx, rx = linear(left, shapes, fixed), linear(right, shapes, fixed)
            if lx is None or rx is None:
                return None
            if op in "+-":
                rx = rx if op == "+" else _scale(rx, -1)
                if rx is None:
                    return None
                coef = dict(lx.coef)
                for v, c in rx.coef.items():
                    coef[v] = coef.get(v, 0) + c
                return Linear(coef, lx.const + rx.const, lx.offset + rx.offset)
            for k, other in ((lx, rx), (rx, lx)):  # '*': one side a compile-time integer
                if not k.coef and not k.const:
                    return _scale(other, k.offset)
            return None
    return None


def _scale(x: Linear, k: int) -> Linear | None:
    if x.const and k != 1:
        if k == -1:
            return Linear({v: -c for v, c in x.coef.items()}, [ast.UnaryOp(ast.USub(), e) for e in x.const],
                          -x.offset)
        return None
    return Linear({v: c * k for v, c in x.coef.items()}, list(x.const), x.offset * k)


def normalised(cmp: ir.Compare, shapes, fixed) -> Linear | None:
    """The comparison as `D <= 0` (integers: `a < b` is `a - b + 1 <= 0`); None for == and !=."""
    lx, rx = linear(cmp.left, shapes, fixed), linear(cmp.right, shapes, fixed)
    if lx is None or rx is None or cmp.op in ("==", "!="):
        return None
    if cmp.op in (">=", ">"):
        lx, rx = rx, lx
    neg = _scale(rx, -1)
    if neg is None:
        return None
    coef = dict(lx.coef)
    for v, c in neg.coef.items():
        coef[v] = coef.get(v, 0) + c
    return Linear(coef, lx.const + neg.const, lx.offset + neg.offset + (1 if cmp.op in ("<", ">") else 0))
