"""Present points: how many points of a statement's iteration space a filter leaves, as formulas.

A `where` filter makes points absent; the merge rules of the language (README, "Filters") carry
absence through the cascade: `*`, `/` and unary maps of an absent point are absent (intersection),
`+ - max min` are absent only where both operands are (union), a reduction's output point is
present where a point it reduces is, and a recurrence (or anything an `init` starts) is counted
present everywhere (an upper bound: an `init` that starts empty is absent until a step
contributes). The cost model charges operations only at present points, and
`compute.run_points` drops the per-tile work of key tiles a skipping loop never runs.

The present set is kept in one exact form, a *band* on two whole ranks: lo <= a - b <= hi
(`m <= p` is a band with hi = 0 on (M, P); a sliding window `m <= p and p < m + W` is the band
-W+1 <= m - p <= 0). A comparison between one rank variable and another plus a constant (a shape
may appear: `p < m + W`, and the parts of a split may stand for their rank: `m1*M0 + m0 <= p`) is a
band; the count of points in a band of an A x B rectangle is a closed form (`band_points`), a
triangle for `m <= p`. Anything else (a filter on one rank, two bands on different pairs, a union
of different bands) is counted as the box it lies in, or as the first band: an upper bound,
never an undercount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..lang import ir
from ..lang.ops import union_takes_identity
from ..mapping.schedule import MappedCascade
from .symbols import SymbolTable


@dataclass(frozen=True)
class Band:
    a: str  # whole ranks, a < b by name
    b: str
    lo: Any  # sympy, or None: unbounded
    hi: Any


def band_points(table: SymbolTable, band: Band) -> Any:
    """Points (x, y) of [0, A) x [0, B) with lo <= x - y <= hi, A and B the sizes of band.a, band.b."""
    sp = table.sp
    a, b = table.size(band.a), table.size(band.b)

    def tri(n):
        m = sp.Max(n, 0)
        return m * (m + 1) / 2

    def at_most(c):  # #(x - y <= c) = sum over y of clamp(y + c + 1, 0, A)
        s = c + 1
        return tri(s + b - 1) - tri(s - 1) - tri(s - a + b - 1) + tri(s - a - 1)

    upper = at_most(band.hi) if band.hi is not None else a * b
    lower = at_most(band.lo - 1) if band.lo is not None else 0
    return sp.Max(sp.expand(upper - lower), 0)


class Presence:
    """Per statement: its present iteration points and present output points (sympy)."""

    def __init__(self, mc: MappedCascade, table: SymbolTable):
        self.mc, self.table, self.sp = mc, table, table.sp
        self.sem = mc.semantics
        self.part_of = {p: r for r, parts in self.sem.splits.items() for p in parts}
        self.tensor_band: dict[str, Band | None] = {}
        writers: dict[str, int] = {}
        for info in self.sem.statements:
            writers[info.name] = writers.get(info.name, 0) + 1
        self.statement_band: dict[int, Band | None] = {}
        for k, info in enumerate(self.sem.statements):
            band = None
            if not info.is_init and not self.sem.tensors[info.name].iterative and writers[info.name] == 1:
                band = self.filters(info)
                band = _intersect(band, self.expr(info.statement.expr, info))
            self.statement_band[k] = band
            kept = self.wholes(info.statement.lhs.variables)
            self.tensor_band[info.name] = band if band is not None and {band.a, band.b} <= kept else None

    def whole(self, var: str) -> str:
        rank = var.upper()
        return self.part_of.get(rank, rank)

    def wholes(self, variables) -> set[str]:
        """Whole ranks a list of variables covers (a split rank only with both its parts)."""
        ranks = {v.upper() for v in variables}
        out = set()
        for r in ranks:
            w = self.part_of.get(r, r)
            if w == r or set(self.sem.splits[w]) <= ranks:
                out.add(w)
        return out

    # ------------------------------------------------------------ filters -> a band
    def filters(self, info) -> Band | None:
        stmt = info.statement
        band = None
        for c in getattr(stmt, "filters", ()):
            band = _intersect(band, self.compare(c, info))
        return band

    def compare(self, c: ir.Compare, info) -> Band | None:
        form = self.linear(ir.AffBin("-", c.left, c.right))
        if form is None:
            return None
        merged = self.merge_splits(form[0])
        const = form[1]
        if merged is None or len(merged) != 2:
            return None
        (x, cx), (y, cy) = sorted(merged.items())
        if not (cx == 1 and cy == -1) and not (cx == -1 and cy == 1):
            return None
        if not {x, y} <= self.wholes(info.variables):
            return None
        # cx (x - y) + const op 0  ->  x - y op' bound
        op, bound = c.op, -const
        if cx == -1:
            op, bound = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[op], const
        lo, hi = {"<": (None, bound - 1), "<=": (None, bound), ">": (bound + 1, None), ">=": (bound, None),
                  "==": (bound, bound)}.get(op, (None, None))
        if lo is None and hi is None:
            return None
        return Band(x, y, lo, hi)

    def linear(self, aff) -> tuple[dict[str, Any], Any] | None:
        """An affine expression as ({variable: coefficient}, constant), coefficients in shapes."""
        return ir.linear_form(aff, self.table.size, self.sp.Integer)

    def merge_splits(self, coeffs: dict[str, Any]) -> dict[str, Any] | None:
        """Variables -> whole ranks: `m1*M0 + m0` is one coordinate of M."""
        out: dict[str, Any] = {}
        for v, c in coeffs.items():
            rank = v.upper()
            if rank not in self.part_of:
                out[rank] = out.get(rank, 0) + c
        for whole, (outer, inner) in self.sem.splits.items():
            co, ci = coeffs.get(outer.lower()), coeffs.get(inner.lower())
            if co is None and ci is None:
                continue
            if co is None or ci is None or self.sp.simplify(co - ci * self.table.size(inner)) != 0:
                return None
            out[whole] = out.get(whole, 0) + ci
        return out

    # ------------------------------------------------------------ merge rules
    def expr(self, e: ir.Expr, info) -> Band | None:
        match e:
            case ir.Read(access=acc):
                return self.read(acc, info)
            case ir.Neg(operand=o):
                return self.expr(o, info)
            case ir.BinOp(op=op, left=l, right=r):
                bl, br = self.expr(l, info), self.expr(r, info)
                return _intersect(bl, br) if op in ("*", "/") else _union(bl, br, l, r)
            case ir.Call(fn=fn, args=args) if fn in ("max", "min") and len(args) == 2:
                return _union(self.expr(args[0], info), self.expr(args[1], info), *args)
            case ir.Call(args=(arg,)):
                return self.expr(arg, info)
        return None

    def read(self, acc: ir.Access, info) -> Band | None:
        band = self.tensor_band.get(acc.tensor)
        if band is None:
            return None
        access = next((r for r in info.reads if r.access == acc), None)
        if access is None:
            return None
        for axis in access.axes:
            on_band = self.part_of.get(axis.rank, axis.rank) in (band.a, band.b)
            if on_band and (axis.kind not in ("var", "split") or axis.offset):
                return None
        return band if {band.a, band.b} <= self.wholes(info.variables) else None

    # ------------------------------------------------------------ counts
    def points(self, k: int, all_points: Any, variables) -> Any:
        """Present points of statement k among `all_points`, the box over `variables`."""
        band = self.statement_band.get(k)
        if band is None or not {band.a, band.b} <= self.wholes(variables):
            return all_points
        box = self.table.size(band.a) * self.table.size(band.b)
        return self.sp.simplify(all_points / box) * band_points(self.table, band)


def _intersect(x: Band | None, y: Band | None) -> Band | None:
    if x is None:
        return y
    if y is None or (x.a, x.b) != (y.a, y.b):
        return x  # an upper bound: only one band kept
    import sympy as sp

    lo = x.lo if y.lo is None else y.lo if x.lo is None else sp.Max(x.lo, y.lo)
    hi = x.hi if y.hi is None else y.hi if x.hi is None else sp.Min(x.hi, y.hi)
    return Band(x.a, x.b, lo, hi)


def _union(x: Band | None, y: Band | None, left: ir.Expr, right: ir.Expr) -> Band | None:
    """The band of `left op right` for a union-like op (`+ - max min`), x and y the operands'.

    An absent operand counts as the identity only where the other one is present and reads every
    variable it reads (`union_takes_identity`, the reference's rule): `QK[m1, m0, p] - RM[m1+1, p]`
    is absent where QK is, since RM supplies no points along m0. Where neither operand may stand
    alone the result is present only where both are (their intersection); where both may, it is
    their union, kept as a band only when the two bands are one (else the box: an upper bound)."""
    if x == y:
        return x
    left_alone = union_takes_identity(ir.expr_read_vars(right), ir.expr_read_vars(left))
    right_alone = union_takes_identity(ir.expr_read_vars(left), ir.expr_read_vars(right))
    if x is None and y is not None:  # left present everywhere: present where right is, or everywhere
        return None if left_alone else y
    if y is None and x is not None:
        return None if right_alone else x
    if not left_alone and not right_alone:
        return _intersect(x, y)
    return None
