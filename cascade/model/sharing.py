"""Buffer sharing by liveness within a fusion group (targets with `buffer: {in_place: true}`).

By default a group's on-chip intermediates each hold their own storage for the whole group
(`spill.group_footprints` adds them up). A target whose buffer is managed by liveness lets them
share it (flat_cloud: the FuseMax artifact's FLAT configuration, flat_validation.csv, counts one
block of scores per row block in the buffer, so QK, SN and A share it: our reading of that
data, stated in the target file), by two rules:

- Liveness. A group runs its statements in program order inside the loops common to all of
  them; below those, each top-level node (a pass: a sibling loop, or a statement alone) is a
  step. An intermediate holds storage from the step that first writes it to the step that last
  reads it; two whose steps do not overlap use the same storage in turn. One that is read
  before it is written (a loop-carried value), written more than once or kept in a ring is
  held for the whole group.
- In place. An element-wise statement (nothing reduced) that is the last reader of an
  intermediate, reading it at exactly the point it writes, writes its result over it: the
  two share one storage, as large as the larger of them, when the result's storage is no
  wider on any axis (a tile of M may overwrite M's full row, never the reverse). Another
  reader of the overwritten tensor in the same step must read it the same way, in the same
  loops, each over a rank the access indexes (so no element is read after it is overwritten).

`storage_classes` gives, per step, the storage classes (tensors sharing one storage) that are
live; the footprint is the largest sum over steps of each class's largest member. Nothing
computed changes: only how much buffer the group needs, hence what spills
(`spill.plan_spills`, whose fractions the executor's trace also counts).
"""

from __future__ import annotations

from ..mapping.schedule import Group, Leaf, Loop, MappedCascade

_WIDTH = {"point": 0, "const": 0, "tile": 1, "part": 2, "full": 3, "dram": 3}


def program_order(group: Group) -> list[int]:
    """The group's statements in the order its loop nest runs them."""
    out: list[int] = []

    def walk(nodes) -> None:
        for node in nodes:
            if isinstance(node, Leaf):
                out.append(node.statement)
            elif isinstance(node, Loop):
                walk(node.body)

    walk(group.tree)
    return out


def storage_classes(mc: MappedCascade, group: Group, kept: tuple[str, ...],
                    in_place: bool) -> list[list[tuple[str, ...]]]:
    """Per step of `group`: the live storage classes of its on-chip intermediates `kept` (each a
    tuple of tensors sharing one storage). Without `in_place` every tensor is its own class,
    live in the one step that holds them all (the footprint of no sharing)."""
    if not in_place or not kept:
        return [[(t,) for t in kept]]
    order = program_order(group)
    position = {k: i for i, k in enumerate(order)}
    step = _steps(mc, order)
    sem = mc.semantics
    writers: dict[str, list[int]] = {}
    readers: dict[str, list[tuple[int, object]]] = {}
    for k in order:
        info = sem.statements[k]
        writers.setdefault(info.name, []).append(k)
        for read in info.reads:
            readers.setdefault(read.access.tensor, []).append((k, read))
    last = max(step.values())
    span: dict[str, tuple[int, int]] = {}
    pinned: set[str] = set()
    for t in kept:
        ws = writers.get(t, [])
        rs = [k for k, _ in readers.get(t, [])]
        if len(ws) != 1 or "ring" in mc.storage[t].axes or any(position[k] <= position[ws[0]] for k in rs):
            pinned.add(t)
            span[t] = (0, last)
        else:
            span[t] = (step[ws[0]], max([step[k] for k in rs] or [step[ws[0]]]))
    parent = {t: t for t in kept}

    def root(t: str) -> str:
        while parent[t] != t:
            t = parent[t]
        return t

    for k in order:  # in place: k overwrites an input it is the last reader of
        info = sem.statements[k]
        out = info.name
        if out not in span or out in pinned or info.reduced or info.is_init:
            continue
        for read in info.reads:
            t = read.access.tensor
            if t not in span or t in pinned or t == out or root(t) == root(out) or read.axes != info.write.axes:
                continue
            if any(r.access.tensor == t and r.axes != info.write.axes for r in info.reads):
                continue  # k also reads t elsewhere than where it writes: not in place
            if max(position[j] for j, _ in readers[t]) != position[k] or not _no_wider(mc, out, t):
                continue
            if not _others_safe(mc, k, read, readers[t], step):
                continue
            parent[root(out)] = root(t)
            break
    classes: dict[str, list[str]] = {}
    for t in kept:
        classes.setdefault(root(t), []).append(t)
    live: list[list[tuple[str, ...]]] = []
    for s in range(last + 1):
        live.append([tuple(members) for members in classes.values()
                     if any(span[t][0] <= s <= span[t][1] for t in members)])
    return live


def _steps(mc: MappedCascade, order: list[int]) -> dict[int, int]:
    """statement -> its step: the index of the top-level node below the loops common to all."""
    paths = [mc.paths[k] for k in order]
    common = 0
    while all(len(p) > common for p in paths) and len({p[common] for p in paths}) == 1:
        common += 1
    step: dict[int, int] = {}
    seen: dict[object, int] = {}
    for k in order:
        p = mc.paths[k]
        node = p[common] if len(p) > common else ("leaf", k)
        step[k] = seen.setdefault(node, len(seen))
    return step


def _no_wider(mc: MappedCascade, out: str, over: str) -> bool:
    """`out`'s storage fits in `over`'s: same ranks, and no axis wider (a tile in a full row)."""
    a, b = mc.storage[out], mc.storage[over]
    if mc.semantics.tensors[out].ranks != mc.semantics.tensors[over].ranks:
        return False
    pa, pb = dict(a.parts), dict(b.parts)
    for rank, x, y in zip(mc.semantics.tensors[out].ranks, a.axes, b.axes):
        if x not in _WIDTH or y not in _WIDTH or _WIDTH[x] > _WIDTH[y]:
            return False
        if x == y == "part" and pa.get(rank) != pb.get(rank):
            return False
    return True


def _others_safe(mc: MappedCascade, k: int, read, readers: list[tuple[int, object]], step: dict[int, int]) -> bool:
    """Every other reader of the overwritten tensor in k's step reads it as k does, in k's loops,
    each loop over a rank the access indexes: the element k overwrites is never read again."""
    indexed = {ax.var.upper() for ax in read.axes if ax.var} | {ax.rank for ax in read.axes}
    for j, other in readers:
        if j == k or step[j] != step[k]:
            continue
        if other.axes != read.axes or mc.paths[j] != mc.paths[k]:
            return False
        for lid in mc.paths[k]:
            rank = mc.loop_of[lid]
            whole = next((r for r, p in mc.partitions.items() if rank in p.names), rank)
            if rank not in indexed and whole not in indexed:
                return False
    return True
