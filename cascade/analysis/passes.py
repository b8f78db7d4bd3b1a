"""Automatic pass counting (DESIGN.md section 3): `count_passes` and its report, `PassReport`.

For every rank some Einsum iterates, `count_passes` gives each statement a pass over that rank
and explains every extra pass: which Einsum must wait, for which complete tensor, and what is
held across the boundary. The work is split by job:

- `cascade.analysis.pass_count` — the counting rules, applied to one rank (`RankCounter`);
- `cascade.analysis.pass_report` — the frozen report records (`PassReport`, `RankPasses`, `Boundary`,
  `Wait`, ...) and their plain-data form for JSON;
- this module — the entry point: which ranks are counted, one counter per rank, one report.

Split ranks are counted under their own names: for `split M = M1 * M0`, M1 counts passes over
the whole M fiber and M0 the revisits within one tile. The report is the only name other modules
need; every record is importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..lang.semantics import Semantics
from .pass_count import RankCounter
from .pass_report import Boundary, EinsumPass, LiveAxis, LiveTensor, PassReport, RankPasses, Wait

__all__ = ["Boundary", "EinsumPass", "LiveAxis", "LiveTensor", "PassReport", "RankPasses", "Wait",
           "count_passes", "counted_ranks"]


def count_passes(sem: Semantics, shapes: Mapping[str, int]) -> PassReport:
    """Passes over every rank some Einsum iterates, with the boundaries between them."""
    ranks = counted_ranks(sem)
    parent = {part: rank for rank, parts in sem.splits.items() for part in parts}
    results = []
    for rank in ranks:
        split_of = parent.get(rank)
        part = None if split_of is None else ("outer" if sem.splits[split_of][0] == rank else "inner")
        results.append(RankCounter(sem, shapes, rank, split_of).run(part))
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
