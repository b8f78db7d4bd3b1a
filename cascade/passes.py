"""Automatic pass counting (DESIGN.md section 3) and its report, `PassReport`.

For every rank R some Einsum iterates, `count_passes` walks the statements in evaluation order
and gives each one a pass over R:

- an Einsum that iterates R runs in pass pi >= 1; a tensor it writes that keeps R is *streaming*
  at level pi, one that drops R (a full reduction over R) is *complete* at the end of pass pi;
- reading a streaming tensor of level k allows pass k; reading a complete tensor of level k,
  or any tensor at a fixed coordinate of R (`RM[M, p]`), forces pass k + 1; inputs are level 0;
- an Einsum that does not iterate R passes the largest level it reads on (its result is a
  complete value of that level);
- a recurrence keeps its iterative rank and streams. A recurrence group over another rank is
  followed step by step (its carried reads see the previous step), so a group that waits for a
  complete value at every step is counted step by step and flagged as growing with its rank.
  Such a count is per Einsum (per step of a recurrence member): a schedule finer than whole
  Einsums may need fewer passes. Without growth, the counts are exactly those of the rules.

Split ranks are counted under their own names: for `split M = M1 * M0`, M1 counts passes over
the whole M fiber and M0 the revisits within one tile; an Einsum iterating `m` iterates both.
Init statements are not Einsums (they get no pass), but the element they write is a source like
any other: reading it at coordinate 0 waits for whatever the init read.

For every extra pass the report names the Einsum that must wait, the complete tensor it waits
for, and the live footprint: every computed tensor produced by the end of the previous pass and
read after it (inputs are re-read, not held), as a number for the current shapes and as a sympy
expression in the shapes (built only when asked for: importing sympy alone costs 0.35 s).
This module reads `Semantics` directly rather than the networkx graph of `cascade.graph`, for
the same reason; both follow the same read/write relation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import Diagnostic, InternalError, SpecError
from .semantics import AccessInfo, Semantics, StatementInfo
from .show import show_access

_BY_VARIABLE = ("var", "split", "outer", "inner")


@dataclass(frozen=True, slots=True)
class Wait:
    """A complete value an Einsum waits for: `tensor` is complete only after pass `after`.

    reason: 'reduction' (a full reduction over the rank), 'derived' (computed, without iterating
    the rank, from a value completed by `origin`), 'fixed coordinate' (read at a fixed coordinate
    of the rank, e.g. `RM[M, p]`) or 'init' (the element written by the tensor's init).
    """

    tensor: str
    after: int
    reason: str
    origin: str
    access: str  # the read as written, e.g. 'RNV[M1, f, p]'
    detail: str  # e.g. 'max over m', 'from GM', 'read as RM[M, p]'


@dataclass(frozen=True, slots=True)
class EinsumPass:
    """One Einsum's place among the passes over one rank.

    If it iterates the rank it runs in pass `number`; otherwise it runs between passes, after
    pass `number` (0: before the first). `writes` is 'streaming' or 'complete'.
    """

    name: str
    iterates: bool
    number: int
    writes: str
    waits: tuple[Wait, ...] = ()


@dataclass(frozen=True, slots=True)
class LiveAxis:
    """One axis of a live tensor: the whole axis (`fixed` empty; `extra` 1 for a recurrence's
    iterative axis, of extent shape + 1) or only the fixed coordinates read (`('last',)`)."""

    rank: str
    extra: int = 0
    fixed: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        if self.fixed:
            return f"{self.rank}={'|'.join(self.fixed)}"
        return self.rank + ("+1" if self.extra else "")


@dataclass(frozen=True, slots=True)
class LiveTensor:
    """The part of a tensor held across a boundary, and its size."""

    name: str
    axes: tuple[LiveAxis, ...]
    elements: int

    @property
    def shape_text(self) -> str:
        return f"{self.name}[{', '.join(a.text for a in self.axes)}]"

    @property
    def size_text(self) -> str:
        factors = []
        for a in self.axes:
            if a.fixed:
                if len(a.fixed) > 1:
                    factors.append(str(len(a.fixed)))
            else:
                factors.append(f"({a.rank} + 1)" if a.extra else a.rank)
        return "*".join(factors) or "1"

    @property
    def size_expr(self) -> Any:
        import sympy

        expr = sympy.Integer(1)
        for a in self.axes:
            expr *= sympy.Integer(len(a.fixed)) if a.fixed else sympy.Symbol(a.rank) + a.extra
        return expr


@dataclass(frozen=True, slots=True)
class Boundary:
    """The start of extra pass `number` over `rank`: `einsum` must wait for `waits_for`."""

    rank: str
    number: int
    einsum: str
    wait: Wait
    causes: tuple[tuple[str, Wait], ...]  # every (Einsum, Wait) that forces this pass
    live: tuple[LiveTensor, ...]

    @property
    def waits_for(self) -> str:
        return self.wait.tensor

    @property
    def footprint(self) -> int:
        """Elements held across the boundary at the current shapes."""
        return sum(t.elements for t in self.live)

    @property
    def footprint_text(self) -> str:
        return " + ".join(t.size_text for t in self.live) or "0"

    @property
    def footprint_expr(self) -> Any:
        """The footprint as a sympy expression in the rank shapes (split outer ranks by name)."""
        import sympy

        return sympy.Add(*[t.size_expr for t in self.live]) if self.live else sympy.Integer(0)


@dataclass(frozen=True, slots=True)
class RankPasses:
    rank: str
    passes: int
    split_of: str | None  # 'M' for M1 and M0
    part: str | None  # 'outer' (passes over the whole fiber) or 'inner' (revisits within a tile)
    einsums: tuple[EinsumPass, ...]  # every Einsum, in evaluation order
    boundaries: tuple[Boundary, ...]
    grows_with: str | None = None  # a recurrence's rank when every step waits for a complete value

    def einsum(self, name: str) -> EinsumPass:
        return next(e for e in self.einsums if e.name == name)


@dataclass(frozen=True, slots=True)
class PassReport:
    cascade: str
    shapes: tuple[tuple[str, int], ...]
    ranks: tuple[RankPasses, ...]

    @property
    def passes(self) -> dict[str, int]:
        return {r.rank: r.passes for r in self.ranks}

    @property
    def boundaries(self) -> tuple[Boundary, ...]:
        return tuple(b for r in self.ranks for b in r.boundaries)

    def rank(self, name: str) -> RankPasses:
        for r in self.ranks:
            if r.rank == name:
                return r
        raise KeyError(f"no Einsum iterates rank {name} (counted ranks: {', '.join(self.passes)})")

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (DESIGN.md section 7): 'passes', 'boundaries', and per-rank detail."""
        return {
            "cascade": self.cascade,
            "shapes": dict(self.shapes),
            "passes": self.passes,
            "boundaries": [_boundary_dict(b) for b in self.boundaries],
            "ranks": [{"rank": r.rank, "passes": r.passes, "split_of": r.split_of, "part": r.part,
                       "grows_with": r.grows_with,
                       "einsums": [{"einsum": e.name, "iterates": e.iterates,
                                    "pass": e.number if e.iterates else None,
                                    "after_pass": None if e.iterates else e.number, "writes": e.writes,
                                    "waits": [_wait_dict(w) for w in e.waits]} for e in r.einsums]}
                      for r in self.ranks],
        }


def _wait_dict(w: Wait) -> dict[str, Any]:
    return {"tensor": w.tensor, "complete_after": w.after, "reason": w.reason, "origin": w.origin,
            "access": w.access, "detail": w.detail}


def _boundary_dict(b: Boundary) -> dict[str, Any]:
    return {"rank": b.rank, "pass": b.number, "einsum": b.einsum, "waits_for": b.waits_for,
            "complete_after": b.wait.after, "reason": b.wait.reason, "detail": b.wait.detail,
            "causes": [{"einsum": e, **_wait_dict(w)} for e, w in b.causes],
            "footprint": {"elements": b.footprint, "expr": b.footprint_text,
                          "tensors": [{"tensor": t.name, "held": t.shape_text, "expr": t.size_text,
                                       "elements": t.elements} for t in b.live]}}


# ---------------------------------------------------------------- counting


def count_passes(sem: Semantics, shapes: Mapping[str, int]) -> PassReport:
    """Passes over every rank some Einsum iterates, with the boundaries between them."""
    ranks = counted_ranks(sem)
    parent = {part: rank for rank, parts in sem.splits.items() for part in parts}
    results = []
    for rank in ranks:
        split_of = parent.get(rank)
        part = None if split_of is None else ("outer" if sem.splits[split_of][0] == rank else "inner")
        results.append(_RankCounter(sem, shapes, rank, split_of).run(part))
    return PassReport(sem.cascade.name, tuple(shapes.items()), tuple(results))


def counted_ranks(sem: Semantics) -> tuple[str, ...]:
    """Ranks some Einsum iterates, in order of first use; a split rank by its two parts."""
    out: list[str] = []
    for s in sem.statements:
        if s.is_init:
            continue
        for v in s.variables:
            rank = sem.rank_of(v)
            for r in sem.splits.get(rank, (rank,)):
                if r not in out:
                    out.append(r)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Src:
    """The state of some elements of a tensor for the counted rank."""

    level: int
    streaming: bool
    origin: str | None  # the Einsum whose pass completes the value


@dataclass(frozen=True, slots=True)
class _Eval:
    value: int
    iterates: bool
    streaming: bool
    waits: tuple[Wait, ...]
    origin: str | None

    @property
    def src(self) -> _Src:
        return _Src(self.value, self.streaming, self.origin)


class _RankCounter:
    """Counts the passes over one rank; `ranks` also holds the split parent of a split part."""

    def __init__(self, sem: Semantics, shapes: Mapping[str, int], rank: str, split_of: str | None):
        self.sem, self.shapes, self.rank = sem, shapes, rank
        self.ranks = {rank} | ({split_of} if split_of else set())
        self.ein: dict[str, _Src] = {}  # tensor -> its Einsum-written elements (largest level)
        self.final: dict[str, _Src] = {}  # tensor -> its last element along its iterative rank
        self.but_last: dict[str, _Src | None] = {}  # -> the elements a read at `m` (not `m+1`) sees
        self.init: dict[str, _Src] = {}  # tensor -> the elements its init writes
        self.evals: dict[int, _Eval] = {}
        self.history: list[tuple[int, _Eval]] = []  # every evaluation, each step of a recurrence
        self.order = [k for step in sem.steps for k in step.statements]
        self.grows_with: str | None = None

    def run(self, part: str | None) -> RankPasses:
        for step in self.sem.steps:
            if step.variable is None:
                for k in step.statements:
                    self.store(k, self.evaluate(k))
                    self.history.append((k, self.evals[k]))
            elif self.sem.rank_of(step.variable) in self.ranks:
                self.run_group_streaming(step.statements)
            else:
                self.run_group_stepwise(step.statements, step.variable)
        rows = []
        for k in self.order:
            s, e = self.sem.statements[k], self.evals[k]
            if not s.is_init:
                rows.append(EinsumPass(s.name, e.iterates, e.value, "streaming" if e.streaming else "complete",
                                       e.waits if e.iterates and e.value >= 2 else ()))
        passes = max((r.number for r in rows if r.iterates), default=0)
        split_of = next((r for r in self.ranks if r != self.rank), None)
        found = (self.boundary(n) for n in range(2, passes + 1))
        boundaries = tuple(b for b in found if b is not None)
        return RankPasses(self.rank, passes, split_of, part, tuple(rows), boundaries, self.grows_with)

    def store(self, k: int, e: _Eval) -> None:
        s = self.sem.statements[k]
        self.evals[k] = e
        if s.is_init:
            self.init[s.name] = e.src
        else:
            self.ein[s.name] = self.final[s.name] = self.but_last[s.name] = e.src

    # ------------------------------------------------------------ one statement
    def iterates(self, s: StatementInfo) -> bool:
        return any(self.sem.rank_of(v) in self.ranks for v in s.variables)  # `m` iterates M1 and M0

    def evaluate(self, k: int, members: Mapping[str, tuple[list[_Src], _Src | None]] | None = None) -> _Eval:
        """The pass of statement k. For a recurrence group, `members` maps each member tensor to
        (what a carried read sees, what a same-step read sees)."""
        s = self.sem.statements[k]
        it = self.iterates(s)
        value, best_origin = (1 if it else 0), None
        waits: list[tuple[int, Wait]] = []
        for read in s.reads:
            for src, via, fixed in self.sources(s, read, members):
                streams = src.streaming and not fixed and self.keeps(read)
                need = src.level if streams or not it else src.level + 1
                if need > value or (need == value and best_origin is None):
                    value, best_origin = need, src.origin
                if it and not streams and src.level >= 1:
                    waits.append((need, self.wait(read, src, via, fixed)))
        streaming = it and self.keeps(s.write)
        origin = s.name if it else best_origin
        chosen = tuple(dict.fromkeys(w for need, w in waits if need == value))
        return _Eval(value, it, streaming, chosen, origin)

    def keeps(self, access: AccessInfo) -> bool:
        """Whether the access addresses the counted rank by a variable (it streams along it)."""
        return any(a.rank in self.ranks and a.kind in _BY_VARIABLE for a in access.axes)

    def sources(self, s: StatementInfo, read: AccessInfo, members):
        """(source state, 'einsum'|'init'|'input', fixed) for the elements a read touches."""
        t = read.access.tensor
        info = self.sem.tensors[t]
        fixed = any(a.rank in self.ranks and a.kind in ("const", "last") for a in read.axes)
        if info.kind == "input":
            return [(_Src(0, True, None), "input", fixed)]
        it_axis = next((a for a in read.axes if info.iterative and a.rank == info.iterative), None)
        at_init = it_axis is not None and it_axis.kind in ("var", "const") and it_axis.offset == 0
        only_init = it_axis is not None and it_axis.kind == "const" and it_axis.offset == 0
        if members is not None and t in members and not only_init:
            carried, current = members[t]
            if it_axis is not None and it_axis.kind == "var" and it_axis.offset == 0:
                return [(src, via, fixed) for src, via in carried]
            if current is None or (it_axis is not None and it_axis.kind in ("last", "const")):
                raise self.cycle(s, read)
            return [(current, "einsum", fixed)]
        out = []
        if not only_init:
            kind = it_axis.kind if it_axis is not None else ""
            src = {"last": self.final, "var": self.but_last if at_init else self.ein}.get(kind, self.ein)[t]
            if src is not None:
                out.append((src, "einsum", fixed))
        if at_init and t in self.init:
            out.append((self.init[t], "init", fixed))
        return out

    def wait(self, read: AccessInfo, src: _Src, via: str, fixed: bool) -> Wait:
        t = read.access.tensor
        writer = self.sem.writer(t)
        access = show_access(read.access)
        if fixed:
            reason, detail = "fixed coordinate", f"read as {access}"
        elif via == "init":
            reason, detail = "init", f"the init of {t} reads a value complete after pass {src.level}"
        elif writer is not None and self.iterates(writer):
            dropped = [v for v in writer.variables if v not in writer.statement.lhs.variables]
            reason, detail = "reduction", f"{writer.reduce_op} over {', '.join(dropped)}"
        else:
            reason, detail = "derived", f"from {src.origin}"
        return Wait(t, src.level, reason, src.origin or t, access, detail)

    def cycle(self, s: StatementInfo, read: AccessInfo) -> SpecError:
        span = read.access.span or s.statement.span
        line = self.sem.cascade.source.splitlines()[span.line - 1] if span and self.sem.cascade.source else ""
        return SpecError([Diagnostic(span, f"{s.name} reads {show_access(read.access)} at a fixed coordinate of the "
                                           f"recurrence that writes it: that value is complete only after the "
                                           f"whole recurrence, which needs {s.name} (a dependency cycle)", line)])

    # ------------------------------------------------------------ recurrence groups
    def carried_view(self, names, prev: dict[str, _Src] | None, current: dict[str, _Src]):
        """What member reads see: carried reads the init (first step) or the previous step."""
        view = {}
        for n in names:
            if prev is None:
                carried = [(self.init[n], "init")] if n in self.init else []
            else:
                carried = [(prev[n], "einsum")]
            view[n] = (carried, current.get(n))
        return view

    def run_group_streaming(self, group: tuple[int, ...]) -> None:
        """A group over the counted rank: carried reads stream within the same pass (fixpoint)."""
        names = [self.sem.statements[k].name for k in group]
        current: dict[str, _Src] = {}
        for _ in range(len(group) + 2):
            before = dict(current)
            for k in group:
                view = self.carried_view(names, None, current)
                for n in names:  # the carried element is the init's or one this pass streams
                    if n in current:
                        view[n] = (view[n][0] + [(current[n], "einsum")], current[n])
                e = self.evaluate(k, view)
                current[self.sem.statements[k].name] = e.src
                self.store(k, e)
            if current == before:
                self.history.extend((k, self.evals[k]) for k in group)
                return
        raise InternalError(f"pass counting over {self.rank} did not settle for the recurrence group "
                            f"{', '.join(names)}")

    def run_group_stepwise(self, group: tuple[int, ...], variable: str) -> None:
        """A group over another rank: follow it step by step along its iterative rank (each step
        of a member is counted like an Einsum of its own). If a step waits for the previous step's
        complete value, the passes grow with the steps (`grows_with`); once the growth per step
        is steady it is extrapolated to the last step."""
        names = [self.sem.statements[k].name for k in group]
        steps = self.shapes[self.sem.rank_of(variable)]
        prev: dict[str, _Src] | None = None
        peak: dict[int, _Eval] = {}
        deltas: list[tuple[int, ...]] = []
        before_last: dict[str, _Src | None] = {n: None for n in names}  # largest level before the last step
        for t in range(steps):
            if t == steps - 1:
                before_last = {self.sem.statements[k].name: peak[k].src for k in peak} or before_last
            current: dict[str, _Src] = {}
            for k in group:
                e = self.evaluate(k, self.carried_view(names, prev, current))
                current[self.sem.statements[k].name] = e.src
                self.history.append((k, e))
                if k not in peak or e.value >= peak[k].value:
                    peak[k] = e
            if prev is not None:
                delta = tuple(current[n].level - prev[n].level for n in names)
                if not any(delta):
                    before_last = {self.sem.statements[k].name: peak[k].src for k in peak}
                    break
                if t >= 2:  # still changing after the first step that reads a previous step
                    self.grows_with = self.sem.rank_of(variable)
                deltas.append(delta)
                if len(deltas) >= 3 and len(set(deltas[-3:])) == 1 and len(set(delta)) == 1 and delta[0] > 0:
                    shift = delta[0] * (steps - 1 - t)  # the same gain at every remaining step
                    current = {n: _Src(c.level + shift, c.streaming, c.origin) for n, c in current.items()}
                    peak = {k: _Eval(e.value + shift, e.iterates, e.streaming,
                                     tuple(replace(w, after=w.after + shift) for w in e.waits), e.origin)
                            for k, e in peak.items()}
                    before_last = {n: _Src(c.level - delta[0], c.streaming, c.origin) for n, c in current.items()}
                    break
            prev = current
        for k in group:
            self.store(k, peak[k])
        for n in names:
            self.final[n], self.but_last[n] = current[n], before_last[n]

    # ------------------------------------------------------------ boundaries
    def boundary(self, number: int) -> Boundary | None:
        causes = tuple(dict.fromkeys((self.sem.statements[k].name, w) for k, e in self.history
                                     if e.iterates and e.value == number for w in e.waits if w.after == number - 1))
        if not causes:  # a pass inside a growing recurrence, past the steps followed one by one
            return None
        einsum, wait = causes[0]
        return Boundary(self.rank, number, einsum, wait, causes, self.live(number - 1))

    def live(self, k: int) -> tuple[LiveTensor, ...]:
        """Computed tensors produced by the end of pass k and read after it."""
        axes: dict[str, dict[str, set]] = {}
        for j in self.order:
            s, e = self.sem.statements[j], self.evals[j]
            if e.value <= k:
                continue
            for read in s.reads:
                t = read.access.tensor
                if self.sem.tensors[t].kind == "input" or t == s.name or t not in self.ein:
                    continue
                if self.ein[t].level > k:
                    continue
                per_axis = axes.setdefault(t, {})
                for a in read.axes:
                    per_axis.setdefault(a.rank, set()).add("all" if a.kind in _BY_VARIABLE else (a.kind, a.offset))
        out = []
        for t, per_axis in axes.items():
            info = self.sem.tensors[t]
            live_axes: list[LiveAxis] = []
            elements = 1
            for rank in info.ranks:
                coords = per_axis.get(rank, {"all"})
                if "all" in coords:
                    extra = 1 if rank == info.iterative else 0
                    live_axes.append(LiveAxis(rank, extra))
                    elements *= self.shapes[rank] + extra
                else:
                    labels = sorted("last" if kind == "last" else str(offset) for kind, offset in coords)
                    live_axes.append(LiveAxis(rank, 0, tuple(labels)))
                    elements *= len(labels)
            out.append(LiveTensor(t, tuple(live_axes), elements))
        return tuple(out)
