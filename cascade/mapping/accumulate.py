"""Accumulators: where a reduction's partial results live while a loop over the reduced rank runs.

A statement that reduces over a rank run as a loop (`Z[m, n] = A[k, m] * B[k, n]` with K tiled
into K1 loops, or `AV` with M1 outside the fusion group) combines each step's partial result with
the one before. When its output is DRAM-resident the partial results either go to DRAM and come
back (`dram`: every step after the first reads the region back and writes it again) or stay in
an accumulator on chip (`on-chip`: the region is written once, when the reduced loops end, and
never read back). The mapping says which (`accumulate: {Z: on-chip}`, with a `default`); where it
says nothing, the accumulator stays on chip when it is one tile of the output, i.e. no loop over
a rank the output keeps runs inside the outermost reduced loop (the statement computes that tile
anyway); a wider accumulator, which holds several tiles at once, goes to DRAM unless the mapping
asks for it on chip. The cost model counts an on-chip accumulator in its group's footprint (a
target whose buffer cannot hold it refuses the mapping).
"""

from __future__ import annotations

from typing import Any

MappedCascade = Any  # schedule.MappedCascade, which imports this module (no import back: no circle)


def accumulation_loops(mc: MappedCascade, k: int) -> tuple[int, ...]:
    """Ids of the loops around statement k over a rank it reduces (levels of a partitioned
    rank, or the outer part of the cascade's own split), outermost first."""
    sem = mc.semantics
    info = sem.statements[k]
    reduced = reduced_ranks(info)
    owner = {n: p.rank for p in mc.partitions.values() for n in p.names}
    return tuple(lid for lid in mc.paths.get(k, ()) if owner.get(mc.loop_of[lid], mc.loop_of[lid]) in reduced)


def reduced_ranks(info: Any) -> set[str]:
    """The ranks a statement reduces: those of its variables the left side does not keep. (Not
    "ranks of the tensor it does not iterate": `AV[f, g, r, p]` writes rank H of `AV[F, H, P]`
    through the parts of `split H = G * R`, and a loop over G is no reduction.)"""
    return {v.upper() for v in info.reduced}


def accumulator_places(mc: MappedCascade) -> dict[int, str]:
    """Statement index -> 'on-chip' | 'dram', for every statement writing a DRAM-resident tensor
    inside a loop over a rank it reduces (see the module docstring for the default)."""
    out: dict[int, str] = {}
    for k, info in enumerate(mc.semantics.statements):
        if info.is_init or not mc.storage[info.name].dram:
            continue
        acc = accumulation_loops(mc, k)
        if not acc:
            continue
        given = mc.mapping.accumulate_for(info.name)
        if given is None:
            path = mc.paths[k]
            inside = path[path.index(acc[0]):]
            given = "on-chip" if all(lid in acc for lid in inside) else "dram"
        out[k] = given
    return out


def inner_loops(mc: MappedCascade, k: int) -> tuple[int, ...]:
    """The loops an on-chip accumulator of statement k spans: those inside its outermost reduced
    loop over ranks the output keeps (empty for a one-tile accumulator)."""
    acc = accumulation_loops(mc, k)
    path = mc.paths[k]
    return tuple(lid for lid in path[path.index(acc[0]):] if lid not in acc) if acc else ()
