"""`render_loop_nest`: a `MappedCascade` as readable pseudo-code (`cascade map`).

One block per fusion group: its loops with their trip counts (space loops marked), each
statement at the depth where it runs with the tile it computes, and where every tensor lives.
Pure formatting: nothing here decides anything about the schedule.
"""

from __future__ import annotations

from .schedule import Loop, MappedCascade, statement_text


def render_loop_nest(mc: MappedCascade, spec_label: str = "", mapping_label: str = "") -> str:
    sem = mc.semantics
    lines = [f"cascade {sem.cascade.name}" + (f"  ({spec_label})" if spec_label else "")]
    lines.append(f"mapping {mapping_label or 'default: no partitioning, each Einsum its own group'}")
    lines.append("shapes  " + ", ".join(f"{r}={n}" for r, n in mc.shapes.items()))
    for p in mc.partitions.values():
        levels = " x ".join(f"{name}={ext}" for name, ext in zip(p.names, p.extents))
        lines.append(f"split   {p.rank} -> {levels}   (tiles of {', '.join(str(s) for s in p.spans[:-1])})")
    dram = [t for t, st in mc.storage.items() if st.dram]
    lines.append("DRAM    " + ", ".join(dram))
    if mc.mapping.pipeline:  # phases per tile (model/pipeline.py)
        lines.append("phases  " + " | ".join(f"drain {p.drain}" if p.drain else ", ".join(p.einsums)
                                             for p in mc.mapping.pipeline))
    for tensor, loops in mc.mapping.reload.items():
        lines.append(f"reload  {tensor}: loaded anew at each iteration of {', '.join(loops)}")
    for tensor, loops in mc.mapping.keep.items():
        lines.append(f"keep    {tensor}: kept on chip across {', '.join(loops)}")
    for members in mc.overlap_sets():
        if len(members) > 1:
            lines.append(f"overlap groups {', '.join(str(gi + 1) for gi in members)} run concurrently")
    base = mc
    for gi in range(1, len(mc.groups) + 1):
        mc = base.owner(gi - 1)  # a group with its own partitioning runs its own binding's loop nest
        group = mc.groups[gi - 1]
        lines.append("")
        members = [sem.statements[k].name for k in group.statements if not sem.statements[k].is_init]
        lines.append(f"group {gi}: {', '.join(dict.fromkeys(members))}")
        if mc is not base:
            for p in mc.partitions.values():
                if p.rank not in base.partitions or base.partitions[p.rank] != p:
                    levels = " x ".join(f"{name}={ext}" for name, ext in zip(p.names, p.extents))
                    lines.append(f"  own split {p.rank} -> {levels}   (tiles of {', '.join(str(s) for s in p.spans[:-1])})")
        on_chip = [t for t, st in mc.storage.items() if not st.dram and
                   any(sem.statements[k].name == t for k in group.statements)]
        if on_chip:
            lines.append("  on chip: " + ", ".join(f"{t}[{_axes(mc, t)}]" for t in on_chip))
        _render(mc, list(group.tree), 1, lines)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _axes(mc: MappedCascade, tensor: str) -> str:
    info = mc.semantics.tensors[tensor]
    return ", ".join(f"{r}:{kind}" for r, kind in zip(info.ranks, mc.storage[tensor].axes))


def _render(mc: MappedCascade, nodes: list, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for node in nodes:
        if isinstance(node, Loop):
            space = any(node.rank in mc.mapping.spacetime_for(mc.semantics.statements[k].name).space
                        for k in _leaves(node))
            kind = "parallel for" if space else "for"
            head = f"{pad}{kind} {node.rank.lower()} in [0, {_trips(mc, node.rank)}):"
            lines.append(head.ljust(60) + "  # space" if space else head)
            _render(mc, node.body, depth + 1, lines)
        else:
            info = mc.semantics.statements[node.statement]
            text = ("init " if info.is_init else "") + statement_text(info.statement).removeprefix("init ")
            tile = _tile(mc, node.statement)
            lines.append(f"{pad}{text}".ljust(60) + (f"  # tile {tile}" if tile else ""))


def _trips(mc: MappedCascade, rank: str) -> int:
    """A loop's largest trip count: an inner partition level stops at the end of its rank
    (P = 256 in tiles of 32768 then 256 runs p1 once, not 32768 / 256 times)."""
    for p in mc.partitions.values():
        if rank in p.names:
            j = p.names.index(rank)
            return min(p.extents[j], -(-mc.shapes[p.rank] // p.spans[j]))
    return mc.shapes[rank]


def _leaves(loop: Loop) -> list[int]:
    out: list[int] = []
    for node in loop.body:
        out.extend(_leaves(node) if isinstance(node, Loop) else [node.statement])
    return out


def _tile(mc: MappedCascade, k: int) -> str:
    info = mc.semantics.statements[k]
    group = mc.group_of(k)
    parts = []
    for v in info.variables:
        rank = v.upper()
        if rank in group.loop_ranks:
            continue
        size = mc.partitions[rank].spans[-2] if rank in mc.partitions else mc.shapes[rank]
        whole = next((r for r, (_, inner) in mc.semantics.splits.items() if inner == rank), rank)
        size = min(size, mc.shapes[whole])  # a tile never exceeds its rank
        parts.append(f"{v}:{size}" + (" (reduced)" if v in info.reduced else ""))
    return " x ".join(parts)
