"""Tiles a filter leaves empty: which loops of a mapped cascade may skip them, and by what rule.

A loop over the outer part M1 of a split `M = M1 * M0` that carries a recurrence (1-pass
attention's `RM[m1+1, p]`) may skip a tile where every point of its filtered statements is
absent, when `analysis.absent_step.skip_is_identity` proves the step a no-op: no DRAM write in
the loop, every recurrence keeps its value. A skipped tile loads nothing and computes nothing.
This module owns the rule the executors and the cost model share, so that the executor's
DRAM trace and the model's count agree exactly:

- the filters of the loop's statements that name M's variables (`m1`, `m0`, `m`) must be, per
  statement, a *band* on M and one other whole rank B: lo_k <= m - b <= hi_k (`m1*M0 + m0 <= p`
  is hi = 0; a window adds lo = -W + 1), the same bands for every filtered statement; anything
  else keeps every tile (a mask still computes it right);
- a tile i (keys m in [i*M0, min(i*M0 + M0, M) - 1]) is *live* under the current range
  [b_lo, b_hi] of b (the tile of B the enclosing loops fix, or all of B) when every bound can
  hold: i*M0 - b_hi <= hi_k and min(i*M0 + M0, M) - 1 - b_lo >= lo_k. Over a band this is
  exact: a tile is live iff some point of it passes every filter;
- a loop over M1 with no recurrence (a pass of 2- or 3-pass attention; M1 of the spec's split or
  of the mapping's two-level partition of M) may skip a dead tile when `_absorbed` shows that
  every statement of the tile is a map of absent values (writes nothing) or a reduction over M
  of absent values (adds its identity to an on-chip running value), nothing written to DRAM in
  the loop. An accumulator kept on chip across the loop (`mapping.accumulate`: 3-pass
  attention's AV) is written after the outermost loop over the ranks it reduces ends, in the
  executor and the model alike, so any tile may be skipped, the last included; a
  statement with no filter of its own takes the band of what it reads (`_inherited`: SN and A
  are absent where QK is); `at_init` is False, so the tile an executor opens a running value
  with (m1 == 0) always runs;
- `at_init` (the step is a no-op even before any tile ran, e.g. a running max that starts at a
  finite value) skips every dead tile; otherwise dead tiles before the first live one still
  run (exp(-inf - -inf) is no number) and, where no tile is live, every tile runs: the same
  rule as the Triton kernel's segments and `model.gpu.live_fraction`.

Bounds are sympy expressions in rank-shape symbols (named after the ranks, positive integers).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..lang import ir
from .schedule import Leaf, Loop, MappedCascade


@dataclass(frozen=True)
class TileSkip:
    loop: int  # the id of the loop over `outer`
    whole: str  # M of `split M = M1 * M0`
    outer: str  # M1
    inner: str  # M0
    other: str  # B, the other rank of the band
    lows: tuple[Any, ...]  # lo_k of lo_k <= m - b (sympy, in rank-shape symbols)
    highs: tuple[Any, ...]  # hi_k of m - b <= hi_k
    at_init: bool
    enclosing: tuple[int, ...]  # ids of the loops around the loop, outermost first


def tile_skips(mc: MappedCascade) -> dict[int, TileSkip]:
    """Loop id -> its skip rule, for every loop that may skip empty tiles (see the module doc)."""
    out: dict[int, TileSkip] = {}
    for group in mc.groups:
        _walk(mc, list(group.tree), (), out)
    return out


def _walk(mc: MappedCascade, nodes: list, path: tuple[int, ...], out: dict[int, TileSkip]) -> None:
    for node in nodes:
        if isinstance(node, Loop):
            rule = _rule(mc, node, path)
            if rule is not None:
                out[node.id] = rule
            _walk(mc, node.body, path + (node.id,), out)


def _leaves(nodes: list) -> list[int]:
    found: list[int] = []
    for node in nodes:
        found.extend([node.statement] if isinstance(node, Leaf) else _leaves(node.body))
    return found


def _rule(mc: MappedCascade, loop: Loop, path: tuple[int, ...]) -> TileSkip | None:
    from ..analysis.absent_step import skip_is_identity

    sem = mc.semantics
    whole = next((r for r, (o, _i) in sem.splits.items() if o == loop.rank), None)
    if whole is not None:
        outer, inner = sem.splits[whole]
    else:  # a mapping's two-level partition M -> (M1, M0)
        part = next((p for p in mc.partitions.values() if len(p.names) == 2 and p.names[0] == loop.rank), None)
        if part is None or part.rank in sem.splits:
            return None
        whole, (outer, inner) = part.rank, part.names
    leaves = _leaves(loop.body)
    recurrence = any(sem.tensors[sem.statements[k].name].iterative == outer for k in leaves)
    family = {outer.lower(), inner.lower(), whole.lower()}
    bands: set[tuple[str, tuple, tuple]] = set()
    filtered: dict[int, bool] = {}
    for k in leaves:
        stmt = sem.statements[k].statement
        own = list(getattr(stmt, "filters", ()))
        if not recurrence and not own:
            own = _inherited(sem, sem.statements[k], leaves)
        mine = [c for c in own
                if {v.var for v in ir.affine_vars(c.left) + ir.affine_vars(c.right)} & family]
        if not mine:
            continue
        other, lows, highs = None, [], []
        for c in mine:
            band = _band(sem, c, whole, outer, inner)
            if band is None or (other is not None and band[0] != other):
                return None
            other = band[0]
            lows += [band[1]] if band[1] is not None else []
            highs += [band[2]] if band[2] is not None else []
        bands.add((other, tuple(lows), tuple(highs)))
        used = {v.var for c in mine for v in ir.affine_vars(c.left) + ir.affine_vars(c.right)}
        filtered[k] = used <= set(stmt.lhs.variables) and (bool(getattr(stmt, "filters", ()))
                                                           or not sem.statements[k].reduced)
    if len(bands) != 1:
        return None
    other, lows, highs = next(iter(bands))
    if not _other_rank_ok(mc, other, path):
        return None
    dram = {t for t, st in mc.storage.items() if st.dram}
    if not recurrence:
        after = _written_after(mc, loop, leaves)
        if not filtered or not _absorbed(sem, leaves, filtered, family, dram, after):
            return None
        return TileSkip(loop.id, whole, outer, inner, other, lows, highs, False, path)
    if not skip_is_identity(sem, leaves, filtered, dram):
        return None
    at_init = skip_is_identity(sem, leaves, filtered, dram, at_init=True)
    return TileSkip(loop.id, whole, outer, inner, other, lows, highs, at_init, path)


def _inherited(sem, info, leaves: list[int], depth: int = 0) -> list[ir.Compare]:
    """Filters over a statement's variables where its value is absent because of what it reads:
    a tensor written outside the loop (not by `leaves`) is absent where `_absent_where` says, so a
    read of it at plain variables (no offsets) is absent where those filters, renamed to the
    reader's variables, fail (pass 2 of 2-pass attention reads the masked QK of pass 1). Only for
    a statement whose value is absent whenever one read is (no `select`, which merges absence by
    choice); a reduction of such points adds its identity, a map writes nothing."""
    if any(c.fn == "select" for c in ir.expr_calls(info.statement.expr)):
        return []
    found: list[ir.Compare] = []
    for read in info.reads:
        acc = read.access
        producers = [j for j, s in enumerate(sem.statements) if s.name == acc.tensor and not s.is_init]
        if len(producers) != 1 or producers[0] in leaves:
            continue
        if not all(isinstance(i, ir.VarIndex) and i.offset == 0 for i in acc.indices):
            continue
        lhs = tuple(sem.statements[producers[0]].statement.lhs.variables)
        rename = dict(zip(lhs, (i.var for i in acc.indices)))
        found += [replace(c, left=_renamed(c.left, rename), right=_renamed(c.right, rename))
                  for c in _absent_where(sem, producers[0], depth)]
    return found


def _absent_where(sem, j: int, depth: int) -> list[ir.Compare]:
    """Filters over statement j's left-side variables where its values are absent: its own,
    when all are over its left side; else, for a map with no own filters, those it inherits."""
    info = sem.statements[j]
    stmt = info.statement
    lhs = set(stmt.lhs.variables)
    own = tuple(getattr(stmt, "filters", ()))
    if own:
        ok = all({v.var for v in ir.affine_vars(c.left) + ir.affine_vars(c.right)} <= lhs for c in own)
        return list(own) if ok else []
    if info.reduced or depth > len(sem.statements) or sem.tensors[info.name].iterative is not None:
        return []
    inherited = _inherited(sem, info, [], depth + 1)
    return [c for c in inherited if {v.var for v in ir.affine_vars(c.left) + ir.affine_vars(c.right)} <= lhs]


def _renamed(aff, rename: dict[str, str]):
    match aff:
        case ir.AffVar(var=v):
            return replace(aff, var=rename[v])
        case ir.AffBin(left=left, right=right):
            return replace(aff, left=_renamed(left, rename), right=_renamed(right, rename))
        case ir.AffNeg(operand=o):
            return replace(aff, operand=_renamed(o, rename))
    return aff


def _written_after(mc: MappedCascade, loop: Loop, leaves: list[int]) -> set[int]:
    """Statements of the loop whose accumulator stays on chip across it (`mapping.accumulate`):
    the loop is one of those over the ranks they reduce, so their DRAM write comes after the
    outermost of those loops ends (executor and model alike), never inside this loop."""
    from .accumulate import accumulation_loops

    return {k for k in leaves
            if mc.accumulators.get(k) == "on-chip" and loop.id in accumulation_loops(mc, k)}


def _absorbed(sem, leaves: list[int], filtered: dict[int, bool], family: set[str], dram: set[str],
              after: set[int] = frozenset()) -> bool:
    """A pass over M1 with no recurrence (the passes of 2- and 3-pass attention): is a tile whose
    filtered points are all absent a no-op? Every statement of the loop must, in that tile, either
    be a map (or a reduction over other ranks) of an absent value, so it writes nothing, or a
    reduction over M (m, m0 or m1) of absent values, so it adds the identity to a running value
    that stays on chip: a partial result, or an accumulator kept on chip across the loop (`after`:
    written to DRAM after the loop ends), while any other tensor the loop writes to DRAM keeps
    every tile (a skipped tile would not write its points). Absence follows reads: a value that reads an absent tensor is absent. A
    statement whose value stays present, or an on-chip write of a reduction over other ranks of
    absent points (its identity, a written value), keeps every tile."""
    absent: set[str] = set()
    for k in leaves:
        info = sem.statements[k]
        if info.is_init:
            continue
        if info.name in dram and k not in after:
            return False  # written to DRAM in the loop: keep every tile
        reads_absent = any(r.access.tensor in absent for r in info.reads)
        if k in filtered and filtered[k]:
            absent.add(info.name)  # filtered output points: absent
            continue
        if not (k in filtered or reads_absent):
            return False  # a value that stays present: the tile writes it
        if info.reduced and not set(info.reduced) & family:
            return False  # a reduction over other ranks of nothing writes its identity
        if not info.reduced:
            absent.add(info.name)
    return True


def _other_rank_ok(mc: MappedCascade, other: str, path: tuple[int, ...]) -> bool:
    """B's range over a tile of M1 must be known: B whole, or fixed by partition levels of B."""
    for lid in path:
        rank = mc.loop_of[lid]
        if rank == other:
            return False  # a loop over B itself (an iterative rank): not a range the rule covers
        if rank in mc.semantics.splits.get(other, ()):
            return False
    return other not in mc.semantics.splits


def shape_symbol(rank: str):
    import sympy as sp

    return sp.Symbol(rank, positive=True, integer=True)


def _band(sem, c: ir.Compare, whole: str, outer: str, inner: str):
    """(B, lo, hi) of a comparison that reads lo <= m - b <= hi (m of `whole`), else None."""
    form = _linear(c.left)
    right = _linear(c.right)
    if form is None or right is None:
        return None
    coeffs = dict(form[0])
    for v, k in right[0].items():
        coeffs[v] = coeffs.get(v, 0) - k
    const = form[1] - right[1]
    co, ci, cw = (coeffs.pop(outer.lower(), 0), coeffs.pop(inner.lower(), 0), coeffs.pop(whole.lower(), 0))
    if (co - ci * shape_symbol(inner)).expand() != 0:
        return None
    cm = (ci + cw).expand()
    coeffs = {v: k for v, k in coeffs.items() if k != 0}
    if len(coeffs) != 1 or cm not in (1, -1):
        return None
    (bvar, cb), = coeffs.items()
    parts = {part for pair in sem.splits.values() for part in pair}
    if (cb + cm).expand() != 0 or bvar.upper() in parts:
        return None
    op = c.op
    if cm == -1:  # -(m - b) + const op 0  ->  m - b op' const
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}.get(op, op)
        bound = const
    else:  # m - b + const op 0  ->  m - b op -const
        bound = -const
    lo, hi = {"<": (None, bound - 1), "<=": (None, bound), ">": (bound + 1, None), ">=": (bound, None),
              "==": (bound, bound)}.get(op, (None, None))
    if lo is None and hi is None:
        return None
    return bvar.upper(), lo, hi


def _linear(aff: ir.Affine) -> tuple[dict[str, Any], Any] | None:
    """({variable: coefficient}, constant) of an affine expression, in rank-shape symbols."""
    import sympy as sp

    return ir.linear_form(aff, shape_symbol, sp.Integer)
