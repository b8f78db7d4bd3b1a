"""The pass-counting rules (DESIGN.md section 3) over one rank: `RankCounter`.

For the counted rank R, the statements are walked in evaluation order and each one gets a pass:

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

For every extra pass the counter names the Einsum that must wait, the complete tensor it waits
for, and the live footprint (see `cascade.analysis.pass_report`). It reads `Semantics` directly rather
than the networkx graph of `cascade.analysis.graph` (importing networkx is slow); both follow the same
read/write relation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..errors import Diagnostic, InternalError, SpecError
from ..lang.semantics import AccessInfo, Semantics, StatementInfo
from ..lang.show import show_access
from .pass_report import Boundary, EinsumPass, LiveAxis, LiveTensor, RankPasses, Wait

_BY_VARIABLE = ("var", "split", "outer", "inner")


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


class RankCounter:
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
        # passes over the inner part of a split run within one tile: one coordinate of the outer part is held
        tile_of = {outer: outer.lower() for outer, inner in self.sem.splits.values() if inner == self.rank}
        for t, per_axis in axes.items():
            info = self.sem.tensors[t]
            live_axes: list[LiveAxis] = []
            elements = 1
            for rank in info.ranks:
                coords = per_axis.get(rank, {"all"})
                if rank in tile_of:
                    live_axes.append(LiveAxis(rank, 0, (tile_of[rank],)))
                elif "all" in coords:
                    extra = 1 if rank == info.iterative else 0
                    live_axes.append(LiveAxis(rank, extra))
                    elements *= self.shapes[rank] + extra
                else:
                    labels = sorted("last" if kind == "last" else str(offset) for kind, offset in coords)
                    live_axes.append(LiveAxis(rank, 0, tuple(labels)))
                    elements *= len(labels)
            out.append(LiveTensor(t, tuple(live_axes), elements))
        return tuple(out)
