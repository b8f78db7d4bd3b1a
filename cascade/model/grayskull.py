"""The grid model (Tenstorrent Grayskull): a mapped cascade on a grid of cores -> `CostReport`.

Every fusion group is one program (one kernel launch). Its `spacetime` space ranks that are
loop ranks are spread over the compute cores: one space rank over all of them in order (the
first cores take the remainder, as the dedicated softmax kernel does), two over grid rows and
columns (any further one runs in time); an extent beyond the grid folds, so the slowest core
runs ceil(extent / cores) of them. Per group:

- L1: per core, the on-chip tensors and loaded tiles live at each statement (a `full` rank that
  is spread over cores counts one core's share; a map whose input dies there writes in place);
  a group that does not fit is refused (MappingError naming the group and the overflow).
- compute: each statement's operations (cascade.model.compute) on one core's share, in 32x32 tile
  operations (a tile matmul is 32x32x32 macs) times the target's cycles per tile operation; a
  core's matrix and vector work run one after the other (one RISC-V drives both units).
- NoC: a load whose region does not depend on a space rank is read from DRAM once and multicast
  to the cores along that rank (Q along grid rows and K along grid columns in the fused kernel);
  a reduction over a space rank gathers the partial tiles of the other cores along it, one
  awaited remote read each (the row max and row sum exchange).
- DRAM: the executor's exact traffic (`dram_traffic`), after multicast sharing, interleaved
  over the banks at the target's achieved bandwidth.
- time: a core's iterations form a pipeline: the first iteration's loads (fill), then
  max(compute + exchange of the slowest core, the remaining DRAM time, multicast time), then the
  last iteration's stores (drain); one iteration per core overlaps nothing. The kernel time is
  the sum over groups; `latency_s` adds the host dispatch of every program.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import MappingError, TargetError
from ..mapping.schedule import Group, Load, MappedCascade
from .compute import point_ops, statement_ops
from .footprint import load_elements
from .spatial import CostReport
from .target import Target
from .traffic import _Counter, dram_traffic


@dataclass(frozen=True)
class Grid:
    """The `grid:` section of a grid target (validated by cascade.model.target)."""

    shape: tuple[int, int]
    compute: tuple[int, int]
    l1_bytes: int
    tile: tuple[int, int]
    dram_banks: int
    dram_efficiency: float
    noc_count: int
    noc_core_bandwidth: float
    round_trip_cycles: float
    tile_cycles: dict[str, dict[str, float]]
    reduce_tile_cycles: dict[str, dict[str, float]]
    dispatch_s: float

    @property
    def cores(self) -> int:
        return self.compute[0] * self.compute[1]

    @property
    def tile_elements(self) -> int:
        return self.tile[0] * self.tile[1]


def grid_of(target: Target) -> Grid:
    g = target.extra.get("grid")
    if target.kind != "grid" or not isinstance(g, dict):
        raise TargetError(f"{target.file}: target {target.name} is not a grid target (kind: grid, with 'grid:')")
    noc = g["noc"]
    return Grid(tuple(g["shape"]), tuple(g["compute"]), int(g["l1_bytes"]), tuple(g["tile"]),
                int(g["dram_banks"]), float(g["dram_efficiency"]), int(noc["count"]),
                float(noc["core_bandwidth_bytes_per_s"]), float(noc["round_trip_cycles"]),
                {u: {k: float(v) for k, v in c.items()} for u, c in g["tile_cycles"].items()},
                {u: {k: float(v) for k, v in c.items()} for u, c in (g.get("reduce_tile_cycles") or {}).items()},
                float(g.get("dispatch_s", 0.0)))


@dataclass(frozen=True)
class Placement:
    """How a group's space ranks spread over the cores: rank r of extent e on d cores folds
    ceil(e/d) times; the slowest core (the first) runs every fold."""

    ranks: tuple[str, ...]
    extents: tuple[int, ...]
    dims: tuple[int, ...]
    grid_cols: int

    def fold(self, r: str) -> int:
        i = self.ranks.index(r)
        return -(-self.extents[i] // self.dims[i])

    def spread(self, r: str) -> int:
        i = self.ranks.index(r)
        return min(self.extents[i], self.dims[i])

    @property
    def cores(self) -> int:
        return math.prod(self.spread(r) for r in self.ranks)

    @property
    def grid_used(self) -> tuple[int, int]:
        if len(self.ranks) == 1:
            used = self.spread(self.ranks[0])
            return -(-used // self.grid_cols), min(used, self.grid_cols)
        if len(self.ranks) >= 2:
            return self.spread(self.ranks[0]), self.spread(self.ranks[1])
        return 1, 1


def estimate_grid(mc: MappedCascade, target: Target, groups: Iterable[str | int] | None = None) -> CostReport:
    """Cost of a mapped cascade on a grid target; `groups` (names such as 'GM+SN+SD+A' or
    indices) restricts the estimate to some programs, e.g. one kernel measured alone."""
    from ..mapping.variants import refuse_variants

    refuse_variants(mc, "the grid (Grayskull) model")
    return _GridModel(mc, target).report(_selected(mc, groups))


def _selected(mc: MappedCascade, groups: Iterable[str | int] | None) -> list[int]:
    if groups is None:
        return list(range(len(mc.groups)))
    names = [g.name for g in mc.groups]
    out = []
    for g in groups:
        if isinstance(g, int) and 0 <= g < len(names):
            out.append(g)
        elif g in names:
            out.append(names.index(g))
        else:
            raise MappingError(f"{mc.mapping.file}: no fusion group {g!r}: the groups are {', '.join(names)}")
    return out


class _GridModel:
    def __init__(self, mc: MappedCascade, target: Target):
        self.mc, self.target, self.grid = mc, target, grid_of(target)
        self.sem = mc.semantics
        self.word = target.word_bytes
        self.traffic = dram_traffic(mc)
        self.counter = _Counter(mc)
        table = _Counter(mc)
        table.symbols.update(self.traffic.symbols)
        table.values.update(self.traffic.values)
        self.ops = {so.statement: so for so in statement_ops(mc, target, table)}
        self.subs = table.substitutions()
        self.level_owner = {n: p.rank for p in mc.partitions.values() for n in p.names}
        self.level_owner.update({outer: rank for rank, (outer, _) in self.sem.splits.items()})
        self.part_parent = {part: rank for rank, parts in self.sem.splits.items() for part in parts}

    def num(self, expr: Any) -> float:
        return float(expr.subs(self.subs)) if hasattr(expr, "subs") else float(expr)

    def count(self, axes, tensor: str, path: tuple[int, ...]) -> float:
        expr = self.counter.count(axes, tensor, path)
        return float(expr.subs(self.counter.substitutions())) if hasattr(expr, "subs") else float(expr)

    def path_ranks(self, k: int) -> list[str]:
        return [self.mc.loop_of[lid] for lid in self.mc.paths[k]]

    # ------------------------------------------------------------ placement
    def place(self, group: Group) -> Placement:
        loops = set(group.loop_ranks)
        ranks: list[str] = []
        for k in group.statements:
            info = self.sem.statements[k]
            if info.is_init:
                continue
            mine = set(self.path_ranks(k))
            for r in self.mc.mapping.spacetime_for(info.name).space:
                if r in loops and r in mine and r not in ranks:
                    ranks.append(r)
        g = self.grid
        dims = (g.cores,) if len(ranks) == 1 else (g.compute[0], g.compute[1]) + (1,) * max(0, len(ranks) - 2)
        return Placement(tuple(ranks), tuple(self.mc.shapes[r] for r in ranks), dims[: len(ranks)], g.compute[1])

    # ------------------------------------------------------------ per-core sizes
    def core_axis(self, rank: str, kind: str, pl: Placement, level: str | None = None) -> int:
        mc = self.mc
        if kind in ("point", "ring", "const"):
            return 1
        if rank in mc.partitions:
            p = mc.partitions[rank]
            if kind in ("tile", "dram"):
                return min(p.spans[-2], mc.shapes[rank])
            if kind == "part" and level is not None:
                return min(p.spans[p.names.index(level)], mc.shapes[rank])
            n = math.prod(pl.fold(lv) if lv in pl.ranks else e for lv, e in zip(p.names, p.extents))
            return min(n, mc.shapes[rank])
        if rank in self.sem.splits:
            outer, inner = self.sem.splits[rank]
            if outer in pl.ranks:
                return min(pl.fold(outer) * mc.shapes[inner], mc.shapes[rank])
        return mc.shapes[rank]

    def tensor_elements(self, tensor: str, pl: Placement) -> int:
        st = self.mc.storage[tensor]
        parts = dict(st.parts)
        n = math.prod(self.core_axis(r, kind, pl, parts.get(r))
                      for r, kind in zip(self.sem.tensors[tensor].ranks, st.axes))
        return n * (2 if "ring" in st.axes else 1)

    def tiles(self, tensor: str, pl: Placement) -> int:
        st = self.mc.storage[tensor]
        dims = [self.core_axis(r, kind, pl, dict(st.parts).get(r))
                for r, kind in zip(self.sem.tensors[tensor].ranks, st.axes)]
        t0, t1 = self.grid.tile
        if not dims:
            return 1
        if len(dims) == 1:
            return -(-dims[0] // t0)
        return math.prod(dims[:-2]) * -(-dims[-2] // t0) * -(-dims[-1] // t1)

    # ------------------------------------------------------------ L1
    def footprint(self, group: Group, pl: Placement) -> tuple[int, dict[str, int]]:
        """The most L1 one core needs at any statement of the group (bytes) and what is live then.
        Items are the group's on-chip tensors (live from their first write to their last read)
        and its DRAM loads (live over the statements that read them)."""
        order = list(group.statements)
        items: list[list] = []  # [label, tensor, start, end, bytes]
        for p, k in enumerate(order):
            name = self.sem.statements[k].name
            if not self.mc.storage[name].dram and all(it[1] != name or "loaded" in it[0] for it in items):
                last = max([q for q, j in enumerate(order) if any(r.access.tensor == name
                                                                   for r in self.sem.statements[j].reads)] + [p])
                items.append([name, name, p, last, self.tensor_elements(name, pl) * self.word])
        for ld in self.mc.loads:
            if ld.statements[0] in group.statements:
                ps = [order.index(k) for k in ld.statements]
                items.append([f"{ld.tensor} (loaded)", ld.tensor, min(ps), max(ps),
                              load_elements(self.mc, ld) * self.word])
        best: int = 0
        live_best: dict[str, int] = {}
        for p, k in enumerate(order):
            info = self.sem.statements[k]
            live = [it for it in items if it[2] <= p <= it[3]]
            size = sum(it[4] for it in live)
            out = next((it for it in live if it[0] == info.name and it[2] == p), None)
            reads = {r.access.tensor for r in info.reads}
            if out and not info.is_init and not info.reduced and any(
                    it is not out and it[1] in reads and it[3] == p and it[4] >= out[4] for it in live):
                size -= out[4]  # a map writes in place of an input that dies here
                live = [it for it in live if it is not out]
            if size > best:
                best, live_best = size, {}
                for it in live:
                    live_best[it[0]] = live_best.get(it[0], 0) + it[4]
        if best > self.grid.l1_bytes:
            what = ", ".join(f"{n} {b / 2**20:.2f} MiB" for n, b in sorted(live_best.items(), key=lambda x: -x[1]))
            raise MappingError(
                f"{self.mc.mapping.file}: group {group.name} needs {best / 2**20:.2f} MiB of L1 per core ({what}), "
                f"but a {self.target.name} core has {self.grid.l1_bytes / 2**20:.2f} MiB "
                f"(over by {(best - self.grid.l1_bytes) / 2**20:.2f} MiB): use smaller tiles over more cores, "
                "or split the fusion group")
        return best, live_best

    # ------------------------------------------------------------ compute and exchange
    def compute(self, group: Group, pl: Placement) -> tuple[dict[str, float], dict[str, dict[str, float]], float, int]:
        """Slowest-core cycles per unit, total operations per unit and kind, and the row
        exchange (cycles, remote tile reads) of the group."""
        g = self.grid
        cycles: dict[str, float] = {}
        totals: dict[str, dict[str, float]] = {}
        exchange_reads = 0
        for k in group.statements:
            so = self.ops.get(k)
            if so is None:
                continue
            info = self.sem.statements[k]
            ranks = self.path_ranks(k)
            share = math.prod(pl.fold(r) / self.mc.shapes[r] for r in pl.ranks if r in ranks)
            points = self.num(so.points)
            mapped = point_ops(info.statement, info.reduce_op, False, self.target)  # without the reduction
            contraction = bool(info.reduced) and info.reduce_op == "sum" and dict(mapped) == {"mac": 1}
            for kind, expr in so.ops.items():
                n = self.num(expr)
                unit_totals = totals.setdefault(so.unit, {})
                unit_totals[kind] = unit_totals.get(kind, 0.0) + n
                cost = g.tile_cycles[so.unit][kind]
                if contraction:  # a tile matmul: tile x tile x tile macs
                    c = n * cost / (g.tile_elements * g.tile[1])
                else:
                    reduce_n = n - points * mapped.get(kind, 0)
                    rcost = g.reduce_tile_cycles.get(so.unit, {}).get(kind, cost)
                    c = ((n - reduce_n) * cost + reduce_n * rcost) / g.tile_elements
                cycles[so.unit] = cycles.get(so.unit, 0.0) + c * share
            exchange_reads += self.exchange(info, ranks, pl)
        return cycles, totals, exchange_reads * g.round_trip_cycles, exchange_reads

    def exchange(self, info, ranks: list[str], pl: Placement) -> int:
        """Remote tile reads of one core for a reduction over a space rank (partials gathered)."""
        reduced = {v.upper() for v in info.reduced}
        reads = 0
        for r in pl.ranks:
            if r not in ranks or self.level_owner.get(r, r) not in reduced or pl.spread(r) < 2:
                continue
            others = pl.spread(r) - 1
            iterations = math.prod(pl.fold(q) if q in pl.ranks else self.mc.shapes[q] for q in ranks if q != r)
            reads += others * self.tiles(info.name, pl) * iterations
        return reads

    # ------------------------------------------------------------ DRAM and multicast
    def region_ranks(self, load: Load) -> set[str]:
        out = set()
        for axis in load.axes:
            if axis.kind not in ("const", "last"):
                out.add(self.part_parent.get(axis.rank, axis.rank))
        return out

    def transfers(self, gi: int, group: Group, pl: Placement, common: list[int]) -> dict[str, float]:
        mc, word = self.mc, self.word
        first_loop = common[0] if common else None
        out = {k: 0.0 for k in ("load_top", "load_loop", "store_top", "store_loop", "multicast", "multicast_core")}
        loaded: dict[str, float] = {}
        for ld in mc.loads:
            if ld.statements[0] not in group.statements:
                continue
            n = self.count(ld.axes, ld.tensor, ld.path) * word
            loaded[ld.tensor] = loaded.get(ld.tensor, 0.0) + n
            deps = self.region_ranks(ld)
            shared = [r for r in pl.ranks if self.level_owner.get(r, r) not in deps]
            in_path = {mc.loop_of[lid] for lid in ld.path}
            dram = n * math.prod(pl.fold(r) / mc.shapes[r] for r in shared if r in in_path)
            receivers = math.prod(pl.spread(r) for r in shared)
            if receivers > 1:
                out["multicast"] += dram * (receivers - 1)
                out["multicast_core"] += dram * receivers / pl.cores
            top = first_loop is None and not ld.path or first_loop is not None and first_loop not in ld.path
            out["load_top" if top else "load_loop"] += dram
        for (g, tensor, direction), expr in self.traffic.by_group.items():
            if g != gi:
                continue
            n = self.num(expr) * word
            if direction == "read":  # read-modify-write of a tensor the group accumulates in DRAM
                out["load_loop"] += max(0.0, n - loaded.get(tensor, 0.0))
                continue
            for k in group.statements:
                info = self.sem.statements[k]
                if info.name != tensor:
                    continue
                path = mc.paths[k]
                m = self.count(info.write.axes, tensor, path) * word
                top = first_loop is None and not path or first_loop is not None and first_loop not in path
                out["store_top" if top else "store_loop"] += m
        return out

    # ------------------------------------------------------------ one group
    def group(self, gi: int) -> dict[str, Any]:
        mc, g, target = self.mc, self.grid, self.target
        group = mc.groups[gi]
        pl = self.place(group)
        l1, live = self.footprint(group, pl)
        cycles, totals, exchange_cycles, exchange_reads = self.compute(group, pl)
        paths = [mc.paths[k] for k in group.statements if not self.sem.statements[k].is_init]
        common: list[int] = []
        for lids in zip(*paths):
            if len(set(lids)) != 1:
                break
            common.append(lids[0])
        common_ranks = [mc.loop_of[lid] for lid in common]
        time_iters = math.prod(mc.shapes[r] for r in common_ranks if r not in pl.ranks)
        space = [r for r in pl.ranks if r in common_ranks]
        points = math.prod(mc.shapes[r] for r in space) * time_iters
        first = math.prod(pl.spread(r) for r in space)
        last = math.prod(mc.shapes[r] - (pl.fold(r) - 1) * pl.spread(r) for r in space)
        iterations = time_iters * math.prod(pl.fold(r) for r in space)
        tr = self.transfers(gi, group, pl, common)
        bandwidth = target.dram_bandwidth * g.dram_efficiency
        device_bytes = tr["load_top"] + tr["load_loop"] + tr["store_top"] + tr["store_loop"]
        dram_s = device_bytes / bandwidth
        fill_s = (tr["load_top"] + tr["load_loop"] * first / points) / bandwidth
        drain_s = (tr["store_top"] + tr["store_loop"] * last / points) / bandwidth
        rest_s = max(0.0, dram_s - fill_s - drain_s)
        compute_s = sum(cycles.values()) / target.clock_hz
        exchange_s = exchange_cycles / target.clock_hz
        multicast_s = tr["multicast_core"] / g.noc_core_bandwidth
        kernel_s = fill_s + max(compute_s + exchange_s, rest_s, multicast_s) + drain_s
        bound = ("noc" if multicast_s > max(compute_s + exchange_s, rest_s)
                 else "memory" if dram_s >= compute_s + exchange_s else "compute")
        trace_bytes = sum(self.num(e) * self.word for (q, _, _), e in self.traffic.by_group.items() if q == gi)
        return {
            "group": group.name, "cores": pl.cores, "grid": list(pl.grid_used),
            "space": {r: {"extent": mc.shapes[r], "cores": pl.spread(r), "per_core": pl.fold(r)} for r in pl.ranks},
            "iterations_per_core": iterations, "slowest_core": [0, 0],
            "l1_bytes_per_core": l1, "l1_live_at_peak": live,
            "dram_bytes": trace_bytes, "dram_device_bytes": device_bytes,
            "dram_bytes_per_bank": device_bytes / g.dram_banks,
            "noc_multicast_bytes": tr["multicast"], "noc_exchange_bytes": exchange_reads * pl.cores * g.tile_elements
            * self.word, "noc_remote_reads_per_core": exchange_reads,
            "unit_cycles": cycles, "unit_ops": totals,
            "compute_s": compute_s, "exchange_s": exchange_s, "multicast_s": multicast_s,
            "noc_s": exchange_s + multicast_s, "memory_s": dram_s, "fill_s": fill_s, "drain_s": drain_s,
            "kernel_s": kernel_s, "dispatch_s": g.dispatch_s, "latency_s": kernel_s + g.dispatch_s, "bound": bound,
        }

    def report(self, selected: list[int]) -> CostReport:
        groups = [self.group(gi) for gi in selected]
        per_tensor: dict[str, dict[str, float]] = {}
        for (gi, tensor, direction), expr in self.traffic.by_group.items():
            if gi in selected:
                entry = per_tensor.setdefault(tensor, {"read_bytes": 0.0, "write_bytes": 0.0})
                entry[f"{direction}_bytes"] += self.num(expr) * self.word
        kernel = sum(g["kernel_s"] for g in groups)
        latency = sum(g["latency_s"] for g in groups)
        per_unit: dict[str, dict[str, Any]] = {}
        for u in self.target.units:
            cyc = sum(g["unit_cycles"].get(u, 0.0) for g in groups)
            ops: dict[str, float] = {}
            for g in groups:
                for kind, n in g["unit_ops"].get(u, {}).items():
                    ops[kind] = ops.get(kind, 0.0) + n
            busy = kernel * self.target.clock_hz
            per_unit[u] = {"ops": ops, "cycles": cyc, "utilization": cyc / busy if busy else 0.0}
        bounds = {b: sum(g["kernel_s"] for g in groups if g["bound"] == b) for b in ("compute", "memory", "noc")}
        reads = sum(t["read_bytes"] for t in per_tensor.values())
        writes = sum(t["write_bytes"] for t in per_tensor.values())
        extra = {"kernel_s": kernel, "dispatch_s": latency - kernel, "programs": len(groups),
                 "cores": max((g["cores"] for g in groups), default=0),
                 "l1_bytes_per_core": max((g["l1_bytes_per_core"] for g in groups), default=0),
                 "dram_device_bytes": sum(g["dram_device_bytes"] for g in groups),
                 "noc_multicast_bytes": sum(g["noc_multicast_bytes"] for g in groups),
                 "noc_exchange_bytes": sum(g["noc_exchange_bytes"] for g in groups)}
        return CostReport(self.sem.cascade.name, self.target.name, dict(self.mc.shapes), reads, writes, latency,
                          max(bounds, key=lambda b: bounds[b]) if groups else "compute", per_tensor, per_unit,
                          groups, {}, float(extra["l1_bytes_per_core"]), None, extra)
