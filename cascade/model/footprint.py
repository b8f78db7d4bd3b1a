"""On-chip footprint of a mapped cascade, in elements: an on-chip tensor's storage and a load's
tile, as the generated executor holds them (shared by the spatial, spill and Grayskull models)."""

from __future__ import annotations

from ..mapping.schedule import MappedCascade


def axis_elements(mc: MappedCascade, rank: str, kind: str, level: str | None = None) -> int:
    if kind in ("point", "ring", "const"):
        return 1
    if rank in mc.partitions:
        p = mc.partitions[rank]
        if kind == "tile":
            return min(p.spans[-2], mc.shapes[rank])
        if kind == "part" and level is not None and level in p.names:
            return min(p.spans[p.names.index(level)], mc.shapes[rank])
    return mc.shapes[rank]


def storage_elements(mc: MappedCascade, tensor: str) -> int:
    st = mc.storage[tensor]
    parts = dict(st.parts)
    n = 1
    for rank, kind in zip(mc.semantics.tensors[tensor].ranks, st.axes):
        n *= axis_elements(mc, rank, kind, parts.get(rank))
    return n


def load_elements(mc: MappedCascade, load) -> int:
    widen = dict(load.widen)
    loops = {mc.loop_of[lid] for lid in load.path}
    n = 1
    for axis in load.axes:
        if axis.kind in ("const", "last", "inner"):
            continue
        rank = axis.rank
        if axis.kind == "split":
            n *= mc.shapes[mc.semantics.splits[rank][1]]
        elif rank in widen:
            n *= axis_elements(mc, rank, "part", widen[rank])
        elif rank in mc.partitions:
            n *= axis_elements(mc, rank, "tile")
        elif rank in loops:
            n *= 1
        else:
            n *= mc.shapes[rank]
    return n
