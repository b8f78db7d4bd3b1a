"""Rank and tile shapes as sympy symbols (named after the ranks), with their current values.

Partition levels and split outer ranks are derived: `M1 = ceiling(M / M0)`; inner levels of a
multi-level partition are symbols of their own (`P1` of `P: [256, 64]` is 4). A fusion group
with a partition of its own (`cascade.mapping.variants`) names its levels `<level>_<Einsum>`
(`variant_symbols`), so that one symbol never stands for two tiles.
"""

from __future__ import annotations

from typing import Any

from ..mapping.schedule import MappedCascade


class SymbolTable:
    def __init__(self, mc: MappedCascade):
        import sympy

        self.sp = sympy
        self.mc, self.sem = mc, mc.semantics
        self.outer_of_split = {outer: rank for rank, (outer, _) in self.sem.splits.items()}
        self.inner_of_split = {inner: rank for rank, (_, inner) in self.sem.splits.items()}
        self.symbols: dict[str, Any] = {}
        self.values: dict[str, int] = {}
        self.level_owner = {name: p.rank for p in mc.partitions.values() for name in p.names}

    def sym(self, name: str, value: int):
        if name not in self.symbols:
            self.symbols[name] = self.sp.Symbol(name, positive=True, integer=True)
            self.values[name] = value
        return self.symbols[name]

    def size(self, rank: str):
        """A rank's size: a symbol for ranks and tile shapes, a formula for derived ones."""
        sp, mc = self.sp, self.mc
        if rank in self.outer_of_split:
            whole = self.outer_of_split[rank]
            inner = self.sem.splits[whole][1]
            return sp.ceiling(self.size(whole) / self.size(inner))
        if rank in self.level_owner and rank not in mc.partitions:
            p = mc.partitions[self.level_owner[rank]]
            j = p.names.index(rank)
            if j == 0:
                return sp.ceiling(self.size(p.rank) / self.span(p.rank, 0))
            return self.sym(rank, p.extents[j])
        return self.sym(rank, mc.shapes[rank])

    def span(self, rank: str, j: int):
        """Elements of `rank` covered by one step of its partition level j."""
        p = self.mc.partitions[rank]
        out = 1
        for name in p.names[j + 1:]:
            out = out * self.size(name)
        return out

    def substitutions(self) -> dict:
        return {self.symbols[k]: v for k, v in self.values.items()}


def variant_symbols(mc: MappedCascade, bound: MappedCascade, table: SymbolTable,
                    owned: tuple[int, ...]) -> tuple[dict[Any, Any], dict[str, str]]:
    """For a binding that runs fusion groups under their own partitioning: its symbols for the
    levels of partitions that differ from the cascade's, renamed `<level>_<first Einsum of its
    first group>` (sympy substitutions, and old name -> new name); nothing for `mc` itself."""
    import sympy as sp

    if bound is mc:
        return {}, {}
    first = bound.groups[owned[0]].name.split("+")[0]
    own = {n for r, p in bound.partitions.items() if mc.partitions.get(r) != p for n in p.names}
    names = {n: f"{n}_{first}" for n in table.symbols if n in own}
    subs = {table.symbols[n]: sp.Symbol(new, positive=True, integer=True) for n, new in names.items()}
    return subs, names
