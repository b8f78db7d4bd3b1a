"""The GPU cost model: the time of the kernels the Triton backend generates for a mapping.

A `kind: gpu` target (`specs/targets/h200.yaml`) gives whole-chip rates: tensor-core FLOP/s,
fp32 results/s on the CUDA cores, special-function results/s (exp, log, sqrt, reciprocal) and
DRAM bandwidth. One kernel per fusion group, as the backend emits them; per kernel:

- every statement runs over the padded blocks of its ranks (a tile of 100 runs as 128) and, in a
  loop a filter empties, only over the live tiles (counted exactly, tile by tile, with the rule
  the kernel uses; skipped only when `analysis.absent_step` proves the skip a no-op);
- a contraction the backend makes `tl.dot` is 2 FLOP per point on the tensor cores; every other
  statement costs per point of its block: one fp32 result per + - * max min, a reduction step, a
  filter's compare and select (for bf16 inputs `exp(a - b)` with b broadcast is one multiply-add,
  as the backend emits it); one special-function result and one fp32 multiply per exp, log,
  sqrt and division;
- DRAM moves each input once, each output once and each intermediate between kernels twice (L2,
  60 MB, holds what the programs of a kernel re-read: a head's K and V at N = 64K are 16 MB);
- within a program the tensor cores, the special-function units and the fp32 pipes take turns
  (a FlashAttention-2-style Triton kernel has no warp specialisation to overlap them), so the
  kernel's device time is max((tensor + special + fp32) / busy share, DRAM at its bandwidth) (below);
- the programs run in waves of one program per SM (the grid follows the backend's rule: parallel
  loop ranks, split parts included, `codegen/triton_plan`): a grid of G programs keeps the chip
  busy G / (ceil(G / SMs) * SMs) of the time, so the compute time is divided by that (a decode grid
  of 64 programs on 132 SMs uses half the chip);
- launches: each kernel costs `kernel_overhead_s` more on the device, and the host issues one
  kernel per `launch_overhead_s` (the generated `run`: shapes, allocation, Triton's launcher); the
  first launch overlaps earlier work, so K kernels take max(sum of (device time + kernel
  overhead), (K - 1) * launch overhead + the last kernel's). Both are measured (h200.yaml says where).

Nothing here decides the mapping; the report is a `CostReport` like the spatial model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TargetError
from ..lang import ir
from ..mapping.schedule import Leaf, Loop, MappedCascade
from .spatial import CostReport

_RATES = ("tensor_bf16_flops", "tensor_tf32_flops", "fp32_flops", "fp32_ops", "special_ops")


@dataclass(frozen=True)
class GpuTarget:
    name: str
    sms: int
    clock_hz: float
    dram_bytes_per_s: float
    rates: dict[str, float]
    input_bytes: int
    shared_memory_per_sm_bytes: int
    file: str
    kernel_overhead_s: float = 0.0
    launch_overhead_s: float = 0.0
    dram_per_sm_bytes_per_s: float = 0.0  # one program's streaming rate; 0: no per-program limit


def gpu_target_file(target: str | Path) -> Path | None:
    """The file of a target named or given by path when it is a `kind: gpu` target, else None."""
    from .target import bundled_targets

    path = Path(target)
    if not path.is_file():
        path = bundled_targets().get(str(target), path)
    if not path.is_file():
        return None
    data = _read(path)
    return path if isinstance(data, dict) and data.get("kind") == "gpu" else None


def _read(path: Path) -> Any:
    from ..yaml_text import load_yaml, read_input

    return load_yaml(read_input(path, "target", TargetError), str(path), TargetError)


def load_gpu_target(path: Path) -> GpuTarget:
    data = _read(path)
    problems = []

    def number(where: dict, key: str, prefix: str = "") -> float:
        value = where.get(key) if isinstance(where, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            problems.append(f"{path}: {prefix}{key}: expected a positive number")
            return 1.0
        return float(value)

    def optional(where: dict, key: str) -> float:  # an overhead left out counts as none
        return number(where, key) if key in where else 0.0

    rates = {k: number(data.get("rates", {}), k, "rates.") for k in _RATES}
    tgt = GpuTarget(name=str(data.get("name") or path.stem), sms=int(number(data, "sms")),
                    clock_hz=number(data, "clock_hz"),
                    dram_bytes_per_s=number(data.get("dram", {}), "bandwidth_bytes_per_s", "dram."),
                    rates=rates, input_bytes=int(number(data, "input_bytes")),
                    shared_memory_per_sm_bytes=int(number(data, "shared_memory_per_sm_bytes")), file=str(path),
                    kernel_overhead_s=optional(data, "kernel_overhead_s"),
                    launch_overhead_s=optional(data, "launch_overhead_s"),
                    dram_per_sm_bytes_per_s=optional(data.get("dram", {}), "per_sm_bytes_per_s"))
    if problems:
        raise TargetError("\n".join(problems))
    return tgt


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


class _Counter:
    def __init__(self, mc: MappedCascade):
        self.mc, self.sem = mc, mc.semantics
        self.n = {r: mc.shapes[r] for r in mc.shapes}
        self.split_outer = {o: r for r, (o, _i) in self.sem.splits.items()}
        self.split_inner = {i: r for r, (_o, i) in self.sem.splits.items()}
        self.fixed = {p for parts in self.sem.fixed_splits().values() for p in parts}  # on the grid
        self.fast_exp = False  # the backend's FAST_EXP: low-precision inputs (set by estimate_gpu)

    def extent(self, var: str) -> int:
        """Points a kernel runs along a variable: blocks padded to powers of two."""
        r = var.upper()
        if r in self.mc.partitions:
            tile = self.mc.partitions[r].extents[-1]
            return math.ceil(self.n[r] / tile) * _pow2(tile)
        if r in self.split_outer:
            parent = self.split_outer[r]
            return math.ceil(self.n[parent] / self.n[self.sem.splits[parent][1]])
        if r in self.split_inner:
            return self.n[r] if r in self.fixed else _pow2(self.n[r])
        return _pow2(self.n[r])

    def points(self, info) -> int:
        return math.prod(self.extent(v) for v in info.variables)

    def is_dot(self, info) -> bool:
        stmt = info.statement
        if info.is_init or info.reduce_op != "sum" or len(info.reduced) != 1:
            return False
        factors = ir.product_factors(stmt.expr)
        if factors is None or len([f for f in factors if isinstance(f, ir.Read)]) != 2:
            return False
        tile_out = [v for v in stmt.lhs.variables if v.upper() not in self.split_outer and self.extent(v) > 1
                    and not self._unit(v) and v.upper() not in self.fixed]
        return len(tile_out) == 2 and not self._unit(info.reduced[0])

    def _unit(self, var: str) -> bool:
        r = var.upper()
        return r in self.mc.partitions and self.mc.partitions[r].extents[-1] == 1

    def per_program(self, e: ir.Expr) -> bool:
        """True when the expression reads no tensor and no coordinate of a block rank: the same for
        every point of a program's blocks (`sqrt(E)`, ALiBi's slope of the program's head), computed
        once per program, not per point."""
        match e:
            case ir.Read():
                return False
            case ir.IndexValue(var=v):
                r = v.upper()
                return r in self.split_outer or r in self.fixed or self._unit(v)
            case ir.Neg(operand=x):
                return self.per_program(x)
            case ir.BinOp(left=left, right=right):
                return self.per_program(left) and self.per_program(right)
            case ir.Call(args=args):
                return all(self.per_program(a) for a in args)
        return True

    def ops(self, e: ir.Expr) -> tuple[int, int]:
        """(fp32 results, special-function results) per point of an expression."""
        if self.per_program(e):
            return 0, 0
        match e:
            case ir.BinOp(op=op, left=left, right=right):
                a, b = self.ops(left), self.ops(right)
                return a[0] + b[0] + 1, a[1] + b[1] + (1 if op == "/" else 0)
            case ir.Call(fn="exp", args=(ir.BinOp(op="-", left=a, right=b),)) if self.fast_exp and (
                    ir.expr_read_vars(b) < ir.expr_read_vars(a)):
                # bf16/fp16 inputs, b broadcast over a rank of a: the backend's exp2(a log2e - b log2e),
                # one multiply-add per point (b log2e once per row) and one MUFU op
                pa, pb = self.ops(a), self.ops(b)
                return pa[0] + pb[0] + 1, pa[1] + pb[1] + 1
            case ir.Call(fn=fn, args=args):
                parts = [self.ops(x) for x in args]
                f, special = _CALL_COST.get(fn, (1, 0))
                return sum(p[0] for p in parts) + f, sum(p[1] for p in parts) + special
            case ir.Neg(operand=x):
                return self.ops(x)
        return 0, 0


# (fp32 results, special-function results) per point of a map, as the Triton backend emits it:
# exp, exp2 (pow of a constant base), log, sqrt, rsqrt: one MUFU op and a scaling multiply; sigmoid
# 1 / (1 + exp(-x)): two MUFU (ex2, rcp) and three fp32; tanh (the module's `_tanh`): ex2 and rcp,
# and 14 fp32 (the x^9 polynomial's 5 FMAs, the squares and scalings, the |x| < 0.25 compare and
# select); a comparison or select: one fp32 result. Anything else: one fp32 result.
_CALL_COST = {"exp": (1, 1), "log": (1, 1), "sqrt": (1, 1), "rsqrt": (1, 1), "pow": (2, 1),
              "sigmoid": (3, 2), "tanh": (14, 2)}


def grid_programs(mc: MappedCascade, group) -> int:
    """Programs of the group's kernel, by the Triton backend's grid rule (codegen/triton_plan):
    each parallel loop level (no Einsum of the group reduces its rank, no recurrence iterates it)
    puts its rank's tiles on the grid, and so do the parts of a fixed split whose outer part does."""
    sem = mc.semantics
    stmts = [sem.statements[k] for k in group.statements]
    iterative = {sem.tensors[s.name].iterative for s in stmts if sem.tensors[s.name].iterative}
    reduced = {v.upper() for s in stmts for v in s.reduced}
    split_outer = {o: r for r, (o, _i) in sem.splits.items()}
    owner = {name: p.rank for p in mc.partitions.values() for name in p.names}
    ranks: dict[str, int] = {}
    for level in group.loop_ranks:
        rank = owner.get(level, level)
        parallel = level not in iterative and rank not in reduced and level not in reduced
        if level in split_outer:
            parallel = parallel and split_outer[level] not in reduced
        if not parallel:
            continue
        if rank in mc.partitions:
            ranks[rank] = math.ceil(mc.shapes[rank] / mc.partitions[rank].extents[-1])
        elif level in split_outer:
            parent = split_outer[level]
            ranks[rank] = math.ceil(mc.shapes[parent] / mc.shapes[sem.splits[parent][1]])
    for rank, (outer, inner) in sem.fixed_splits().items():
        if outer in ranks and inner not in reduced and any(inner.lower() in s.variables for s in stmts):
            ranks[inner] = mc.shapes[inner]
    return math.prod(ranks.values())


def live_fraction(mc: MappedCascade, group_statements: list[int], loop_level: str) -> float:
    """Share of (program, tile) pairs of the loop over `loop_level` (the outer part of a split)
    where some point passes the loop's filters, when skipping the rest is legal (else 1)."""
    import numpy as np

    from ..analysis.absent_step import skip_is_identity

    sem = mc.semantics
    rank = next(r for r, (o, _i) in sem.splits.items() if o == loop_level)
    inner = sem.splits[rank][1]
    filt = [(k, c) for k in group_statements if not sem.statements[k].is_init
            for c in getattr(sem.statements[k].statement, "filters", ())]
    filt = [(k, c) for k, c in filt
            if any(v.var.upper() in (loop_level, inner) for v in ir.affine_vars(c.left) + ir.affine_vars(c.right))]
    if not filt:
        return 1.0
    dram = {t for t, st in mc.storage.items() if st.dram}
    loop_stmts = [k for k in group_statements if any(v.upper() == loop_level for v in sem.statements[k].variables)]
    filtered = {k: {v.var for v in ir.affine_vars(c.left) + ir.affine_vars(c.right)}
                <= set(sem.statements[k].statement.lhs.variables) for k, c in filt}
    if not skip_is_identity(sem, loop_stmts, filtered, dram):
        return 1.0
    tiles = math.ceil(mc.shapes[rank] / mc.shapes[inner])
    m1 = np.arange(tiles)
    # every other variable of the filters: its tiles (grid ranks) or its whole range
    others = sorted({v.var for _k, c in filt for v in ir.affine_vars(c.left) + ir.affine_vars(c.right)}
                    - {loop_level.lower(), inner.lower()})
    axes = []
    for v in others:
        r = v.upper()
        tile = mc.partitions[r].extents[-1] if r in mc.partitions else mc.shapes[r]
        starts = np.arange(0, mc.shapes[r], tile)
        axes.append((v, starts, np.minimum(starts + tile, mc.shapes[r]) - 1))
    grids = np.meshgrid(m1, *[a[1] for a in axes], indexing="ij")
    live = np.ones(grids[0].shape, dtype=bool)
    for _k, c in filt:
        best = None  # some corner of the tile passes (the comparison is affine: corners bound it)
        corners = [(0, mc.shapes[inner] - 1)] + [(0, 1)] * len(axes)
        for pick in np.ndindex(*[2] * (1 + len(axes))):
            env = {loop_level.lower(): grids[0], inner.lower(): corners[0][pick[0]]}
            for j, (v, lo, hi) in enumerate(axes):
                env[v] = np.meshgrid(m1, *[(a[1] if i != j else (lo if pick[1 + j] == 0 else hi))
                                           for i, a in enumerate(axes)], indexing="ij")[1 + j]
            ok = _compare(c, env, mc.shapes)
            best = ok if best is None else best | ok
        live &= best
    if not skip_is_identity(sem, loop_stmts, filtered, dram, at_init=True, guarded=True):  # as the kernel runs it
        # leading dead tiles run (and a program with no live tile runs every tile), as the kernel does
        seen_later = np.flip(np.logical_or.accumulate(np.flip(live, axis=0), axis=0), axis=0)
        none = ~live.any(axis=0, keepdims=True)
        live = seen_later | np.broadcast_to(none, live.shape)
    return float(live.mean())


def _compare(c: ir.Compare, env, shapes):
    def ev(a):
        match a:
            case ir.AffVar(var=v):
                return env[v]
            case ir.AffConst(value=k):
                return k
            case ir.AffShape(rank=r):
                return shapes[r]
            case ir.AffNeg(operand=o):
                return -ev(o)
            case ir.AffBin(op=op, left=left, right=right):
                x, y = ev(left), ev(right)
                return x + y if op == "+" else x - y if op == "-" else x * y
        raise AssertionError(a)

    left, right = ev(c.left), ev(c.right)
    return {"<": left < right, "<=": left <= right, "==": left == right, "!=": left != right,
            ">=": left >= right, ">": left > right}[c.op]


def dram_bandwidth(tgt: GpuTarget, programs: int, busy: float) -> float:
    """DRAM bandwidth of a kernel of `programs` programs: min(HBM, programs x one program's
    streaming rate). Every program of the grid counts as in flight: a grid larger than the SMs
    keeps several programs resident per SM, whose loads overlap (a 64K-program RMSNorm reads at
    3 TB/s, 200 times one program's rate), so the cap binds on small grids (decode: 64 heads).
    Without `dram.per_sm_bytes_per_s` in the target, the busy share of HBM (the wave rule)."""
    if not tgt.dram_per_sm_bytes_per_s:
        return tgt.dram_bytes_per_s * busy
    return min(tgt.dram_bytes_per_s, programs * tgt.dram_per_sm_bytes_per_s)


def _loop_levels(nodes, out: dict[int, list[str]], path: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Leaf):
            out[node.statement] = list(path)
        elif isinstance(node, Loop):
            _loop_levels(node.body, out, path + [node.rank])


def estimate_gpu(mc: MappedCascade, tgt: GpuTarget) -> CostReport:
    from ..mapping.variants import refuse_variants

    refuse_variants(mc, "the GPU model")
    sem = mc.semantics
    count = _Counter(mc)
    count.fast_exp = tgt.input_bytes <= 2
    rates = tgt.rates
    # bf16 inputs: bf16 tensor-core dots; fp32 inputs: the backend's default exact-fp32 dots ("ieee")
    # run on the CUDA cores (configure(fp32_dot="tf32") would use tensor_tf32_flops instead)
    tensor_rate = rates["tensor_bf16_flops"] if tgt.input_bytes <= 2 else rates["fp32_flops"]
    totals = {"tensor_core": {"flop": 0.0}, "special": {"ops": 0.0}, "fp32": {"ops": 0.0}}
    groups, latency, bound_all = [], 0.0, "compute"
    dram = {t for t, st in mc.storage.items() if st.dram}
    per_tensor: dict[str, dict[str, float]] = {}

    def elements(t: str) -> int:
        return math.prod(mc.shapes[r] for r in sem.tensors[t].ranks)

    for t in dram:
        info = sem.tensors[t]
        width = tgt.input_bytes if info.kind in ("input", "output") else 4
        readers = sum(1 for g in mc.groups if any(any(a.access.tensor == t for a in sem.statements[k].reads)
                                                  for k in g.statements) and not any(
            sem.statements[k].name == t for k in g.statements))
        per_tensor[t] = {"read_bytes": float(elements(t) * width * (readers if info.kind != "input" else 1)),
                         "write_bytes": float(elements(t) * width if info.kind != "input" else 0)}
    for g in mc.groups:
        levels: dict[int, list[str]] = {}
        _loop_levels(g.tree, levels, [])
        split_loops = [lv for lv in g.loop_ranks if lv in count.split_outer]
        fractions = {lv: live_fraction(mc, list(g.statements), lv) for lv in split_loops}
        tensor = special = fp32 = 0.0
        for k in g.statements:
            info = sem.statements[k]
            pts = count.points(info)
            for lv in split_loops:
                if any(v.upper() == lv for v in info.variables):
                    pts *= fractions[lv]
            if count.is_dot(info):
                tensor += 2 * pts
                continue
            f, s = count.ops(info.statement.expr)
            if info.reduced:
                f += 1
            filters = getattr(info.statement, "filters", ())
            f += 2 * len(filters)
            fp32 += f * pts + s * pts
            special += s * pts
        t_tensor, t_special, t_fp32 = tensor / tensor_rate, special / rates["special_ops"], fp32 / rates["fp32_ops"]
        compute = t_tensor + t_special + t_fp32
        moved = sum(per_tensor[t]["write_bytes"] for t in dram if any(sem.statements[k].name == t for k in g.statements))
        moved += sum(elements(t) * (tgt.input_bytes if sem.tensors[t].kind in ("input", "output") else 4)
                     for t in dram if any(any(a.access.tensor == t for a in sem.statements[k].reads)
                                          for k in g.statements)
                     and not any(sem.statements[k].name == t for k in g.statements))
        programs = grid_programs(mc, g)
        busy = programs / (math.ceil(programs / tgt.sms) * tgt.sms)  # waves of one program per SM
        bandwidth = dram_bandwidth(tgt, programs, busy)
        memory = moved / bandwidth
        bound = "compute" if compute / busy >= memory else "memory"
        device = max(compute / busy, memory) + tgt.kernel_overhead_s
        groups.append({"group": g.name, "compute_s": compute, "memory_s": memory, "bound": bound,
                       "tensor_s": t_tensor, "special_s": t_special, "fp32_s": t_fp32, "dram_bytes": moved,
                       "live_fraction": fractions, "programs": programs, "busy": busy, "dram_bytes_per_s": bandwidth,
                       "device_s": device})
        latency += device
        totals["tensor_core"]["flop"] += tensor
        totals["special"]["ops"] += special
        totals["fp32"]["ops"] += fp32
    if groups:
        worst = max(groups, key=lambda x: max(x["compute_s"], x["memory_s"]))
        bound_all = worst["bound"]
        host = (len(groups) - 1) * tgt.launch_overhead_s + groups[-1]["device_s"]
        if host > latency:  # the host issues kernels more slowly than the device runs them
            latency, bound_all = host, "launch"
    per_unit: dict[str, dict[str, Any]] = {}
    for unit, rate_key in (("tensor_core", None), ("special", "special_ops"), ("fp32", "fp32_ops")):
        amount = next(iter(totals[unit].values()))
        rate = tensor_rate if rate_key is None else rates[rate_key]
        seconds = amount / rate
        per_unit[unit] = {"cycles": seconds * tgt.clock_hz, "utilization": seconds / latency if latency else 0.0,
                          "ops": totals[unit]}
    reads = sum(d["read_bytes"] for d in per_tensor.values())
    writes = sum(d["write_bytes"] for d in per_tensor.values())
    return CostReport(cascade=sem.cascade.name, target=tgt.name, shapes=dict(mc.shapes), dram_read_bytes=reads,
                      dram_write_bytes=writes, latency_s=latency, bound=bound_all, per_tensor=per_tensor,
                      per_unit=per_unit, groups=groups, extra={"model": "gpu", "kernels": len(groups)})
