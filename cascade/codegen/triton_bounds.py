"""Which tiles of a kernel loop a `where` filter leaves empty, full or partial (causal, windows).

For a loop over M1 (the outer part of `split M = M1 * M0`) whose body filters with affine
comparisons, `tile_bounds` gives, per program, the range of tiles where some point passes every
filter (*live*) and the range where every point passes every filter (*full*): the kernel runs the
live tiles only and drops the filter masks on the full ones. Both follow from each comparison
written as `c*m1 + rest <= 0` with an integer c: over a tile, `rest` lies between its smallest and
largest value (each variable at the end of its block that minimises or maximises it).

Skipping a tile is legal only when running it would change nothing
(`cascade.analysis.absent_step.skip_is_identity`); otherwise the loop runs every tile.
`SegmentEmitter` (a part of `triton_kernel.KernelEmitter`) emits the resulting tile ranges.
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


class SegmentEmitter:
    """The tile ranges of a filtered kernel loop; the host class provides plan, sem, mc, need,
    base, emit and descending."""

    def segments(self, level: str, rank: str, inner_nodes):
        """Tile ranges of the loop over `level` (see `triton_bounds`): (lo, a, b, hi, droppable, lower,
        upper): tiles [lo, a) and [b, hi) masked, [a, b) with the `droppable` filters' masks left
        out; `lower`/`upper`: whether a filter bounds the live tiles from below/above (else that
        masked range is empty)."""
        from ..analysis.absent_step import skip_is_identity

        leaves = _leaves(inner_nodes)
        outer, inner = self.sem.splits[rank]
        fixed = {i for _o, i in self.sem.splits.values()}
        live_lo, live_hi, full_lo, full_hi = [], [], [], []
        droppable: set[int] = set()
        filtered: dict[int, bool] = {}
        for k in leaves:
            stmt = self.sem.statements[k].statement
            for cmp in getattr(stmt, "filters", ()):
                used = {v.var for v in ir.affine_vars(cmp.left) + ir.affine_vars(cmp.right)}
                if not any(self.plan.roles[v].level in (outer, inner) for v in used):
                    continue
                lin = normalised(cmp, self.mc.shapes, fixed)
                m1 = next((v for v in used if self.plan.roles[v].level == outer), None)
                if lin is None or m1 is None or not lin.coef.get(m1):
                    return None
                lo_rest, hi_rest = [T.const(lin.offset), *lin.const], [T.const(lin.offset), *lin.const]
                for v, c in lin.coef.items():
                    if v == m1 or c == 0:
                        continue
                    rng = self.range_of(v)
                    if rng is None:
                        return None
                    small, large = rng
                    lo_rest.append(T.binop(T.const(c), "*", small if c > 0 else large))
                    hi_rest.append(T.binop(T.const(c), "*", large if c > 0 else small))
                least, most = _sum(lo_rest), _sum(hi_rest)
                c = lin.coef[m1]
                if c > 0:  # m1 <= (-rest) / c: more live tiles for larger values of negative-coefficient ranks
                    self.descending |= {self.plan.roles[v].rank for v, a in lin.coef.items()
                                        if a < 0 and v != m1 and self.plan.roles[v].rank in self.plan.grid}
                    live_hi.append(_floor_plus_one(ast.UnaryOp(ast.USub(), least), c))
                    full_hi.append(_floor_plus_one(ast.UnaryOp(ast.USub(), most), c))
                else:  # m1 >= rest / |c|
                    live_lo.append(_ceil(least, -c))
                    full_lo.append(_ceil(most, -c))
                droppable.add(id(cmp))
                filtered[k] = used <= set(stmt.lhs.variables)
        if not droppable:
            return None
        n = T.name(self.need("scalar", f"n_{outer}"))
        lo, hi = T.const(0), n
        if skip_is_identity(self.sem, leaves, filtered, self.dram):  # tiles after others ran
            hi = _fold("minimum", [n, *live_hi])
            if skip_is_identity(self.sem, leaves, filtered, self.dram, at_init=True, guarded=True):  # before any ran
                lo = _fold("maximum", [T.const(0), *live_lo])
            else:  # a program with no live tile runs them all, as the cascade says
                hi = T.tl("where", T.compare(hi, ">", T.const(0)), hi, n)
        a = _fold("maximum", [lo, _fold("minimum", [_fold("maximum", [T.const(0), *full_lo]), hi])])
        b = _fold("maximum", [T.name("seg_a"), _fold("minimum", [_fold("minimum", [n, *full_hi]), hi])])
        self.emit(T.assign("seg_lo", lo))
        self.emit(T.assign("seg_hi", hi))
        self.emit(T.assign("seg_a", a))
        self.emit(T.assign("seg_b", b))
        # without a lower (upper) bound seg_a = seg_lo (seg_b = seg_hi): that masked loop never runs
        return (T.name("seg_lo"), T.name("seg_a"), T.name("seg_b"), T.name("seg_hi"), droppable, bool(full_lo),
                bool(full_hi))

    def range_of(self, var: str):
        """Smallest and largest value of a variable over the current tile, or None."""
        role = self.plan.roles[var]
        if role.kind == "loop":
            return None
        if role.kind == "unit":
            c, _ = self.base(role.rank)
            return c, c
        if role.level in self.sem.splits.get(role.rank, ()):
            return T.const(0), T.const(self.mc.shapes[role.level] - 1)
        base, _ = self.base(role.rank)
        if role.extent is None:
            return T.const(0), T.binop(T.name(self.need("scalar", f"n_{role.rank}")), "-", T.const(1))
        return base, T.binop(base, "+", T.const(role.extent - 1))


def _sum(terms: list[ast.expr]) -> ast.expr:
    out = terms[0]
    for t in terms[1:]:
        out = T.binop(out, "+", t)
    return out


def _fold(fn: str, terms: list[ast.expr]) -> ast.expr:
    out = terms[0]
    for t in terms[1:]:
        out = T.tl(fn, out, t)
    return out


def _floor_plus_one(x: ast.expr, c: int) -> ast.expr:
    """floor(x / c) + 1 for c > 0, or 0 when that is negative (no division of negatives)."""
    return T.binop(T.tl("maximum", T.binop(x, "+", T.const(c)), T.const(0)), "//", T.const(c))


def _ceil(x: ast.expr, k: int) -> ast.expr:
    """ceil(x / k) for k > 0, or 0 when that is negative."""
    return T.binop(T.tl("maximum", T.binop(x, "+", T.const(k - 1)), T.const(0)), "//", T.const(k))


def _leaves(nodes) -> list[int]:
    out = []
    for node in nodes:
        out.extend([node[1]] if node[0] == "leaf" else _leaves(node[2]))
    return out
