"""`reduce_passes(cascade, rank, tile=None) -> (Cascade, Certificate)`: fewer passes over a rank.

A pure function IR -> IR. It classifies the tensors (`roles`), plans every full reduction over
the rank (`rules`, each identity proved by sympy), checks the filters (masks) the rolled
reductions depend on, emits the tiled recurrence (`emit`) and counts the passes of the result.
A reduction that cannot be rewritten raises `SpecError` at its `file:line:col` with the reason;
a cascade already at its lower bound comes back unchanged with `already_minimal` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ..analysis.passes import count_passes
from ..errors import Diagnostic, SpecError
from ..lang import ir
from ..lang.check import check
from ..lang.shapes import known_ranks, resolve_shapes
from .emit import Emitter
from .roles import Refusal, Roles, analyse, rename_compare
from .rules import Plan, body_presence, plan_producer, plan_target

DEFAULT_TILE = 256


@dataclass(frozen=True)
class Step:
    """One rewritten reduction: the rule, its body and every identity proved."""

    reduction: str
    where: str
    rule: str
    body: str
    identities: tuple[str, ...]
    lemmas: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "where": self.where, "rule": self.rule, "body": self.body,
                "identities": list(self.identities), "lemmas": list(self.lemmas)}


@dataclass(frozen=True)
class Certificate:
    cascade: str
    rank: str
    tile: int | None
    passes_before: int
    passes_after: int
    inner_passes: int
    lower_bound: int
    lower_bound_reason: str
    already_minimal: bool
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"cascade": self.cascade, "rank": self.rank, "tile": self.tile,
                "passes_before": self.passes_before, "passes_after": self.passes_after,
                "inner_passes": self.inner_passes, "lower_bound": self.lower_bound,
                "lower_bound_reason": self.lower_bound_reason, "already_minimal": self.already_minimal,
                "steps": [s.as_dict() for s in self.steps]}


def reduce_passes(cascade: ir.Cascade, rank: str = "M", tile: int | None = None) -> tuple[ir.Cascade, Certificate]:
    sem = check(cascade)
    shapes = resolve_shapes(sem)
    if rank not in known_ranks(cascade):
        raise SpecError([Diagnostic(None, f"{cascade.file}: rank {rank} is not a rank of {cascade.name} "
                                          f"(its ranks: {', '.join(sorted(known_ranks(cascade)))}); pass --rank")])
    if tile is not None and tile < 1:
        raise SpecError([Diagnostic(None, f"--tile {tile}: a tile is a whole number of points, at least 1")])
    before = count_passes(sem, shapes).passes.get(rank, 0)
    try:
        roles = analyse(sem, rank)
        lb, why = roles.lower_bound()
        if before <= lb:
            cert = Certificate(cascade.name, rank, None, before, before, 0, lb, why, True)
            return cascade, cert
        for part in (rank + "1", rank + "0"):
            if part in known_ranks(cascade):
                raise Refusal(None, f"the tile ranks {rank}1/{rank}0 clash with a rank of the cascade")
        plans: dict[str, Plan] = {}
        steps = []
        for t in roles.order:
            if roles.kind[t] != "full":
                continue
            plan = plan_target(roles, t) if roles.deps[t] else plan_producer(roles, t)
            plans[t] = plan
            if plan.rule != "P":
                span = roles.writer[t].span
                steps.append(Step(t, str(span) if span else t, plan.rule, plan.body, tuple(plan.identities),
                                  tuple(plan.lemmas)))
        guards = _guards(roles, plans)
        size = tile if tile is not None else DEFAULT_TILE
        result = Emitter(roles, plans, size, guards).emit()
    except Refusal as exc:
        raise _error(cascade, exc) from None
    new_sem = check(result)
    counted = count_passes(new_sem, resolve_shapes(new_sem)).passes
    cert = Certificate(cascade.name, rank, size, before, counted.get(rank + "1", 0), counted.get(rank + "0", 0),
                       lb, why, False, tuple(steps))
    return result, cert


def _guards(roles: Roles, plans: dict[str, Plan]) -> dict[str, list[ir.Compare]]:
    """Per rolled reduction, the filters under which its fiber is non-empty.

    A rescaled or deferred sum gives 0/0 or exp(-inf - -inf) where no point of the fiber (or of
    its stabiliser's fiber) is present; the reference gives 0 there. When every filter on r is
    an upper bound on r (downward closed), a fiber is non-empty exactly when r = 0 is present,
    so the guard is the filters at r = 0 and the first tile is never empty on a non-empty fiber.
    Any other filter (a lower bound such as a sliding window) is refused."""
    guards: dict[str, list[ir.Compare]] = {}
    var = roles.var
    for name, plan in plans.items():
        if "R1" not in plan.rule and "D1" not in plan.rule:
            continue
        filters = body_presence(roles, name)
        for s in plan.stabilisers:
            filters += body_presence(roles, s)
        if not filters:
            continue
        at_zero: list[ir.Compare] = []
        for cmp in filters:
            direction = _direction(cmp, var)
            if direction is None:
                raise Refusal(cmp.span, f"{name}: the filter '{_text(cmp)}' is not an upper bound on {var}: a tile "
                                        f"before the first present point leaves the running max at -inf and "
                                        f"exp(-inf - -inf) is NaN; a total expdiff (or absent-as-identity "
                                        "recurrences) is needed; 2 passes kept")
            if direction == "free" and not _mentions(cmp):
                continue
            zero = rename_compare(cmp, {var: ir.AffConst(0)})
            if _mentions(zero):
                at_zero.append(ir.Compare(zero.op, zero.left, zero.right))
            elif not _holds(zero):
                raise Refusal(cmp.span, f"{name}: the filter '{_text(cmp)}' leaves every fiber empty")
        guards[name] = _dedupe(at_zero)
    return guards


def _affine_sympy(aff: ir.Affine) -> sp.Expr:
    match aff:
        case ir.AffVar(var=v):
            return sp.Symbol(v, integer=True)
        case ir.AffConst(value=c):
            return sp.Integer(c)
        case ir.AffShape(rank=r):
            return sp.Symbol(r, positive=True, integer=True)
        case ir.AffNeg(operand=o):
            return -_affine_sympy(o)
        case ir.AffBin(op=op, left=l, right=r):
            a, b = _affine_sympy(l), _affine_sympy(r)
            return a + b if op == "+" else a - b if op == "-" else a * b
    raise TypeError(aff)


def _direction(cmp: ir.Compare, var: str) -> str | None:
    """'down' when the filter keeps r = 0 whenever it keeps any r (an upper bound), 'free' when it
    does not mention r, None otherwise."""
    diff = _affine_sympy(cmp.left) - _affine_sympy(cmp.right)
    coeff = sp.diff(diff, sp.Symbol(var, integer=True))
    if coeff == 0:
        return "free"
    if cmp.op in ("<", "<=") and coeff.is_positive:
        return "down"
    if cmp.op in (">", ">=") and coeff.is_negative:
        return "down"
    return None


def _mentions(cmp: ir.Compare) -> bool:
    return bool(ir.affine_vars(cmp.left) + ir.affine_vars(cmp.right))


def _holds(cmp: ir.Compare) -> bool:
    diff = _affine_sympy(cmp.left) - _affine_sympy(cmp.right)
    test = {"<": diff < 0, "<=": diff <= 0, "==": sp.Eq(diff, 0), "!=": sp.Ne(diff, 0), ">=": diff >= 0,
            ">": diff > 0}[cmp.op]
    return bool(test) if test in (sp.true, sp.false) else True


def _text(cmp: ir.Compare) -> str:
    from ..lang.show import show_compare

    return show_compare(cmp)


def _dedupe(cmps: list[ir.Compare]) -> list[ir.Compare]:
    out: list[ir.Compare] = []
    for c in cmps:
        if c not in out:
            out.append(c)
    return out


def _error(cascade: ir.Cascade, exc: Refusal) -> SpecError:
    lines = cascade.source.splitlines()
    span = exc.span
    line = lines[span.line - 1] if span and 0 < span.line <= len(lines) else ""
    if span is None:
        return SpecError([Diagnostic(None, f"{cascade.file}: cannot reduce: {exc.reason}")])
    return SpecError([Diagnostic(span, f"cannot reduce: {exc.reason}", line)])
