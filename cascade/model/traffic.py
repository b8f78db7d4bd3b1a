"""DRAM traffic of a mapped cascade, in elements, exactly as the generated executor moves it.

Every `Load` of the schedule and every write of a DRAM-resident tensor is summed over the
iterations of the loops around it; a reduction whose partial results go to DRAM also reads
them back, one whose accumulator stays on chip (`cascade.mapping.accumulate`) is written once. Region sizes factor by rank, so each sum is a product of
one closed form per rank family (a partitioned rank's levels, a split rank's outer loop, an
iterative rank's loop, or a rank computed whole). Counts are sympy expressions in the rank
shapes and tile shapes (symbols named after the ranks), evaluated for the current shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..lang.semantics import AxisCoord
from ..mapping.accumulate import accumulation_loops, inner_loops, reduced_ranks
from ..mapping.schedule import MappedCascade
from ..mapping.skips import TileSkip, shape_symbol, tile_skips
from .symbols import SymbolTable


@dataclass(frozen=True)
class TensorTraffic:
    tensor: str
    reads: Any  # sympy expression (elements)
    writes: Any


@dataclass(frozen=True)
class Traffic:
    per_tensor: dict[str, TensorTraffic]
    symbols: dict[str, Any]  # name -> sympy Symbol
    values: dict[str, int]  # the current value of every symbol
    by_group: dict[tuple[int, str, str], Any]  # (group index, tensor, 'read' | 'write') -> elements

    def numeric(self) -> dict[str, tuple[int, int]]:
        subs = {self.symbols[k]: v for k, v in self.values.items()}
        return {t: (int(tt.reads.subs(subs)), int(tt.writes.subs(subs))) for t, tt in self.per_tensor.items()}


def dram_traffic(mc: MappedCascade) -> Traffic:
    return _Counter(mc).traffic()


class _Counter(SymbolTable):
    def family(self, rank: str) -> str:
        """The rank whose loops drive this rank's coordinates."""
        if rank in self.level_owner:
            return self.level_owner[rank]
        if rank in self.outer_of_split:
            return self.outer_of_split[rank]
        if rank in self.inner_of_split:
            return self.inner_of_split[rank]
        return rank

    def count(self, axes: tuple[AxisCoord, ...], tensor: str, path: tuple[int, ...]):
        """Sum over the iterations of `path` of the region `axes` addresses; inside a loop that
        skips tiles a filter empties (`cascade.mapping.skips`), over the tiles that run."""
        sp = self.sp
        if not hasattr(self, "skips"):
            self.skips = tile_skips(self.mc)
        skip = next((self.skips[lid] for lid in path if lid in self.skips), None)
        info = self.sem.tensors[tensor]
        loops_by_family: dict[str, list[str]] = {}
        for lid in path:
            rank = self.mc.loop_of[lid]
            loops_by_family.setdefault(self.family(rank), []).append(rank)
        axes_by_family: dict[str, list[AxisCoord]] = {}
        total = sp.Integer(1)
        for axis in axes:
            if axis.kind in ("const", "last"):
                continue
            if axis.kind == "outer":
                axes_by_family.setdefault(self.family(axis.rank), []).append(axis)
                continue
            if axis.kind == "inner":
                continue  # counted with its 'outer' partner
            axes_by_family.setdefault(self.family(axis.rank), []).append(axis)
        joint: set[str] = set()
        if skip is not None:
            joint = {skip.whole, self.family(skip.other)}
            total = self.live_sum(skip, loops_by_family.get(self.family(skip.other), []),
                                  axes_by_family.get(skip.whole, []), axes_by_family.get(self.family(skip.other), []))
        for fam in (set(loops_by_family) | set(axes_by_family)) - joint:
            total = total * self.family_sum(fam, loops_by_family.get(fam, []), axes_by_family.get(fam, []), info)
        return total

    def live_sum(self, skip: TileSkip, b_loops: list[str], m_axes: list[AxisCoord], b_axes: list[AxisCoord]):
        """The region summed over the loops of M (the skipping loop over M1) and of the band's other
        rank B, counting only the tiles of M that run (`run_tiles_sum`)."""
        from .tilesum import IntDiv  # sympy at first use only

        m_elements = any(a.kind in ("split", "outer") for a in m_axes) or skip.inner in {a.rank for a in m_axes}
        if skip.whole in self.mc.partitions:  # a mapping's partition M -> (M1, M0): any axis of M is elements
            m_elements = bool(m_axes)
        p = self.mc.partitions.get(skip.other)

        def b_part(length):
            if length is None:  # B whole over each tile of M: B's own loops (inside) as usual
                return (self.family_sum(self.family(skip.other), b_loops, b_axes, None) if b_loops or b_axes
                        else self.sp.Integer(1))
            if b_axes:
                return length
            innermost = max(b_loops, key=p.names.index)
            return -IntDiv(-length, self.span(skip.other, p.names.index(innermost)))  # a ceiling

        return run_tiles_sum(self, skip, m_elements, b_part)

    def family_sum(self, fam: str, loops: list[str], axes: list[AxisCoord], info):
        sp, mc = self.sp, self.mc
        if fam in mc.partitions:
            p = mc.partitions[fam]
            if axes:  # the region is the current tile (or the whole rank, if no level encloses it)
                return self.size(fam)
            innermost = max(p.names.index(r) for r in loops)
            return sp.ceiling(self.size(fam) / self.span(fam, innermost))
        if fam in self.sem.splits:
            outer, inner = self.sem.splits[fam]
            if outer in loops:
                kinds = {a.rank for a in axes}
                if any(a.kind in ("split", "outer") for a in axes) or inner in kinds:
                    return self.size(fam)
                return self.size(outer)
            out = sp.Integer(1)
            for a in axes:
                if a.kind in ("split", "outer"):
                    out = out * self.size(fam)
                elif a.rank == outer:
                    out = out * self.size(outer)
                elif a.rank == inner:
                    out = out * self.size(inner)
                else:
                    out = out * self.size(fam)
            return out
        if loops:  # an iterative rank run as a loop: one coordinate per iteration
            return self.size(fam)
        out = sp.Integer(1)
        for _ in axes:  # a rank computed whole in each tile
            out = out * self.size(fam)
        return out

    def traffic(self) -> Traffic:
        sp = self.sp
        reads: dict[str, Any] = {}
        writes: dict[str, Any] = {}
        by_group: dict[tuple[int, str, str], Any] = {}
        group_of = {k: gi for gi, g in enumerate(self.mc.groups) for k in g.statements}

        def add(k: int, tensor: str, direction: str, n) -> None:
            key = (group_of[k], tensor, direction)
            by_group[key] = by_group.get(key, 0) + n

        for load in self.mc.loads:
            n = self.count(load.axes, load.tensor, load.path)
            reads[load.tensor] = reads.get(load.tensor, 0) + n
            add(load.statements[0], load.tensor, "read", n)
        for k, info in enumerate(self.sem.statements):
            if not self.mc.storage[info.name].dram:
                continue
            path = self.mc.paths[k]
            if self.mc.accumulators.get(k) == "on-chip":  # written once, when the reduced loops end
                acc_loops = accumulation_loops(self.mc, k)
                n = self.count(info.write.axes, info.name, tuple(lid for lid in path if lid not in acc_loops))
                writes[info.name] = writes.get(info.name, 0) + n
                add(k, info.name, "write", n)
                continue
            n = self.count(info.write.axes, info.name, path)
            writes[info.name] = writes.get(info.name, 0) + n
            add(k, info.name, "write", n)
            acc = self.accumulation_families(info, path)
            if acc:  # partial sums through DRAM: every step after the first reads the region back
                first = sp.Integer(1)
                loops_by_family: dict[str, list[str]] = {}
                for lid in path:
                    rank = self.mc.loop_of[lid]
                    loops_by_family.setdefault(self.family(rank), []).append(rank)
                for fam in acc:
                    first = first * self.family_sum(fam, loops_by_family[fam], [], self.sem.tensors[info.name])
                reads[info.name] = reads.get(info.name, 0) + n - n / first
                add(k, info.name, "read", n - n / first)
        names = list(dict.fromkeys([*reads, *writes]))
        per = {t: TensorTraffic(t, _simplify(sp, reads.get(t, sp.Integer(0))), _simplify(sp, writes.get(t, sp.Integer(0))))
               for t in names}
        return Traffic(per, dict(self.symbols), dict(self.values), by_group)

    def accumulation_families(self, info, path: tuple[int, ...]) -> list[str]:
        reduced = reduced_ranks(info)
        fams = []
        for lid in path:
            rank = self.mc.loop_of[lid]
            owner = self.level_owner.get(rank, rank)
            if owner in reduced and self.family(rank) not in fams:
                fams.append(self.family(rank))
        return fams


def run_tiles_sum(table: SymbolTable, skip: TileSkip, m_elements: bool, b_part) -> Any:
    """Sum over the blocks j of the band's other rank B that the loops around the skipping loop fix
    (or B's one whole range) of b_part(block length; None for the whole range) times the keys
    (`m_elements`) or tiles of M that run for the block [b_lo, b_hi]: the tiles i with
    i*M0 - b_hi <= hi and min(i*M0 + M0, M) - 1 - b_lo >= lo are live, a contiguous run
    [i_min, i_max]; with `at_init` only they run, else every tile up to i_max (every tile where
    none is live), as `cascade.mapping.skips` states."""
    from .tilesum import IntDiv, TileSum  # sympy at first use only

    sp, mc = table.sp, table.mc
    as_table = {shape_symbol(r): table.size(r) for r in mc.shapes
                if r not in table.outer_of_split and r not in table.level_owner}
    highs = [sp.sympify(h).subs(as_table) for h in skip.highs]
    lows = [sp.sympify(lo).subs(as_table) for lo in skip.lows]
    m, t, b = table.size(skip.whole), table.size(skip.inner), table.size(skip.other)
    tiles = table.size(skip.outer)
    p = mc.partitions.get(skip.other)
    levels = [mc.loop_of[lid] for lid in skip.enclosing if p is not None and mc.loop_of[lid] in p.names]

    def per_b_tile(b_lo, b_hi):
        i_max = sp.Min(tiles - 1, *[IntDiv(b_hi + h, t) for h in highs], evaluate=False)
        i_min = sp.Max(0, *[IntDiv(b_lo + lo, t) for lo in lows], evaluate=False) if lows else sp.Integer(0)
        some = sp.And(i_min <= i_max, *[b_lo + lo <= m - 1 for lo in lows])
        if skip.at_init:
            run = (sp.Min(m, (i_max + 1) * t, evaluate=False) - i_min * t) if m_elements else i_max - i_min + 1
            return sp.Piecewise((run, some), (0, True))
        run = sp.Min(m, (i_max + 1) * t, evaluate=False) if m_elements else i_max + 1
        return sp.Piecewise((run, some), (m if m_elements else tiles, True))

    if not levels:
        return b_part(None) * per_b_tile(sp.Integer(0), b - 1)
    level = max(levels, key=p.names.index)
    span = table.span(skip.other, p.names.index(level))
    j = sp.Symbol("j_" + skip.other.lower(), integer=True, nonnegative=True)
    length = sp.Min(span, b - j * span, evaluate=False)
    return TileSum(sp.Lambda(j, b_part(length) * per_b_tile(j * span, j * span + length - 1)), sp.ceiling(b / span))


def _simplify(sp, expr):
    """`sp.simplify(expr)`, in the arithmetic `sp` the counter runs in (sympy, or the search's
    numbers, whose simplify is the identity); a tile sum or a piecewise count is left as built."""
    import sympy

    from .tilesum import TileSum

    if getattr(expr, "has", lambda *_: False)(TileSum, sympy.Piecewise):
        return expr
    return sp.simplify(expr)


def accumulator_elements(mc: MappedCascade, table: SymbolTable, k: int) -> Any:
    """Elements an on-chip accumulator of statement k holds (`cascade.mapping.accumulate`): the
    output tile, widened along every rank whose loop runs inside the outermost reduced loop."""
    sp = table.sp
    info = mc.semantics.statements[k]
    inside = {mc.loop_of[lid] for lid in inner_loops(mc, k)}
    on_path = {mc.loop_of[lid] for lid in mc.paths[k]}
    n = sp.Integer(1)
    for axis in info.write.axes:
        rank = axis.rank
        if axis.kind in ("const", "last", "inner"):
            continue
        if rank in mc.partitions:
            p = mc.partitions[rank]
            levels = [j for j, name in enumerate(p.names[:-1]) if name in inside]
            if not levels:
                n = n * sp.Min(table.size(p.names[-1]), table.size(rank))
            else:
                j = min(levels)
                n = n * (table.size(rank) if j == 0 else sp.Min(table.span(rank, j - 1), table.size(rank)))
        elif rank in mc.semantics.splits and axis.kind in ("split", "outer"):
            outer, inner = mc.semantics.splits[rank]
            n = n * (table.size(rank) if outer in inside else table.size(inner))
        elif rank in on_path:
            n = n * (table.size(rank) if rank in inside else 1)
        else:
            n = n * table.size(rank)
    return n
