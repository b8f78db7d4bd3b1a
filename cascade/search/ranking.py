"""The search's order on candidates: objectives compared with a relative tolerance (1e-9), so
that values equal but for rounding tie, and ties decided by the stated tie-breaks.

Keys, compared in turn: the objective; then traffic (for the traffic objective: latency); then
the on-chip footprint; then the number of loops (fewer first). The first three are tolerant
(two values within 1e-9 of the larger are equal), the loop count exact. `tolerant_top` picks the
best k of many candidates held as NumPy arrays; `rank` orders `Candidate`s; `cannot_enter` says
when a lower bound proves that no candidate of a family can enter the best k.
"""

from __future__ import annotations

import numpy as np

TOL = 1e-9


def close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(abs(a), abs(b))


def _limit(m: float, tolerant: bool) -> float:
    return m + TOL * abs(m) if tolerant else m


def tolerant_top(keys: list[np.ndarray], tolerant: list[bool], idx: np.ndarray, k: int) -> list[int]:
    """Up to `k` indices of `idx` (1-D integer array into every key) in tolerant lexicographic
    order: the values within TOL of the smallest remaining first key form a tie, ordered by the
    remaining keys, and so on; a tie on every key keeps the order of `idx`."""
    if k <= 0 or idx.size == 0:
        return []
    if not keys:
        return [int(i) for i in idx[:k]]
    first = keys[0][idx]
    if idx.size > k:  # the first k ties start at or below the k-th smallest value
        kth = np.partition(first, k - 1)[k - 1]
        keep = first <= _limit(kth, tolerant[0])
        idx, first = idx[keep], first[keep]
    out: list[int] = []
    while len(out) < k and idx.size:
        tie = first <= _limit(first.min(), tolerant[0])
        out += tolerant_top(keys[1:], tolerant[1:], idx[tie], k - len(out))
        idx, first = idx[~tie], first[~tie]
    return out


def keys_of(objective: str, obj, latency, traffic, footprint, loops) -> list:
    """The comparison keys for an objective, in order."""
    return [obj, latency if objective == "traffic" else traffic, footprint, loops]


TOLERANT = [True, True, True, False]


def rank(candidates: list, objective: str, k: int) -> list:
    """The best `k` of `candidates` (objects with objective, latency_s, dram_bytes,
    footprint_bytes and family.order), in tolerant order; ties on every key keep list order."""
    if not candidates:
        return []
    cols = [np.array([getattr(c, a) for c in candidates], dtype=float)
            for a in ("objective", "latency_s", "dram_bytes", "footprint_bytes")]
    loops = np.array([len(c.family.order) for c in candidates], dtype=float)
    keys = keys_of(objective, cols[0], cols[1], cols[2], cols[3], loops)
    return [candidates[i] for i in tolerant_top(keys, TOLERANT, np.arange(len(candidates)), k)]


def cannot_enter(bound_objective: float, bound_secondary: float, incumbent, objective: str) -> bool:
    """Whether no candidate whose objective is at least `bound_objective` and whose secondary key
    (traffic; latency for the traffic objective) is at least `bound_secondary` can rank ahead of
    or tie with `incumbent` (the k-th best so far)."""
    inc_obj = incumbent.objective
    if bound_objective > inc_obj and not close(bound_objective, inc_obj):
        return True
    if bound_objective < inc_obj and not close(bound_objective, inc_obj):
        return False  # a candidate may be strictly better
    inc_sec = incumbent.latency_s if objective == "traffic" else incumbent.dram_bytes
    return bound_secondary > inc_sec and not close(bound_secondary, inc_sec)
