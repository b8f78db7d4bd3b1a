"""Words moved between the global buffer and the compute units, where the mapping says which
tensors the buffer holds and which Einsums read them from it (`buffer-reads`).

Each statement runs tile by tile: one iteration of the loops above the arrays (the mapping's
partition and split loops, `MappedCascade.paths`) processes a tile whose extent along a rank is
that rank's innermost tile (the partition's last level, the split's inner rank; the whole rank
when it is not split), at most the array axis a space rank is spread over (a wider one passes
through in folds). An Einsum listed as a reader of tensor T fetches T's part of each tile
from the buffer once:

    reads(T, S) = points(S) / prod(in-tile extent of each variable of S that does not index T)

(`QK[m, p] = Q[e, p] * K[e, m]` on 256 x 256 tiles reads Q E/256 times per score; a softmax
reading a row's max `GM[p]` per element of SN[m, p] reads it once per tile of m). A listed
tensor kept on chip is written by the Einsum that produces it once per tile step:
points / prod(in-tile extent of its reduced variables). A listed DRAM-resident tensor (an input,
or a result other groups read back) bypasses the buffer on its way out and is written into it
only when loaded: its DRAM reads, in elements. A listed DRAM-resident result that its Einsum
accumulates on chip across loops over a reduced rank (`accumulate: on-chip`) keeps its partial
sums in the buffer: written once per tile step (points / in-tile extent of the reduced
variables, as above) and read back by every step but the first (read-modify-write), as
Timeloop counts a buffer-level output's updates and reads (reads = updates - the partition
it holds: first-read elision). Tensors not listed never touch the buffer: their
operands stream past it or stay in the PEs' registers, as the FuseMax artifact's Timeloop
mappings keep QK and SLN in FuseMax's PEs.

The counts are sympy expressions in the shapes (the numeric model substitutes them; the
symbolic model and the DSE keep them), charged by `energy.energy_breakdown` in place of the
default (the buffer charged once in and once out per DRAM word) when the mapping gives the key.
"""

from __future__ import annotations

from typing import Any

from ..errors import MappingError
from ..mapping.schedule import MappedCascade


def buffer_words(mc: MappedCascade, table: Any, ops: list, dram_reads: dict[str, Any],
                 arrays: dict[str, dict[str, Any]]) -> tuple[Any, Any] | None:
    """(words read from the buffer, words written into it) as sympy expressions, or None when the
    mapping has no `buffer-reads`. `ops`: `compute.statement_ops`; `dram_reads`: tensor -> DRAM
    elements read (the traffic model's per-tensor reads); `arrays`: Einsum -> {space rank: PEs of
    the array axis it is spread over} (`spatial.space_axes` paired with its unit's shape)."""
    import sympy as sp

    listed = mc.mapping.buffer_reads
    if not listed:
        return None
    check_buffer_reads(mc)
    reads, writes = sp.Integer(0), sp.Integer(0)
    on_chip = mc.accumulators  # statement -> 'on-chip' | 'dram' (cascade.mapping.accumulate)
    for so in ops:
        info = mc.semantics.statements[so.statement]
        axis = arrays.get(so.name, {})

        def tile(v: str) -> Any:
            return _in_tile(mc, table, v, axis)

        for acc in info.reads:
            tensor = acc.access.tensor
            if so.name not in listed.get(tensor, ()):
                continue
            used = {a.var for a in acc.axes if a.var} | {a.inner for a in acc.axes if a.inner}
            reads += so.points / _product(tile(v) for v in info.variables if v not in used)
        if info.name in listed and info.name in mc.storage and not mc.storage[info.name].dram:
            writes += so.points / _product(tile(v) for v in info.reduced)
        elif info.name in listed and on_chip.get(so.statement) == "on-chip":
            steps = so.points / _product(tile(v) for v in info.reduced)
            writes += steps  # each tile step's partial result, into the buffer
            reads += steps - so.points / _product(table.size(v.upper()) for v in info.reduced)  # all but the first
    inputs = {d.name for d in mc.semantics.cascade.inputs}
    for tensor in listed:
        if tensor in inputs or (tensor in mc.storage and mc.storage[tensor].dram):
            writes += dram_reads.get(tensor, 0)
    return reads, writes


def check_buffer_reads(mc: MappedCascade) -> None:
    """Every listed tensor is one of the cascade's, every reader an Einsum that reads it."""
    problems = []
    readers: dict[str, set[str]] = {}
    for info in mc.semantics.statements:
        for acc in info.reads:
            readers.setdefault(acc.access.tensor, set()).add(info.name)
    for tensor, names in mc.mapping.buffer_reads.items():
        if tensor not in mc.semantics.tensors:
            problems.append(f"{mc.mapping.file}: buffer-reads.{tensor}: no tensor {tensor} in the cascade "
                            f"(its tensors: {', '.join(mc.semantics.tensors)})")
            continue
        for name in names:
            if name not in readers.get(tensor, ()):
                problems.append(f"{mc.mapping.file}: buffer-reads.{tensor}: {name} does not read {tensor} "
                                f"(its readers: {', '.join(sorted(readers.get(tensor, ()))) or 'none'})")
    if problems:
        raise MappingError("\n".join(problems))


def _in_tile(mc: MappedCascade, table: Any, var: str, axis: dict[str, Any]) -> Any:
    """The extent of variable `var` within one tile: its rank's innermost partition level (at
    most the rank), the inner rank of a split, 1 for a split's outer rank (a loop above the
    tile), else the whole rank; at most the array axis it is spread over (`axis`: space rank ->
    PEs), as a wider rank passes through the array in folds, each fetching its operands anew."""
    import sympy as sp

    rank = var.upper()
    if any(outer == rank for outer, _ in mc.semantics.splits.values()):
        return sp.Integer(1)
    if rank in mc.partitions:
        level = mc.partitions[rank].names[-1]
        extent = sp.Min(table.size(level), table.size(rank))
    else:
        level, extent = rank, table.size(rank)
    return sp.Min(extent, axis[level]) if level in axis else extent


def _product(factors) -> Any:
    import sympy as sp

    out = sp.Integer(1)
    for f in factors:
        out = out * f
    return out


def group_buffer_words(mc: MappedCascade, table: Any, ops: list, owned: tuple[int, ...], by_group: dict,
                       target: Any, axes_of: dict[str, list]) -> tuple[Any, Any] | None:
    """`buffer_words` of the fusion groups `owned` as the binding `mc` runs them (every group,
    unless groups partition ranks their own way: cascade.mapping.variants): their statements,
    the DRAM reads they make (`by_group`: the traffic model's (group, tensor, direction) ->
    elements) and each Einsum's space ranks (`axes_of`: `spatial.space_axes`) on its unit."""
    group_of = {k: gi for gi, g in enumerate(mc.groups) for k in g.statements}
    mine = [so for so in ops if group_of[so.statement] in owned]
    reads: dict[str, Any] = {}
    for (gi, tensor, direction), n in by_group.items():
        if gi in owned and direction == "read":
            reads[tensor] = reads.get(tensor, 0) + n
    arrays = {so.name: {r: n for (r, _), n in zip(axes_of[so.name], target.units[so.unit].shape)} for so in mine}
    return buffer_words(mc, table, mine, reads, arrays)
