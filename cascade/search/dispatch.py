"""`search(spec, target, ...)`: start the deadline (the budget covers the whole call), check the
objective, load the target, and hand the search to the spatial search (`kind: spatial`) or the
grid search (`kind: grid`)."""

from __future__ import annotations

from typing import Callable

from ..errors import CascadeError
from ..model.target import Target, load_target
from .budget import Deadline, Progress
from .grid import search_grid
from .space import SearchResult
from .spatial import search_spatial


def search(spec, target, objective: str = "latency", budget_s: float = 60.0, top: int = 5,
           progress: Callable[[Progress], None] | None = None, whole_up_to: int = 128,
           prune: bool = True) -> SearchResult:
    """The best `top` mappings of `spec` on `target` (a `Target`, a file or a bundled name) for the
    objective (latency, traffic, energy), within `budget_s` seconds of this call (a positive,
    finite number). Ranks of `whole_up_to` elements or fewer are never split. `prune` False
    scores every spatial family (no branch and bound), for checking."""
    deadline = Deadline(budget_s)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise CascadeError(f"top {top!r}: give a positive whole number of mappings to list")
    if objective not in ("latency", "traffic", "energy"):
        raise CascadeError(f"--objective {objective}: choose latency, traffic or energy")
    tgt = target if isinstance(target, Target) else load_target(target)
    if objective == "energy" and not tgt.energy:
        raise CascadeError(f"--objective energy: target {tgt.name} gives no per-access energies")
    if tgt.kind == "grid":
        return search_grid(spec, tgt, objective, deadline, top, progress, whole_up_to)
    if tgt.kind != "spatial":
        raise CascadeError(f"search supports spatial and grid targets; {tgt.name} is a {tgt.kind} target")
    return search_spatial(spec, tgt, objective, deadline, top, progress, whole_up_to, prune)
