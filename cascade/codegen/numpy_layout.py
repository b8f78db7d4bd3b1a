"""The base of the NumPy executor generator: names, and where each tile lies.

`LayoutEmitter` holds the state every layer of the generator reads (the `MappedCascade`, the
`Emitter` of output lines, the names given to ranks and tensors, the outer and inner parts of
each split) and answers the geometric questions: the extent and coordinates of a tile variable,
the start of a partition level's current tile, which ranks are loops, and the shape an on-chip
tensor is allocated with. It emits nothing itself. `_Namer` derives every Python name in the
generated module deterministically from the spec's names.

Layers, each a subclass of the one before: `numpy_layout` (this) -> `numpy_access` (loads and
stores) -> `numpy_statement` (one statement's value) -> `numpy_exec` (the module and its loops).
"""

from __future__ import annotations

import ast
import builtins
import keyword

from ..lang import ir
from ..lang.semantics import StatementInfo
from ..mapping.schedule import MappedCascade
from . import pyast as A

_RESERVED = set(keyword.kwlist) | set(dir(builtins)) | {
    "np", "inputs", "trace", "dt", "value", "present", "kept", "run", "run_traced", "SHAPES", "TILES",
    "_execute", "_rd", "_wr", "_input", "_fill", "_merge", "_where", "_spill_rd", "_spill_wr",
}


class _Namer:
    """Deterministic Python names for spec names; collisions get a suffix."""

    def __init__(self, mc: MappedCascade):
        self.used = set(_RESERVED)
        self.ranks: dict[str, str] = {}
        bindings = [b for b, _ in mc.bindings()]  # one, unless fusion groups partition ranks their own way
        shapes = sorted({r for b in bindings for r in b.shapes})
        for r in shapes:
            self.ranks[r] = self.fresh(r)
        self.vars = {r: self.fresh(r.lower()) for r in shapes}
        partitioned = sorted({r for b in bindings for r in b.partitions}, key=[r for b in bindings for r in b.partitions].index)
        self.bounds = {r: (self.fresh(r.lower() + "_lo"), self.fresh(r.lower() + "_hi")) for r in partitioned}
        self.counts = {inner: self.fresh(inner.lower() + "_n") for _, inner in mc.semantics.splits.values()}
        self.tensors: dict[str, str] = {}
        for t in mc.semantics.tensors:
            self.tensors[t] = self.fresh(t)
        self.rings = {t: (self.fresh(t + "_prev"), self.fresh(t + "_cur")) for t in mc.semantics.tensors}
        self.presence = {t: self.fresh(t + "_present") for t in mc.semantics.tensors}
        self.presence_rings = {t: (self.fresh(t + "_present_prev"), self.fresh(t + "_present_cur"))
                               for t in mc.semantics.tensors}

    def fresh(self, base: str) -> str:
        candidate = base
        while candidate in self.used or keyword.iskeyword(candidate):
            candidate += "_"
        self.used.add(candidate)
        return candidate


class LayoutEmitter:
    """Shared state of the generator and the geometry of tiles; see the module docstring."""

    def __init__(self, mc: MappedCascade):
        self.mc, self.sem = mc, mc.semantics
        self.names = _Namer(mc)
        self.out = A.Emitter()
        self.outer_parts = {outer: rank for rank, (outer, _) in self.sem.splits.items()}
        self.inner_parts = {inner: (rank, outer) for rank, (outer, inner) in self.sem.splits.items()}

    # ------------------------------------------------------------ storage layout
    def full_extent(self, tensor: str, rank: str) -> ast.expr:
        size = A.name(self.names.ranks[rank])
        return A.binop(size, "+", A.const(1)) if self.sem.tensors[tensor].iterative == rank else size

    def ring_loop(self, tensor: str) -> int | None:
        writer = self.writer_index(tensor)
        rank = self.sem.tensors[tensor].iterative
        return next((lid for lid in self.mc.paths[writer] if self.mc.loop_of[lid] == rank), None)

    def writer_index(self, tensor: str) -> int:
        return next(k for k, s in enumerate(self.sem.statements) if s.name == tensor and not s.is_init)

    def is_region_stored(self, tensor: str) -> bool:
        """Does an on-chip tensor need an allocated array written by regions?"""
        st = self.mc.storage[tensor]
        info = self.sem.tensors[tensor]
        for rank, kind in zip(info.ranks, st.axes):
            if kind == "part" or (kind == "full" and (rank in self.mc.partitions or self.is_loop_rank(rank))):
                return True
        return False

    def part_base(self, tensor: str, rank: str) -> tuple[ast.expr, int]:
        """(start, span) of the outer-level tile a 'part' axis keeps."""
        return self.level_start(rank, dict(self.mc.storage[tensor].parts)[rank])

    def level_start(self, rank: str, level: str) -> tuple[ast.expr, int]:
        """(start, span) of the current tile of one partition level of a rank (FULL: the whole rank)."""
        p = self.mc.partitions[rank]
        if level not in p.names:  # schedule.FULL
            return A.const(0), self.mc.shapes[rank]
        j = p.names.index(level)
        start = None
        for name, span in zip(p.names[: j + 1], p.spans[: j + 1]):
            term = A.binop(A.name(self.names.vars[name]), "*", A.const(span))
            start = term if start is None else A.binop(start, "+", term)
        return start, p.spans[j]

    def is_loop_rank(self, rank: str) -> bool:
        return any(r == rank for r in self.mc.loop_of.values())

    def local_shape(self, tensor: str) -> list[ast.expr]:
        st = self.mc.storage[tensor]
        shape = []
        for rank, kind in zip(self.sem.tensors[tensor].ranks, st.axes):
            if kind in ("point", "ring"):
                continue
            if kind == "tile" and rank in self.mc.partitions:
                lo, hi = self.names.bounds[rank]
                shape.append(A.binop(A.name(hi), "-", A.name(lo)))
            elif kind == "part":
                start, span = self.part_base(tensor, rank)
                shape.append(A.call("min", A.const(span), A.binop(A.name(self.names.ranks[rank]), "-", start)))
            else:
                shape.append(self.full_extent(tensor, rank))
        return shape

    # ------------------------------------------------------------ tile variables
    def loop_ranks_of(self, k: int) -> set[str]:
        return {self.mc.loop_of[lid] for lid in self.mc.paths[k]}

    def tile_vars(self, info: StatementInfo, k: int) -> list[str]:
        group_loops = set(self.mc.group_of(k).loop_ranks)
        return [v for v in info.variables if v.upper() not in group_loops]

    def loop_extent(self, rank: str) -> ast.expr:
        """A loop's trip count; an inner partition level stops at the end of a ragged rank."""
        n = self.names
        for p in self.mc.partitions.values():
            if rank in p.names[1:-1]:
                j = p.names.index(rank)
                start = None
                for level, span in zip(p.names[:j], p.spans[:j]):
                    term = A.binop(A.name(n.vars[level]), "*", A.const(span))
                    start = term if start is None else A.binop(start, "+", term)
                left = A.binop(A.name(n.ranks[p.rank]), "-", start)
                span_ = A.const(p.spans[j])
                return A.call("min", A.name(n.ranks[rank]),
                              A.binop(A.binop(A.binop(left, "+", span_), "-", A.const(1)), "//", span_))
        return A.name(n.ranks[rank])

    def extent(self, var: str, k: int) -> ast.expr:
        rank, n = var.upper(), self.names
        if rank in self.mc.partitions:
            lo, hi = n.bounds[rank]
            return A.binop(A.name(hi), "-", A.name(lo))
        if rank in self.inner_parts and self.inner_parts[rank][1] in self.loop_ranks_of(k):
            return A.name(n.counts[rank])
        return A.name(n.ranks[rank])

    def coordinates(self, var: str, k: int) -> tuple[ast.expr, ast.expr]:
        """[lo, hi) of a tile variable's coordinates in its own rank."""
        rank, n = var.upper(), self.names
        if rank in self.mc.partitions:
            lo, hi = n.bounds[rank]
            return A.name(lo), A.name(hi)
        return A.const(0), self.extent(var, k)


def access_key(access: ir.Access) -> str:
    """The text of an access (`A[m, k]`): the key under which a statement keeps its operands."""
    from ..lang.show import show_access

    return show_access(access)
