"""`bind_mapping`: a checked cascade + a `Mapping` -> a `MappedCascade` of loop trees.

The mapping never changes what is computed. Binding resolves rank levels (a partitioned rank
`P: [uniform_shape(256), uniform_shape(64)]` becomes loops P2, P1 over tiles of P0 = 64), groups
statements (fusion groups; a recurrence and its `init` always share one group), orders each
group's loops, and builds its loop tree:

- *loop ranks* run as Python loops: outer levels of mapping partitions, outer parts of the
  cascade's own splits (M1 of `split M = M1 * M0`) and the iterative rank of every recurrence
  in the group; every other rank is a *tile* rank, computed whole by NumPy;
- statements are placed in group order; a statement joins the open loop of a rank unless it
  reads something that loop has not finished (a reduction over the rank, or a fixed-coordinate
  read such as `RNV[M1, f, p]`): then the loop closes and a new one opens (the pass boundary);
  an Einsum whose own `loop-order` entry puts two loops the other way round from the default
  runs its own nest, after the group's loops it does not share (FLAT's AV pass by pass after
  its block's softmax);
- every tensor gets a storage form: `dram` (inputs, outputs, and intermediates read by
  another group), or on chip: per axis `tile` (the current tile of that rank), `full` (the whole
  rank, kept across loop instances), `point` (one coordinate of a loop rank) or `ring` (the
  current and previous element of a recurrence); `part` keeps the tile of an outer partition
  level (P2 of P -> P2, P1, P0) across the inner loops;
- every read of a DRAM tensor the group does not write becomes a `Load` at the innermost loop
  its region depends on (kept on chip across the loops inside), unless the mapping's `reload`
  names loops the tensor is not kept across: then it is loaded anew inside the innermost of them;
  `keep` names loops of a partition it stays on chip across: the load moves above the outermost
  of them and covers what they cover (the outer level's tile, or the whole rank).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import MappingError
from ..lang import ir
from ..lang.semantics import AccessInfo, AxisCoord, Semantics, StatementInfo
from .accumulate import accumulator_places
from .mapping_file import Mapping


@dataclass(frozen=True)
class Partition:
    """Mapping levels of one rank, outermost first: names ('P2','P1','P0'), spans in elements
    of one step of each level (256, 64, 1) and extents (ceil(P/256), 4, 64)."""

    rank: str
    names: tuple[str, ...]
    spans: tuple[int, ...]
    extents: tuple[int, ...]


@dataclass
class Loop:
    rank: str
    body: list = field(default_factory=list)
    id: int = 0


@dataclass
class Leaf:
    statement: int  # index into Semantics.statements


@dataclass(frozen=True)
class Storage:
    tensor: str
    dram: bool
    axes: tuple[str, ...]  # per tensor axis: 'dram' | 'tile' | 'part' | 'full' | 'point' | 'ring'
    scope: int  # id of the innermost loop enclosing every access (0: the group's top)
    parts: tuple[tuple[str, str], ...] = ()  # for 'part' axes: (rank, the partition level whose tile it spans)


FULL = "*"  # a Load's widen level: the whole rank (a `keep` over a partition's outermost level)


@dataclass(frozen=True)
class Load:
    """One read of a DRAM-resident tensor region. A tensor the group does not write is loaded at
    the top of the innermost loop its region depends on (`anchor`, a loop id; 0 for the group's
    top), once for every statement of that loop instance that reads the same region; a tensor
    the group writes itself is read where each statement reads it (`hoisted` False)."""

    tensor: str
    axes: tuple[AxisCoord, ...]
    anchor: int
    path: tuple[int, ...]  # the loops enclosing the load
    statements: tuple[int, ...]
    hoisted: bool
    widen: tuple[tuple[str, str], ...] = ()  # (partitioned rank, level): the load covers that level's tile (FULL: all)


@dataclass(frozen=True)
class Group:
    name: str
    statements: tuple[int, ...]
    loop_ranks: tuple[str, ...]
    tree: tuple  # top-level nodes (Loop | Leaf)


@dataclass(frozen=True)
class MappedCascade:
    semantics: Semantics
    mapping: Mapping
    shapes: dict[str, int]
    partitions: dict[str, Partition]
    groups: tuple[Group, ...]
    storage: dict[str, Storage]
    paths: dict[int, tuple[int, ...]]  # statement -> ids of its enclosing loops
    loop_of: dict[int, str]  # loop id -> rank
    loads: tuple[Load, ...] = ()
    accumulators: dict[int, str] = field(default_factory=dict)  # statement -> 'on-chip' | 'dram' (accumulate.py)
    # fusion groups (indices into `groups`) that run under their own partitioning, each set with the
    # binding of the whole cascade under it (`cascade.mapping.variants`); every other group is this one's
    variants: tuple[tuple[tuple[int, ...], "MappedCascade"], ...] = ()

    def owner(self, group: int) -> "MappedCascade":
        """The binding whose loop nest fusion group `group` runs (this one unless it has its own partitioning)."""
        return next((mc for groups, mc in self.variants if group in groups), self)

    def bindings(self) -> list[tuple["MappedCascade", tuple[int, ...]]]:
        """Each binding with the fusion groups it runs: this one first, then the variants."""
        own = {gi for groups, _ in self.variants for gi in groups}
        base = tuple(gi for gi in range(len(self.groups)) if gi not in own)
        return [(self, base), *((mc, groups) for groups, mc in self.variants)]

    def load_for(self, statement: int, axes: tuple[AxisCoord, ...], tensor: str) -> Load | None:
        for load in self.loads:
            if load.tensor == tensor and load.axes == axes and statement in load.statements:
                return load
        return None

    def group_of(self, statement: int) -> Group:
        return next(g for g in self.groups if statement in g.statements)

    def overlap_sets(self) -> list[tuple[int, ...]]:
        """Indices of fusion groups that run concurrently (the mapping's `overlap`), each group in
        one set, a group not listed alone, in the order of their first group."""
        index = {self.semantics.statements[k].name: gi for gi, g in enumerate(self.groups) for k in g.statements}
        sets = [tuple(sorted({index[name] for name in names})) for names in self.mapping.overlap]
        listed = {gi for s in sets for gi in s}
        sets += [(gi,) for gi in range(len(self.groups)) if gi not in listed]
        return sorted(sets, key=min)


def default_mapping() -> Mapping:
    return Mapping()


def bind_mapping(sem: Semantics, mapping: Mapping, shapes: dict[str, int]) -> MappedCascade:
    if mapping.einsum_partitioning:  # some fusion groups partition ranks their own way
        from .variants import bind_variants

        return bind_variants(sem, mapping, shapes, lambda m: _Binder(sem, m, shapes).bind(),
                             _Binder(sem, mapping, shapes).groups())
    return _Binder(sem, mapping, shapes).bind()


class _Binder:
    def __init__(self, sem: Semantics, mapping: Mapping, shapes: dict[str, int]):
        self.sem, self.m, self.shapes = sem, mapping, dict(shapes)
        self.own_order: dict[int, list[str]] = {}  # statement -> its own loop order (`departs`)
        self.where = mapping.file
        self.names = {s.name for s in sem.statements if not s.is_init}
        self.var_ranks = {v.upper() for s in sem.statements for v in s.variables}

    def fail(self, key: str, message: str) -> None:
        raise MappingError(f"{self.where}: {key}: {message}")

    # ---------------------------------------------------------------- levels
    def partitions(self) -> dict[str, Partition]:
        out: dict[str, Partition] = {}
        iterative = {t.iterative for t in self.sem.tensors.values() if t.iterative}
        split_parts = {p: r for r, parts in self.sem.splits.items() for p in parts}
        for rank, tiles in self.m.partitioning.items():
            key = f"partitioning.{rank}"
            if rank in iterative:
                writers = sorted(t.name for t in self.sem.tensors.values() if t.iterative == rank)
                self.fail(key, f"{rank} is the iterative rank of recurrence {', '.join(writers)}, which advances "
                               "one coordinate at a time: split the rank in the cascade ('split' line) and recur "
                               "over its outer part instead")
            if rank in self.sem.fixed_splits():
                inner = self.sem.splits[rank][1]
                if tiles != (self.shapes[inner],):
                    self.fail(key, f"{self.sem.fixed_split_reason(rank)}: a mapping cannot re-partition {rank} "
                                   f"(it would change {inner} = {self.shapes[inner]} and so what is computed); "
                                   f"drop partitioning.{rank}, or tile another rank")
                continue
            if rank in self.sem.splits:
                outer, inner = self.sem.splits[rank]
                if len(tiles) != 1:
                    self.fail(key, f"the cascade already splits {rank} = {outer} * {inner}: give one level, "
                                   f"[uniform_shape(N)], which sets {inner}")
                self.shapes[inner] = tiles[0]
                self.shapes[outer] = -(-self.shapes[rank] // tiles[0])
                continue
            if rank in split_parts:
                self.fail(key, f"{rank} is part of 'split {split_parts[rank]}'; partition {split_parts[rank]} instead")
            if rank not in self.shapes:
                known = sorted(r for r in self.shapes if r in self.var_ranks)
                self.fail(key, f"unknown rank {rank}: the cascade's ranks are {', '.join(known)}")
            size = self.shapes[rank]
            k = len(tiles)
            names = tuple(f"{rank}{k - j}" for j in range(k + 1))
            for n in names:
                if n in self.shapes:
                    self.fail(key, f"splitting {rank} would name a level {n}, which is already a rank")
            spans = tiles + (1,)
            extents = (-(-size // tiles[0]),) + tuple(a // b for a, b in zip(tiles, tiles[1:])) + (tiles[-1],)
            out[rank] = Partition(rank, names, spans, extents)
        return out

    def mapped_ranks(self, info: StatementInfo) -> list[str]:
        """The ranks a statement's loop order must list: partitioned ranks as their levels."""
        out: list[str] = []
        for v in info.variables:
            r = v.upper()
            out.extend(self.parts[r].names if r in self.parts else (r,))
        return out

    # ---------------------------------------------------------------- groups
    def groups(self) -> list[list[int]]:
        sem = self.sem
        order = [k for step in sem.steps for k in step.statements]
        index_of = {s.name: k for k, s in enumerate(sem.statements) if not s.is_init}
        group_id: dict[int, int] = {}
        for gi, group in enumerate(self.m.fusion):
            for name in group:
                if name not in index_of:
                    self.fail(f"fusion[{gi}]", f"unknown Einsum {name}: the Einsums are {', '.join(sorted(index_of))}")
                group_id[index_of[name]] = gi
        next_id = len(self.m.fusion)
        for step in sem.steps:  # recurrence groups and inits stay with their recurrence
            einsums = [k for k in step.statements if not sem.statements[k].is_init]
            ids = {group_id[k] for k in einsums if k in group_id}
            if len(ids) > 1 or (ids and len(ids) == 1 and any(k not in group_id for k in einsums)):
                names = ", ".join(sem.statements[k].name for k in einsums)
                self.fail("fusion", f"{names} form a recurrence over {step.variable} and must be in one fusion group")
            gid = ids.pop() if ids else None
            for k in einsums:
                if gid is None:
                    gid = next_id
                    next_id += 1
                group_id[k] = gid
        for k, s in enumerate(sem.statements):
            if s.is_init:
                group_id[k] = group_id[index_of[s.name]]
        members: dict[int, list[int]] = {}
        for k in order:
            members.setdefault(group_id[k], []).append(k)
        self.check_contiguous(members, group_id)
        ordered = sorted(members.values(), key=lambda ks: min(order.index(k) for k in ks))
        return [self.hoist_inits(ks) for ks in self.topological_groups(ordered, group_id)]

    def dependencies(self) -> list[tuple[int, int]]:
        from ..lang.order import dependency_edges

        return [(a, b) for a, b, _ in dependency_edges(self.sem.statements, self.sem.tensors)]

    def check_contiguous(self, members: dict[int, list[int]], group_id: dict[int, int]) -> None:
        edges = {(group_id[a], group_id[b]) for a, b in self.dependencies() if group_id[a] != group_id[b]}
        succ: dict[int, set[int]] = {}
        for a, b in edges:
            succ.setdefault(a, set()).add(b)

        def reach(start: int) -> set[int]:
            seen, stack = set(), list(succ.get(start, ()))
            while stack:
                g = stack.pop()
                if g not in seen:
                    seen.add(g)
                    stack.extend(succ.get(g, ()))
            return seen

        for gi in range(len(self.m.fusion)):
            after = reach(gi)
            if gi in after:
                between = [g for g in after if g != gi and gi in reach(g)]
                names = list(dict.fromkeys(self.sem.statements[k].name for g in sorted(between)
                                           for k in sorted(members.get(g, []))))
                verb = "lies" if len(names) == 1 else "lie"
                self.fail(f"fusion[{gi}]", f"group [{', '.join(self.m.fusion[gi])}] is not contiguous in "
                                           f"dependency order: {', '.join(names)} {verb} between its members; "
                                           f"add {', '.join(names)} to the group or split the group there")

    def topological_groups(self, ordered: list[list[int]], group_id: dict[int, int]) -> list[list[int]]:
        pos = {group_id[ks[0]]: i for i, ks in enumerate(ordered)}
        deps = {(pos[group_id[a]], pos[group_id[b]]) for a, b in self.dependencies() if group_id[a] != group_id[b]}
        done: list[int] = []
        remaining = list(range(len(ordered)))
        while remaining:
            ready = next(g for g in remaining if all(a in done for a, b in deps if b == g))
            done.append(ready)
            remaining.remove(ready)
        return [ordered[g] for g in done]

    def hoist_inits(self, ks: list[int]) -> list[int]:
        """Inits first (they read only what precedes the group), so they sit outside the loops."""
        inits = [k for k in ks if self.sem.statements[k].is_init]
        return inits + [k for k in ks if k not in inits]

    # ---------------------------------------------------------------- loop order
    def loop_ranks(self, ks: list[int]) -> set[str]:
        ranks = {n for p in self.parts.values() for n in p.names[:-1]}
        ranks |= {outer for outer, _ in self.sem.splits.values()}
        for k in ks:
            iterative = self.sem.tensors[self.sem.statements[k].name].iterative
            if iterative and not self.sem.statements[k].is_init:
                ranks.add(iterative)
        return ranks

    def group_order(self, ks: list[int], loop_ranks: set[str]) -> list[str]:
        default = self.m.loop_order.get("default")
        all_mapped = {r for k in ks for r in self.mapped_ranks(self.sem.statements[k])}
        every = {r for s in self.sem.statements for r in self.mapped_ranks(s)}
        if default is not None:
            unknown = [r for r in default if r not in every]
            if unknown:
                self.fail("loop-order.default", f"unknown rank {', '.join(unknown)}: the ranks are "
                                                f"{', '.join(sorted(every))}")
        constraints: list[tuple[str, str]] = []
        first_seen: list[str] = []
        for k in ks:
            info = self.sem.statements[k]
            mine = self.mapped_ranks(info)
            given = self.m.loop_order.get(info.name) if not info.is_init else None
            explicit = given is not None or default is not None
            if given is not None:
                missing = [r for r in mine if r not in given]
                extra = [r for r in given if r not in mine]
                if missing or extra:
                    parts = []
                    if missing:
                        parts.append(f"misses {', '.join(missing)}")
                    if extra:
                        parts.append(f"lists {', '.join(extra)}, which {info.name} does not iterate")
                    self.fail(f"loop-order.{info.name}", f"[{', '.join(given)}] {' and '.join(parts)}; "
                                                         f"{info.name} iterates {', '.join(mine)}")
                if self.departs(info, given, default, loop_ranks):
                    self.own_order[k] = [r for r in given if r in loop_ranks]
                    first_seen.extend(r for r in self.own_order[k] if r not in first_seen)
                    continue
                order = list(given)
            else:
                order = self.complete_order([r for r in (default or ()) if r in mine],
                                            [r for r in mine if r not in (default or ())])
            loops = [r for r in order if r in loop_ranks]
            if explicit:
                constraints.extend((a, b) for a, b in zip(loops, loops[1:])
                                   if given is not None or (a in default and b in default))  # type: ignore[operator]
            first_seen.extend(r for r in loops if r not in first_seen)
        for family in self.split_families():  # a split's loops always nest outermost first
            levels = [r for r in family if r in loop_ranks]
            constraints.extend(zip(levels, levels[1:]))
        result: list[str] = []
        pending = [r for r in first_seen if r in all_mapped]
        while pending:
            ready = [r for r in pending if not any(b == r and a in pending for a, b in constraints)]
            if not ready:
                self.fail("loop-order", f"the Einsums of one fusion group order their loops inconsistently "
                                        f"({', '.join(pending)}): give them one order")
            result.append(ready[0])
            pending.remove(ready[0])
        return result

    def departs(self, info: StatementInfo, given: tuple[str, ...], default, loop_ranks: set[str]) -> bool:
        """Does an Einsum's own loop order put two loops the other way round from the default
        order? Then it runs its own nest: it shares the group's open loops only as far as its
        order agrees with them and opens the rest after them, so everything it reads from the
        group is complete (and held on chip over those loops, as the footprint counts) when it
        starts. A recurrence's iterative rank is never split that way."""
        if default is None:
            return False
        loops = [r for r in given if r in loop_ranks and r in default]
        if not any(default.index(a) > default.index(b) for a, b in zip(loops, loops[1:])):
            return False
        iterative = {t.iterative for t in self.sem.tensors.values() if t.iterative}
        clash = [r for r in loops if r in iterative]
        if clash:
            self.fail(f"loop-order.{info.name}", f"[{', '.join(given)}] orders its loops unlike loop-order.default, "
                                                 f"but {', '.join(clash)} is a recurrence's iterative rank, which "
                                                 f"one nest must run: order {info.name}'s loops as the default does")
        return True

    def split_families(self) -> list[tuple[str, ...]]:
        """The levels of every split, outermost first: mapping partitions and the cascade's own splits."""
        return [tuple(p.names) for p in self.parts.values()] + [tuple(pair) for pair in self.sem.splits.values()]

    def complete_order(self, listed: list[str], omitted: list[str]) -> list[str]:
        """A default loop order completed with the ranks it leaves out: an omitted level of a split
        goes just before the outermost listed level inside it (its tiles lie inside its own, so it
        must run outside them); any other omitted rank goes last, as before. Then the levels of
        each split hold the places they take in nesting order (listed outer levels out of order
        are refused by `check_names`; this fixes only omitted and innermost levels)."""
        families = self.split_families()
        order = list(listed)
        for rank in omitted:
            inner = next((f[f.index(rank) + 1:] for f in families if rank in f[:-1]), ())
            spot = next((i for i, r in enumerate(order) if r in inner), None)
            if spot is None:
                order.append(rank)
            else:
                order.insert(spot, rank)
        for family in families:  # the places a split's levels take hold them outermost first
            slots = [i for i, r in enumerate(order) if r in family]
            for i, r in zip(slots, [r for r in family if r in order]):
                order[i] = r
        return order

    # ---------------------------------------------------------------- loop trees
    def statement_loops(self, info: StatementInfo, order: list[str], k: int | None = None) -> list[str]:
        """The group's loops a statement runs inside: exactly those it iterates, in group order
        (a statement is never repeated by a loop it does not iterate), or in its own order where
        that departs from the default (`departs`)."""
        own = self.own_order.get(k)
        if own is not None:
            return list(own)
        mine = set(self.mapped_ranks(info))
        return [r for r in order if r in mine]

    def barrier(self, info: StatementInfo, loop: Loop, written_in: dict[str, tuple[int, ...]]) -> bool:
        """Must `info` wait for `loop` to finish before it can run?"""
        for read in info.reads:
            tensor = read.access.tensor
            if loop.id not in written_in.get(tensor, ()):
                continue
            if not self.same_iteration(read, loop.rank):
                return True
        return False

    def same_iteration(self, read: AccessInfo, loop_rank: str) -> bool:
        """Does this read need only what the writer produced in the current iteration?"""
        owner = next((p.rank for p in self.parts.values() if loop_rank in p.names), None)
        rank = owner or loop_rank
        for axis in read.axes:
            if axis.rank != rank:
                continue
            return axis.kind == "var" and axis.offset in (0, 1)
        return False  # the tensor does not keep the rank: complete only after the loop

    def build_tree(self, ks: list[int], order: list[str]) -> list:
        top: list = []
        stack: list[Loop] = []
        written_in: dict[str, tuple[int, ...]] = {}
        for k in ks:
            info = self.sem.statements[k]
            wanted = self.statement_loops(info, order, k)
            depth = 0
            while (depth < len(stack) and depth < len(wanted) and stack[depth].rank == wanted[depth]
                   and not self.barrier(info, stack[depth], written_in)):
                depth += 1
            del stack[depth:]
            body = stack[-1].body if stack else top
            for rank in wanted[depth:]:
                self.next_loop += 1
                loop = Loop(rank, [], self.next_loop)
                body.append(loop)
                stack.append(loop)
                body = loop.body
                self.loop_of[loop.id] = rank
            body.append(Leaf(k))
            self.paths[k] = tuple(l.id for l in stack)
            written_in[info.name] = tuple(l.id for l in stack)
        return top

    # ---------------------------------------------------------------- storage
    def storage(self, groups: list[Group]) -> dict[str, Storage]:
        sem = self.sem
        group_of = {k: gi for gi, g in enumerate(groups) for k in g.statements}
        out: dict[str, Storage] = {}
        for name, info in sem.tensors.items():
            writers = [k for k, s in enumerate(sem.statements) if s.name == name]
            readers = [k for k, s in enumerate(sem.statements) if any(r.access.tensor == name for r in s.reads)]
            if info.kind != "intermediate" or not writers:
                out[name] = Storage(name, True, ("dram",) * len(info.ranks), 0)
                continue
            if len({group_of[k] for k in writers + readers}) > 1:
                out[name] = Storage(name, True, ("dram",) * len(info.ranks), 0)
                continue
            writer = next(k for k in writers if not sem.statements[k].is_init)
            wpath = self.paths[writer]
            common = list(wpath)
            for k in writers + readers:
                path = self.paths[k]
                n = 0
                while n < len(common) and n < len(path) and common[n] == path[n]:
                    n += 1
                del common[n:]
            axes, parts = [], []
            for rank in info.ranks:
                kind = self.axis_storage(name, rank, info.iterative, wpath, common, readers)
                if kind.startswith("part:"):
                    kind, level = kind.split(":")
                    parts.append((rank, level))
                axes.append(kind)
            out[name] = Storage(name, False, tuple(axes), common[-1] if common else 0, tuple(parts))
        return out

    def loop_for(self, path: tuple[int, ...], rank: str) -> int | None:
        return next((lid for lid in path if self.loop_of[lid] == rank), None)

    def axis_storage(self, tensor, rank, iterative, wpath, common, readers) -> str:
        if rank in self.parts:
            levels = self.parts[rank].names[:-1]
            inside = [n for n in levels if self.loop_for(wpath, n) in common]
            if len(inside) == len(levels):
                return "tile"
            if inside and inside == list(levels[: len(inside)]):
                return f"part:{inside[-1]}"
            return "full"
        lid = self.loop_for(wpath, rank)
        if lid is None:
            return "full"  # a tile rank: the whole rank in every tile
        if lid in common:
            if rank != iterative:
                return "point"
            return "ring" if self.ring_reads_only(tensor, rank, readers) else "full"
        if rank == iterative and self.last_reads_only(tensor, rank, lid, readers):
            return "ring"
        return "full"

    def last_reads_only(self, tensor: str, rank: str, lid: int, readers: list[int]) -> bool:
        for k in readers:
            if lid in self.paths[k]:
                continue
            for read in self.sem.statements[k].reads:
                if read.access.tensor == tensor:
                    axis = next(a for a in read.axes if a.rank == rank)
                    if axis.kind != "last":
                        return False
        return self.ring_reads_only(tensor, rank, readers)

    def ring_reads_only(self, tensor: str, rank: str, readers: list[int]) -> bool:
        """A ring keeps the current and previous element: every read must be one of those."""
        for k in readers:
            for read in self.sem.statements[k].reads:
                if read.access.tensor == tensor:
                    axis = next(a for a in read.axes if a.rank == rank)
                    if not (axis.kind == "last" or (axis.kind == "var" and axis.offset in (0, 1))):
                        return False
        return True

    # ---------------------------------------------------------------- all together
    def bind(self) -> MappedCascade:
        self.parts = self.partitions()
        self.part_of_split = {p: r for r, parts in self.sem.splits.items() for p in parts}
        self.level_owner = {n: p.rank for p in self.parts.values() for n in p.names}
        self.check_names()
        self.next_loop = 0
        self.loop_of: dict[int, str] = {}
        self.paths: dict[int, tuple[int, ...]] = {}
        groups = []
        for ks in self.groups():
            loops = self.loop_ranks(ks)
            order = self.group_order(ks, loops)
            tree = self.build_tree(ks, order)
            names = [self.sem.statements[k].name for k in ks if not self.sem.statements[k].is_init]
            groups.append(Group("+".join(dict.fromkeys(names)), tuple(ks), tuple(order), tuple(tree)))
        for k, level in self.shapes_of_levels().items():
            self.shapes[k] = level
        storage = self.storage(groups)
        self.check_reload(groups, storage)
        self.check_overlap(groups)
        mc = MappedCascade(self.sem, self.m, self.shapes, self.parts, tuple(groups), storage,
                           self.paths, self.loop_of, self.loads(groups, storage))
        return replace(mc, accumulators=accumulator_places(mc))

    # ---------------------------------------------------------------- DRAM loads
    def loads(self, groups: list[Group], storage: dict[str, Storage]) -> tuple[Load, ...]:
        out: list[Load] = []
        for group in groups:
            written = {self.sem.statements[k].name for k in group.statements}
            shared: dict[tuple, int] = {}
            for k in group.statements:
                path = self.paths[k]
                seen: set[tuple] = set()
                for read in self.sem.statements[k].reads:
                    tensor = read.access.tensor
                    if not storage[tensor].dram:
                        continue
                    hoisted = tensor not in written  # loaded at the top of its anchor loop, shared
                    anchor, widen = self.hoist(read, path) if hoisted else (self.anchor(read, path), ())
                    if hoisted and tensor in self.m.reload:
                        anchor, widen = self.reload_anchor(read, path, anchor, widen, self.m.reload[tensor])
                    if hoisted and tensor in self.m.keep:
                        anchor, widen = self.keep_anchor(read, path, anchor, widen, self.m.keep[tensor])
                    key = (tensor, read.axes, widen, anchor if hoisted else ("at", k))
                    if key in seen:
                        continue
                    seen.add(key)
                    if hoisted and key in shared:
                        old = out[shared[key]]
                        out[shared[key]] = Load(old.tensor, old.axes, old.anchor, old.path,
                                                old.statements + (k,), True, old.widen)
                        continue
                    load_path = path[: path.index(anchor) + 1] if hoisted and anchor else (() if hoisted else path)
                    out.append(Load(tensor, read.axes, anchor if hoisted else (path[-1] if path else 0),
                                    load_path, (k,), hoisted, widen))
                    if hoisted:
                        shared[key] = len(out) - 1
        return tuple(out)

    def hoist(self, read: AccessInfo, path: tuple[int, ...]) -> tuple[int, tuple[tuple[str, str], ...]]:
        """Where to load a region the group does not write, and which partitioned ranks it widens.

        Normally at the innermost loop its region depends on. When a loop it does not depend on
        sits between the levels of a partitioned rank (P2, M1, P1), the load moves above that loop
        and covers the outer level's tile instead (FuseMax keeps a block of Q rows on chip while
        the key tiles stream past)."""
        deps = self.region_loops(read)
        dep_positions = [i for i, lid in enumerate(path) if self.loop_of[lid] in deps]
        normal = path[dep_positions[-1]] if dep_positions else 0
        if not dep_positions:
            return normal, ()
        free_above = [i for i, lid in enumerate(path) if self.loop_of[lid] not in deps and i < dep_positions[-1]]
        if not free_above:
            return normal, ()
        escape = max(free_above)
        hard = [i for i in dep_positions if self.loop_of[path[i]] not in self.level_owner]
        if max(hard, default=-1) > escape:
            return normal, ()
        top = max(hard, default=-1)
        widen = []
        for rank, p in self.parts.items():
            levels = [i for i in dep_positions if self.loop_of[path[i]] in p.names[:-1]]
            if not levels or max(levels) < escape:
                top = max([top] + levels)
                continue
            kept = [i for i in levels if i < escape]
            if not kept:
                return normal, ()
            top = max(top, max(kept))
            widen.append((rank, self.loop_of[path[max(kept)]]))
        return (path[top] if top >= 0 else 0), tuple(widen)

    def reload_anchor(self, read: AccessInfo, path: tuple[int, ...], anchor: int,
                      widen: tuple[tuple[str, str], ...], loops: tuple[str, ...]) -> tuple[int, tuple[tuple[str, str], ...]]:
        """Where a load goes when the mapping's `reload` names loops the tensor is not kept across:
        inside the innermost of them on this path, so its tile is loaded anew at each of their
        iterations. Passing only loops the region does not depend on keeps the tile (and its
        widening); passing one it depends on lands at the ordinary anchor or deeper."""
        named = [i for i, lid in enumerate(path) if self.loop_of[lid] in loops]
        here = path.index(anchor) if anchor else -1
        if not named or max(named) <= here:
            return anchor, widen
        deepest = max(named)
        deps = self.region_loops(read)
        dep_positions = [i for i, lid in enumerate(path) if self.loop_of[lid] in deps]
        if all(self.loop_of[path[i]] not in deps for i in range(here + 1, deepest + 1)):
            return path[deepest], widen
        return path[max([deepest] + dep_positions)], ()

    def check_overlap(self, groups: list[Group]) -> None:
        """`overlap` names known Einsums and whole fusion groups."""
        einsums = {self.sem.statements[k].name for g in groups for k in g.statements}
        for i, names in enumerate(self.m.overlap):
            unknown = [n for n in names if n not in einsums]
            if unknown:
                self.fail(f"overlap[{i}]", f"unknown Einsum {unknown[0]}: the Einsums are {', '.join(sorted(einsums))}")
            for g in groups:
                members = list(dict.fromkeys(self.sem.statements[k].name for k in g.statements))
                missing = [n for n in members if n not in names]
                if missing and len(missing) < len(members):
                    self.fail(f"overlap[{i}]", f"lists part of fusion group [{', '.join(members)}] (not "
                                               f"{', '.join(missing)}); list whole fusion groups")

    def keep_anchor(self, read: AccessInfo, path: tuple[int, ...], anchor: int,
                    widen: tuple[tuple[str, str], ...], loops: tuple[str, ...]) -> tuple[int, tuple[tuple[str, str], ...]]:
        """Where a load goes when the mapping's `keep` names loops the tensor stays on chip across:
        above the outermost of them on this path, covering, for each partitioned rank the region
        depends on whose loops it leaves, one tile of the level above the outermost one left
        (`FULL`: the whole rank when that is the partition's outermost level)."""
        named = [i for i, lid in enumerate(path) if self.loop_of[lid] in loops]
        here = path.index(anchor) if anchor else -1
        if not named or min(named) > here:
            return anchor, widen
        top = min(named)
        deps = self.region_loops(read)
        levels = {n for p in self.parts.values() for n in p.names[:-1]}
        stuck = sorted({self.loop_of[lid] for lid in path[top:] if self.loop_of[lid] in deps} - levels)
        if stuck:
            self.fail(f"keep.{read.access.tensor}", f"{read.access.tensor}'s region depends on {', '.join(stuck)} inside "
                                                    f"{self.loop_of[path[top]]}, which is no level of a mapping "
                                                    "partition, so its load cannot be widened over it")
        wider = dict(widen)
        for rank, p in self.parts.items():
            left = [p.names.index(self.loop_of[lid]) for lid in path[top:]
                    if self.loop_of[lid] in p.names[:-1] and self.loop_of[lid] in deps]
            if left:
                outer = min(left)
                wider[rank] = p.names[outer - 1] if outer else FULL
        return (path[top - 1] if top else 0), tuple(sorted(wider.items()))

    def check_reload(self, groups: list[Group], storage: dict[str, Storage]) -> None:
        """`reload` and `keep` name DRAM-resident tensors some group loads, and loops around their
        readers (for `keep`, levels of a partition, as only those can be widened over)."""
        for tensor, loops in self.m.keep.items():
            outer_levels = {n for p in self.parts.values() for n in p.names[:-1]}
            bad = [r for r in loops if r not in outer_levels]
            if bad:
                self.fail(f"keep.{tensor}", f"{', '.join(bad)} is not an outer level of a partitioned rank; "
                                            f"`keep` widens a load over such levels only: "
                                            f"{', '.join(sorted(outer_levels)) or 'none here'}")
        for field_name, tensor, loops in [*(("reload", t, ls) for t, ls in self.m.reload.items()),
                                          *(("keep", t, ls) for t, ls in self.m.keep.items())]:
            key = f"{field_name}.{tensor}"
            if tensor not in self.sem.tensors:
                self.fail(key, f"unknown tensor {tensor}: the tensors are {', '.join(sorted(self.sem.tensors))}")
            if not storage[tensor].dram:
                self.fail(key, f"{tensor} stays on chip (no group loads it from DRAM), so there is nothing to "
                               f"{'re-load' if field_name == 'reload' else 'keep'}; list a tensor read from DRAM")
            readers = [k for g in groups for k in g.statements
                       if tensor not in {self.sem.statements[j].name for j in g.statements}
                       and any(r.access.tensor == tensor for r in self.sem.statements[k].reads)]
            around = {self.loop_of[lid] for k in readers for lid in self.paths[k]}
            unknown = [r for r in loops if r not in around]
            if unknown:
                choices = ", ".join(sorted(around)) or "none: its readers run outside any loop"
                self.fail(key, f"{', '.join(unknown)} is not a loop around a statement that loads {tensor}; "
                               f"the loops there are {choices}")

    def region_loops(self, read: AccessInfo) -> set[str]:
        """The loop ranks a read's region depends on."""
        ranks: set[str] = set()
        for axis in read.axes:
            rank = axis.rank
            if axis.kind in ("const", "last"):
                continue
            if axis.kind == "split":
                ranks.update(self.sem.splits[rank])  # the inner part too, where a recurrence loops over it
            elif axis.kind in ("outer", "inner"):
                owner = next(r for r, parts in self.sem.splits.items() if rank in parts)
                if owner in self.parts:
                    ranks.update(self.parts[owner].names[:-1])
            elif rank in self.parts:
                ranks.update(self.parts[rank].names[:-1])
            elif rank in self.part_of_split:
                ranks.update((self.sem.splits[self.part_of_split[rank]][0], rank))
            else:
                ranks.add(rank)
        return ranks

    def anchor(self, read: AccessInfo, path: tuple[int, ...]) -> int:
        """The innermost enclosing loop (id; 0 for none) that a read's region depends on."""
        deps = self.region_loops(read)
        deepest = 0
        for lid in path:
            if self.loop_of[lid] in deps:
                deepest = lid
        return deepest

    def shapes_of_levels(self) -> dict[str, int]:
        return {n: e for p in self.parts.values() for n, e in zip(p.names, p.extents)}

    def check_names(self) -> None:
        every = {r for s in self.sem.statements for r in self.mapped_ranks(s)}
        for table, key in ((self.m.loop_order, "loop-order"), (self.m.spacetime, "spacetime"),
                           (self.m.binding, "binding"), (self.m.accumulate, "accumulate")):
            for name in table:
                if name != "default" and name not in self.names:
                    self.fail(f"{key}.{name}", f"unknown Einsum {name}: the Einsums are {', '.join(sorted(self.names))}")
        for k, phase in enumerate(self.m.pipeline):
            for name in phase.einsums + ((phase.drain,) if phase.drain else ()):
                if name not in self.names:
                    self.fail(f"pipeline[{k}]", f"unknown Einsum {name}: the Einsums are {', '.join(sorted(self.names))}")
        for name, order in self.m.loop_order.items():  # a level's tiles lie inside the level above
            for p in self.parts.values():
                listed = [level for level in order if level in p.names[:-1]]
                if listed != [level for level in p.names[:-1] if level in listed]:
                    self.fail(f"loop-order.{name}", f"[{', '.join(order)}] lists {', '.join(listed)}: the loops of "
                                                    f"partitioned {p.rank} nest outermost first; list them as "
                                                    f"{', '.join(p.names[:-1])}")
        for name, st in self.m.spacetime.items():
            for r in st.space + st.time:
                if r not in every:
                    self.fail(f"spacetime.{name}", f"unknown rank {r}: the ranks are {', '.join(sorted(every))}")
        for name, ranks in self.m.rank_order.items():
            info = self.sem.tensors.get(name)
            if info is None:
                self.fail(f"rank-order.{name}", f"unknown tensor {name}")
            elif sorted(ranks) != sorted(info.ranks):
                self.fail(f"rank-order.{name}", f"[{', '.join(ranks)}] must list {name}'s ranks "
                                                f"{', '.join(info.ranks)} once each")


def statement_text(stmt: ir.Statement) -> str:
    from ..lang.show import show_statement

    return show_statement(stmt).replace("\n", " ")
