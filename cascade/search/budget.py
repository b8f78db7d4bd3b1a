"""The search's clock: a checked time budget (`check_budget`), the deadline one call of `search`
runs under (`Deadline`, started on entry, so set-up counts), and the progress record a caller
may show while the search runs (`Progress`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..errors import CascadeError


def check_budget(budget_s, flag: str = "--budget") -> float:
    """`budget_s` as a float if it is a positive, finite number of seconds; else a CascadeError."""
    try:
        value = float(budget_s)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(budget_s, bool) or not math.isfinite(value) or value <= 0:
        raise CascadeError(f"{flag} {budget_s!r}: the budget must be positive and finite (seconds), e.g. {flag} 60")
    return value


class Deadline:
    """`budget_s` seconds from now (from the start of the call that made it)."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = check_budget(budget_s)
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def expired(self) -> bool:
        return self.left() <= 0

    def allows(self, expected_s: float) -> bool:
        """Whether a step expected to take `expected_s` seconds fits in what is left."""
        return self.left() > expected_s


@dataclass(frozen=True)
class Progress:
    """Where a search stands: families scored or pruned of all, the incumbent (best objective so
    far, None before the first), the best lower bound of what is left (None when nothing is)."""

    done: int
    total: int
    incumbent: float | None
    best_bound: float | None
    seconds: float
