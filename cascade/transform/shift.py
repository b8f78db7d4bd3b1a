"""R2, roll by shifting: a sum over r of a polynomial in one atom x (variance: (x - S/M)^2)
as running central moments about the running mean, Welford/Chan's merge generalised.

State per tile step: the count N (a sum of 1 over the present points), the sum of x (reused
from a producer that already sums x), and A_j = sum (x - mu)^j for j = 1..d about the centre
mu = sum x / max(N, 1), the running mean, stored once per step (0 on an empty prefix, where
every A_j is 0; every moment and the final value read the same rounded mu). Moving
the centre from mu to mu' over the points seen so far is the binomial repair
A_j' = sum_i C(j, i) (mu - mu')^(j - i) A_i; a tile adds its own sum (x - mu')^j at the new
centre. The identities hold for every centre, so the rounded running mean is as good as the
exact one: the mean only keeps x - mu small (no cancellation at a large mean). A_1 is kept
rather than dropped as 0: with a rounded centre it is not 0, and dropping it costs float32
accuracy (100x at mean 1e4). The final value re-expands g about the final mean:
Z = sum_j b_j A_j with b_j = g^(j)(mu) / j!; without filters the count is the fiber's size and
b_0, b_1 cancel for the variance (stated fact: a sum of 1 over an unfiltered fiber is its size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import sympy as sp

from ..lang import ir
from .algebra import SYMPY_GAVE_UP, is_zero
from .roles import Roles

LEMMA_COUNT = "a sum of 1 over an unfiltered fiber of R points is R (stated fact; used to cancel b_0, b_1)"


@dataclass
class ShiftPlan:
    atom: sp.Symbol  # x
    degree: int
    moments: list[int]  # the j = 1..d whose A_j is kept
    sum_producer: str | None  # a producer whose running value is sum x, reused as the centre's sum
    coefficients: dict[int, sp.Expr] = field(default_factory=dict)  # b_j over r, u and MU
    count_producer: str | None = None  # a producer counting the points of x (1 + 0 * x), reused as N
    sum_final: sp.Expr | None = None  # sum x over the fiber in the components: N * MU_F + A_1


MU = sp.Symbol("__mu", real=True)
MU_NEW = sp.Symbol("__mu_new", real=True)
MU_F = sp.Symbol("__mu_final", real=True)  # the stored centre after the last tile


def plan_shift(roles: Roles, name: str, g: sp.Expr, x: sp.Symbol, syms, plans: dict,
               least: int = 2) -> tuple[ShiftPlan, list[str]] | None:
    """The shift plan of Z = sum_r g, or None when g is not a polynomial of degree >= `least` in
    the one atom x, or Z reduces another rank too."""
    stmt = roles.writer[name]
    others = set(stmt.reduction.variables if stmt.reduction else ()) - {roles.var}
    if others or _reduced_elsewhere(stmt, roles.var):
        return None
    try:
        poly = sp.Poly(sp.expand(g), x)
    except (sp.PolynomialError, *SYMPY_GAVE_UP):
        return None
    if poly.degree() < least or any(c.has(x) for c in poly.coeffs()):
        return None
    d = poly.degree()
    identities = []
    # b_j: Taylor coefficients of g about MU
    coeffs = {j: sp.expand(sp.diff(g, x, j).subs(x, MU) / sp.factorial(j)) for j in range(d + 1)}
    taylor = sum(coeffs[j] * (x - MU) ** j for j in range(d + 1))
    if not is_zero(g - taylor):
        return None
    identities.append(f"R2 expand: {g} - ({' + '.join(f'({coeffs[j]}) * (x - mu)^{j}' for j in range(d + 1))}) = 0 "
                      f"with x = {x}")
    for j in range(1, d + 1):
        repair = sum(comb(j, i) * (MU - MU_NEW) ** (j - i) * (x - MU) ** i for i in range(j + 1))
        if not is_zero((x - MU_NEW) ** j - repair):
            return None
    identities.append(f"R2 repair: (x - mu')^j - sum_i C(j, i) (mu - mu')^(j - i) (x - mu)^i = 0 for j = 1..{d}")
    acc = syms.table[x][1]
    producer = _sum_producer(roles, name, acc, plans)
    count = _count_producer(roles, name, acc, plans)
    return ShiftPlan(x, d, list(range(1, d + 1)), producer, coeffs, count_producer=count), identities


def _reduced_elsewhere(stmt: ir.Einsum, var: str) -> bool:
    lhs = set(stmt.lhs.variables)
    return any(v not in lhs and v != var for a in ir.expr_reads(stmt.expr) for v in a.variables)


def _sum_producer(roles: Roles, target: str, acc: ir.Access, plans: dict) -> str | None:
    """A producer already summing exactly this read over r with no filter of its own and the
    target's left-side indices (S[p] = X[m, p] for SQ[p]): its running value is the centre's sum."""
    for name, plan in plans.items():
        stmt = roles.writer[name]
        if plan.rule == "P" and roles.reduce_op(name) == "sum" and not stmt.filters and stmt.reduction is None \
                and isinstance(stmt.expr, ir.Read) and _key(stmt.expr.access) == _key(acc) \
                and _key(stmt.lhs)[1] == _key(roles.writer[target].lhs)[1]:
            return name
    return None


def _count_producer(roles: Roles, target: str, acc: ir.Access, plans: dict) -> str | None:
    """A producer summing, with no filter of its own, a body that reads only this read and is 1
    wherever it is present (`1 + 0 * X[m, p]`): the count of x's points."""
    from .algebra import to_sympy

    for name, plan in plans.items():
        stmt = roles.writer[name]
        reads = ir.expr_reads(stmt.expr)
        if plan.rule != "P" or roles.reduce_op(name) != "sum" or stmt.filters or stmt.reduction is not None \
                or not reads or any(_key(a) != _key(acc) for a in reads) \
                or _key(stmt.lhs)[1] != _key(roles.writer[target].lhs)[1]:
            continue
        try:
            one = to_sympy(stmt.expr, lambda a: sp.Symbol("__x", real=True))
        except Exception:  # no algebra for the body: not a count we can recognise
            continue
        if one == 1:
            return name
    return None


def _key(acc: ir.Access) -> tuple:
    return acc.tensor, tuple((type(i).__name__, getattr(i, "var", None), getattr(i, "offset", None),
                              getattr(i, "value", None), getattr(i, "rank", None)) for i in acc.indices)
