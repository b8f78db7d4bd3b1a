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
from ..mapping.accumulate import accumulation_loops, inner_loops
from ..mapping.schedule import MappedCascade
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
        """Sum over the iterations of `path` of the region `axes` addresses."""
        sp = self.sp
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
        for fam in set(loops_by_family) | set(axes_by_family):
            total = total * self.family_sum(fam, loops_by_family.get(fam, []), axes_by_family.get(fam, []), info)
        return total

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
        per = {t: TensorTraffic(t, sp.simplify(reads.get(t, sp.Integer(0))), sp.simplify(writes.get(t, sp.Integer(0))))
               for t in names}
        return Traffic(per, dict(self.symbols), dict(self.values), by_group)

    def accumulation_families(self, info, path: tuple[int, ...]) -> list[str]:
        kept = set(self.sem.tensors[info.name].ranks)
        iterated = {v.upper() for v in info.variables}
        fams = []
        for lid in path:
            rank = self.mc.loop_of[lid]
            owner = self.level_owner.get(rank, rank)
            if owner in iterated and owner not in kept and self.family(rank) not in fams:
                fams.append(self.family(rank))
        return fams


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
