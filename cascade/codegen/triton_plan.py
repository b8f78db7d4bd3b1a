"""What a mapped fusion group becomes on a GPU: `plan_kernel` decides each rank's role.

The rules (one kernel per fusion group, DESIGN of the Triton backend in README "GPU"):

- a *loop rank* of the group (an outer partition level, the outer part of a cascade split) is a
  *grid* rank when it is parallel: no statement of the group reduces over its rank and it is no
  recurrence's iterative rank. All grid levels of one rank collapse into one program index over
  that rank's tiles; the grid is their product, flattened, innermost loop fastest;
- every other loop rank stays a loop inside the kernel (the iterative rank of a recurrence:
  loop-carried values);
- *tile* ranks are block dimensions (`tl.arange`); a tile of extent 1 is a scalar coordinate.
  A statement's value may span at most two block dimensions (its left side plus the tile ranks it
  reduces), the shape `tl.dot` and Triton's reductions work on.

What the backend cannot do is a `MappingError` naming the Einsum and the reason (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MappingError
from ..mapping.schedule import Group, Leaf, Loop, MappedCascade


@dataclass(frozen=True)
class RankRole:
    """How a statement variable's rank is addressed inside the kernel."""

    rank: str  # the original rank of the coordinate (P for p; M for m0 of split M = M1 * M0)
    kind: str  # 'tile' (block dim), 'unit' (scalar: tile of extent 1), 'loop' (a loop/grid index only)
    level: str  # the rank level that is the tile or the loop (P0, M0, M1, E)
    extent: int | None  # fixed tile extent (None: the whole runtime rank)


@dataclass(frozen=True)
class KernelPlan:
    group: Group
    index: int
    grid: tuple[str, ...]  # original ranks on the grid, outermost first
    grid_span: dict[str, int]  # elements of that rank one program covers
    loops: tuple[str, ...]  # loop ranks that stay kernel loops
    roles: dict[str, RankRole]  # statement variable (lower case) -> role
    order: tuple[str, ...]  # canonical order of block levels (mapping loop order)

    @property
    def name(self) -> str:
        return f"kernel_{self.index}"


def plan_kernel(mc: MappedCascade, group: Group, index: int) -> KernelPlan:
    sem = mc.semantics
    where = mc.mapping.file or "mapping"
    stmts = [sem.statements[k] for k in group.statements]
    iterative = {sem.tensors[s.name].iterative for s in stmts if sem.tensors[s.name].iterative}
    reduced_ranks = {v.upper() for s in stmts for v in s.reduced}
    split_outer = {outer: rank for rank, (outer, _inner) in sem.splits.items()}
    split_inner = {inner: rank for rank, (_outer, inner) in sem.splits.items()}
    level_owner = {name: p.rank for p in mc.partitions.values() for name in p.names}

    def owner(level: str) -> str:
        return level_owner.get(level, level)

    grid: list[str] = []
    loops: list[str] = []
    for level in group.loop_ranks:
        rank = owner(level)
        parallel = level not in iterative and rank not in reduced_ranks and level not in reduced_ranks
        if level in split_outer:
            parallel = parallel and split_outer[level] not in reduced_ranks
            if parallel:
                raise MappingError(f"{where}: {_names(sem, group)}: {level}, the outer part of 'split "
                                   f"{split_outer[level]}', is parallel here; the Triton backend runs split "
                                   "outer parts as kernel loops only for recurrences: partition the rank in the "
                                   "mapping instead")
        if parallel:
            if rank not in grid:
                grid.append(rank)
        else:
            if level in mc.partitions.get(rank, _NoPart).names and level not in split_outer:
                raise MappingError(f"{where}: {_names(sem, group)}: the loop {level} runs over {rank}, which "
                                   f"an Einsum of the group reduces; the Triton backend does not accumulate "
                                   f"across loop levels yet: leave {rank} unpartitioned (a whole tile) or give "
                                   "the reduction its own fusion group")
            loops.append(level)
    if len({r for r in loops if r not in iterative}) and not iterative:
        raise MappingError(f"{where}: {_names(sem, group)}: kernel loops {', '.join(loops)} carry no recurrence")
    grid_span = {}
    for rank in grid:
        part = mc.partitions.get(rank)
        grid_span[rank] = part.extents[-1] if part is not None else 1
    roles: dict[str, RankRole] = {}
    for s in stmts:
        for v in s.variables:
            r = v.upper()
            if r in mc.partitions:
                ext = mc.partitions[r].extents[-1]
                roles[v] = RankRole(r, "unit" if ext == 1 else "tile", mc.partitions[r].names[-1], ext)
            elif r in split_outer:
                roles[v] = RankRole(split_outer[r], "loop", r, None)
            elif r in split_inner:
                ext = mc.shapes[r]
                roles[v] = RankRole(split_inner[r], "unit" if ext == 1 else "tile", r, ext)
            elif r in group.loop_ranks:
                raise MappingError(f"{where}: {s.name}: the loop over {r} (a recurrence over an unsplit rank) "
                                   f"is not supported by the Triton backend: split {r} in the cascade "
                                   f"('split {r} = {r}1 * {r}0') and recur over {r}1")
            else:
                roles[v] = RankRole(r, "tile", r, None)
    order = tuple(dict.fromkeys(
        [lv for lv in _loop_order(mc, group) if any(ro.level == lv and ro.kind == "tile" for ro in roles.values())]
        + [ro.level for ro in roles.values() if ro.kind == "tile"]))
    return KernelPlan(group, index, tuple(grid), grid_span, tuple(loops), roles, order)


class _NoPart:
    names: tuple[str, ...] = ()


def _names(sem, group: Group) -> str:
    return "+".join(dict.fromkeys(sem.statements[k].name for k in group.statements))


def _loop_order(mc: MappedCascade, group: Group) -> list[str]:
    for k in group.statements:
        order = mc.mapping.order_for(mc.semantics.statements[k].name)
        if order:
            return list(order)
    return []


def walk(nodes, grid_levels: set[str]):
    """The group's loop tree with grid loops dissolved: yields ('leaf', k) and ('loop', rank, body)."""
    out = []
    for node in nodes:
        if isinstance(node, Leaf):
            out.append(("leaf", node.statement))
        elif isinstance(node, Loop):
            body = walk(node.body, grid_levels)
            if node.rank in grid_levels:
                out.extend(body)
            else:
                out.append(("loop", node.rank, body))
    return out
