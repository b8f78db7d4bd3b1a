"""What a mapped fusion group becomes on a GPU: `plan_kernel` decides each rank's role.

The rules (one kernel per fusion group, DESIGN of the Triton backend in README "GPU"):

- a *loop rank* of the group (an outer partition level, the outer part of a cascade split) is a
  *grid* rank when it is parallel: no statement of the group reduces over its rank and it is no
  recurrence's iterative rank. All grid levels of one rank collapse into one program index over
  that rank's tiles; the grid is their product, flattened, innermost loop fastest;
- the outer part of a split is a grid rank the same way when parallel (FlashDecoding's key
  splits M1: one program per split); the parts of a *fixed* split (GQA's `H = G * R`, part of the
  math, so no mapping tiles it) both go to the grid when parallel: one program per query head,
  as the multi-head mappings ask of H;
- the outer part of a split that an Einsum of the group reduces (and no recurrence iterates) is a
  block over all of it: the loop dissolves into block statements (FlashDecoding's combine);
- every other loop rank stays a loop inside the kernel: the iterative rank of a recurrence
  (loop-carried values), or the outer level of a rank partitioned in two whose sum, max or min an
  Einsum of the group takes (an *accumulation* loop: the partial result of each tile is combined
  into a register accumulator, complete after the loop);
- *tile* ranks are block dimensions (`tl.arange`); a tile of extent 1 is a scalar coordinate.
  A statement's value may span at most two block dimensions (its left side plus the tile ranks it
  reduces), the shape `tl.dot` and Triton's reductions work on.

What the backend cannot do is a `MappingError` naming the Einsum and the reason (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    grid_span: dict[str, int]  # elements of that rank one program (or accumulation step) covers
    loops: tuple[str, ...]  # loop ranks that stay kernel loops
    roles: dict[str, RankRole]  # statement variable (lower case) -> role
    order: tuple[str, ...]  # canonical order of block levels (mapping loop order)
    accumulate: dict[str, str] = field(default_factory=dict)  # accumulation loop level -> its rank

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
    accumulate: dict[str, str] = {}  # loop level -> the rank whose reduction accumulates across it
    for level in group.loop_ranks:
        rank = owner(level)
        parallel = level not in iterative and rank not in reduced_ranks and level not in reduced_ranks
        if level in split_outer:
            parallel = parallel and split_outer[level] not in reduced_ranks
        if parallel:
            if rank not in grid:
                grid.append(rank)
            continue
        if level in split_outer and level in reduced_ranks and level not in iterative:
            continue  # reduced whole: a block over all of it (FlashDecoding's combine of its splits)
        part = mc.partitions.get(rank)
        if part is not None and level in part.names and level not in split_outer:
            if len(part.names) != 2 or level != part.names[0]:
                raise MappingError(f"{where}: {_names(sem, group)}: the loop {level} runs over {rank}, which an "
                                   f"Einsum of the group reduces; the Triton backend accumulates a reduction "
                                   f"across one loop level only: partition {rank} in two levels (one "
                                   "uniform_shape) or give the reduction its own fusion group")
            accumulate[level] = rank
        loops.append(level)
    fixed = sem.fixed_splits()
    for rank, (outer, inner) in fixed.items():
        used = any(inner.lower() in s.variables for s in stmts)
        if outer in grid and used and inner not in reduced_ranks and inner not in grid:
            grid.append(inner)
    if any(r not in iterative and r not in accumulate for r in loops) and not iterative:
        raise MappingError(f"{where}: {_names(sem, group)}: kernel loops {', '.join(loops)} carry no recurrence")
    grid_span = {}
    for rank in grid:
        part = mc.partitions.get(rank)
        grid_span[rank] = part.extents[-1] if part is not None else 1
    for level, rank in accumulate.items():
        grid_span[rank] = mc.partitions[rank].extents[-1]
    roles: dict[str, RankRole] = {}
    for s in stmts:
        for v in s.variables:
            r = v.upper()
            if r in mc.partitions:
                ext = mc.partitions[r].extents[-1]
                roles[v] = RankRole(r, "unit" if ext == 1 else "tile", mc.partitions[r].names[-1], ext)
            elif r in split_outer and (r in loops or r in grid):
                roles[v] = RankRole(split_outer[r], "loop", r, None)
            elif r in split_outer:  # not a loop here: a block over all of it (FlashDecoding's combine)
                roles[v] = RankRole(r, "tile", r, None)
            elif r in split_inner and r in grid:
                roles[v] = RankRole(split_inner[r], "loop", r, None)
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
    return KernelPlan(group, index, tuple(grid), grid_span, tuple(loops), roles, order, accumulate)


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
