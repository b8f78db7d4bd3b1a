"""`reduce_passes(cascade, rank, tile=None) -> (Cascade, Certificate)`: fewer passes over a rank.

A pure function IR -> IR. It classifies the tensors (`roles`), plans every full reduction over
the rank (`rules`, each identity proved by sympy), checks the filters (masks) the rolled
reductions depend on, emits the tiled recurrence (`emit`) and counts the passes of the result.
A reduction that cannot be rewritten raises `SpecError` at its `file:line:col` with the reason;
a cascade already at its lower bound comes back unchanged with `already_minimal` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from ..analysis.passes import count_passes
from ..errors import Diagnostic, SpecError
from ..lang import ir
from ..lang.check import check
from ..lang.shapes import known_ranks, resolve_shapes
from .roles import Refusal, Roles, analyse, written_lower_bound

if TYPE_CHECKING:
    from .rules import Plan

# emit, masks and rules (sympy, ~0.3 s to import) are imported once a rewrite is needed, so an
# "already minimal" answer does not wait for them

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


def default_rank(cascade: ir.Cascade) -> str:
    """The rank to reduce when none is named: the one rank with more than one pass (a split rank
    by its name before the split); with none, the one split rank, else M, else the first rank
    counted; with several, an error listing them."""
    sem = check(cascade)
    passes = count_passes(sem, resolve_shapes(sem)).passes
    parent = {part: rank for rank, parts in sem.splits.items() for part in parts}
    most: dict[str, int] = {}
    for r, n in passes.items():
        name = parent.get(r, r)
        most[name] = max(most.get(name, 0), n)
    several = sorted(r for r, n in most.items() if n > 1)
    if len(several) == 1:
        return several[0]
    if not several:  # minimal everywhere: report on the rank the online form is written over
        written = [r for r in sem.splits if r in most]
        return written[0] if len(written) == 1 else "M" if "M" in most else next(iter(most), "M")
    listed = ", ".join(f"{r} ({most[r]} passes)" for r in several)
    raise SpecError([Diagnostic(None, f"{cascade.file}: {cascade.name} has more than one pass over several "
                                      f"ranks: {listed}; pass --rank with the one to reduce")])


def reduce_passes(cascade: ir.Cascade, rank: str | None = None,
                  tile: int | None = None) -> tuple[ir.Cascade, Certificate]:
    """Fewer passes over `rank` (None: `default_rank`); see the module docstring."""
    sem = check(cascade)
    shapes = resolve_shapes(sem)
    if rank is None:
        rank = default_rank(cascade)
    if rank not in known_ranks(cascade):
        raise SpecError([Diagnostic(None, f"{cascade.file}: rank {rank} is not a rank of {cascade.name} "
                                          f"(its ranks: {', '.join(sorted(known_ranks(cascade)))}); pass --rank")])
    if tile is not None and tile < 1:
        raise SpecError([Diagnostic(None, f"--tile {tile}: a tile is a whole number of points, at least 1")])
    counted_before = count_passes(sem, shapes).passes
    written = _written(sem, rank)
    if written is not None:  # already split or recurrent over the rank: minimal, or refused
        before = counted_before.get(written, 0)
        lb, why = written_lower_bound(sem, rank)
        if before <= lb:
            inner = counted_before.get(sem.splits[rank][1], 0) if rank in sem.splits else 0
            return cascade, Certificate(cascade.name, rank, None, before, before, inner, lb, why, True)
        try:
            analyse(sem, rank)  # raises the refusal at the split or the recurrence
        except Refusal as exc:
            raise _error(cascade, Refusal(exc.span, f"{exc.reason}; it has {before} passes over {written} and the "
                                                    f"lower bound is {lb} ({why})")) from None
    before = counted_before.get(rank, 0)
    try:
        roles = analyse(sem, rank)
        lb, why = roles.lower_bound()
        if before <= lb:
            cert = Certificate(cascade.name, rank, None, before, before, 0, lb, why, True)
            return cascade, cert
        from .emit import Emitter
        from .rules import plan_producer, plan_target

        for part in (rank + "1", rank + "0"):
            if part in known_ranks(cascade):
                raise Refusal(None, f"the tile ranks {rank}1/{rank}0 clash with a rank of the cascade")
        plans: dict[str, Plan] = {}
        steps = []
        for t in roles.order:
            if roles.kind[t] != "full":
                continue
            plan = plan_target(roles, t, plans) if roles.deps[t] else plan_producer(roles, t)
            plans[t] = plan
            if plan.rule != "P":
                span = roles.writer[t].span
                steps.append(Step(t, str(span) if span else t, plan.rule, plan.body, tuple(plan.identities),
                                  tuple(plan.lemmas)))
        guards, tiles = _masks(roles, plans)
        size = tile if tile is not None else DEFAULT_TILE
        result = Emitter(roles, plans, size, guards, tiles).emit()
    except Refusal as exc:
        raise _error(cascade, exc) from None
    new_sem = check(result)
    counted = count_passes(new_sem, resolve_shapes(new_sem)).passes
    cert = Certificate(cascade.name, rank, size, before, counted.get(rank + "1", 0), counted.get(rank + "0", 0),
                       lb, why, False, tuple(steps))
    return result, cert


def _written(sem, rank: str) -> str | None:
    """The rank whose passes count when the cascade already tiles `rank` (its outer part) or
    runs a recurrence over it (the rank itself); None for a cascade of plain Einsums over it."""
    if rank in sem.splits:
        return sem.splits[rank][0]
    if any(rank in parts for parts in sem.splits.values()) or sem.cascade.inits:
        return rank
    return None


def _masks(roles: Roles, plans: dict[str, Plan]) -> tuple[dict[str, list[ir.Compare]], dict[str, list[ir.Compare]]]:
    """Per rolled reduction, its guard (the fiber is non-empty) and, where a filter bounds r from
    below, its tile filter (the tile is non-empty).

    A rescaled or deferred sum gives 0/0 where no point of the fiber (or of its stabiliser's
    fiber) is present; the reference gives 0 there, so the final value is guarded. With upper
    bounds only, an empty tile can only follow the fiber's present points (or the fiber is
    empty), where rescaling by exp(RM - RM) = 1 and adding 0 or -inf changes nothing. A lower
    bound (a sliding window) leaves leading tiles empty while the running max is still -inf and
    exp(-inf - -inf) is NaN: there every local reduction gets the tile filter, and a recurrence
    step whose tile is absent carries the old running values."""
    from .masks import fiber_guard, has_lower_bound, presence, tile_filter

    guards: dict[str, list[ir.Compare]] = {}
    tiles: dict[str, list[ir.Compare]] = {}
    var, rank = roles.var, roles.rank
    for name, plan in plans.items():
        filters, exact = presence(roles, name)
        rolled = plan.rule != "P"  # its final value reads other reductions, +-inf or 0 on an empty fiber
        if rolled:  # against the body's own points, before its stabilisers' are added
            _finite_complete_values(roles, name, plan, filters)
        for s in plan.stabilisers:
            more, more_exact = presence(roles, s)
            filters, exact = filters + more, exact and more_exact
        if rolled and not exact:
            stmt = roles.writer[name]
            raise Refusal(stmt.span, f"{name}: its points are a union of differently filtered terms, so which fibers "
                                     "and tiles are empty does not follow from the filters; 2 passes kept")
        if not filters:
            continue
        if rolled or roles.reduce_op(name) in ("max", "min"):  # a max over nothing is +-inf, but the
            guards[name] = fiber_guard(filters, var, rank)  # running value started absent reads as 0
        if has_lower_bound(filters, var):
            tiles[name] = tile_filter(filters, var, rank, var + "1", rank + "0")
    return guards, tiles


def _finite_complete_values(roles: Roles, name: str, plan: Plan, filters: list[ir.Compare]) -> None:
    """Sympy's identities hold for finite values. A max or min read by the body is -inf or +inf
    where its own fiber is empty; unless that happens only where the body's fiber is empty too
    (its filters are among the body's), the rewritten body meets the infinity where the original
    did not combine it the same way (inf * a + inf * b against inf * (a + b)): refuse."""
    from ..lang.show import show_compare
    from .masks import presence
    from .roles import call_mapping, rename_compare

    have = {show_compare(c) for c in filters}
    for syms in (plan.symbols, plan.full_symbols):
        for role, acc in (syms.table.values() if syms else ()):
            if role != "r" or roles.reduce_op(acc.tensor) not in ("max", "min"):
                continue
            stmt = roles.writer[acc.tensor]
            own, _ = presence(roles, acc.tensor)
            aff = call_mapping(stmt, acc)[1]
            missing = [c for c in own if show_compare(rename_compare(c, aff)) not in have]
            if missing:
                raise Refusal(roles.writer[name].span,
                              f"{name}: it reads {acc.tensor}, which is +-inf where '{show_compare(missing[0])}' "
                              f"leaves its fiber empty while {name}'s is not; the identities hold for finite "
                              "values only; 2 passes kept")


def _error(cascade: ir.Cascade, exc: Refusal) -> SpecError:
    lines = cascade.source.splitlines()
    span = exc.span
    line = lines[span.line - 1] if span and 0 < span.line <= len(lines) else ""
    if span is None:
        return SpecError([Diagnostic(None, f"{cascade.file}: cannot reduce: {exc.reason}")])
    return SpecError([Diagnostic(span, f"cannot reduce: {exc.reason}", line)])
