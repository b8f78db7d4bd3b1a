"""The pass-count report: frozen records of passes per rank, the boundaries between passes and
what each boundary holds, plus their plain-data form for `--json` (DESIGN.md section 7).

`count_passes` (`cascade.analysis.passes`) builds a `PassReport`; nothing here counts. A boundary's live
footprint is every computed tensor produced by the end of the previous pass and read after it
(inputs are re-read, not held), as a number for the current shapes and as a sympy expression in
the shapes (built only when asked for: importing sympy alone costs 0.35 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
