"""The whole spatial cost model as one sympy formula per quantity, and its lambdified form.

`cost_formulas(mc, target)` gives latency (s), DRAM bytes and per-unit cycles as sympy
expressions in the rank and tile shapes (the symbols of `SymbolTable`); `lambdify_cost` turns
them into one NumPy function that evaluates whole arrays of shapes at once, which is what a
mapping search scores candidates with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..schedule import MappedCascade
from ..target import Target
from .compute import statement_ops
from .symbols import SymbolTable
from .traffic import dram_traffic


@dataclass(frozen=True)
class CostFormulas:
    latency_s: Any
    dram_bytes: Any
    unit_cycles: dict[str, Any]
    symbols: dict[str, Any]
    values: dict[str, int]


def cost_formulas(mc: MappedCascade, target: Target) -> CostFormulas:
    import sympy as sp

    traffic = dram_traffic(mc)
    table = SymbolTable(mc)
    table.symbols.update(traffic.symbols)
    table.values.update(traffic.values)
    ops = statement_ops(mc, target, table)
    group_of = {k: gi for gi, g in enumerate(mc.groups) for k in g.statements}
    cycles: list[dict[str, Any]] = [{} for _ in mc.groups]
    unit_cycles: dict[str, Any] = {}
    for so in ops:
        info = mc.semantics.statements[so.statement]
        unit = target.units[so.unit]
        occ = sp.Integer(1)
        for rank, n in zip(_space_ranks(mc, so.name, info.variables), unit.shape):
            e = table.size(rank)
            occ = occ * e / (sp.ceiling(e / n) * n)
        c = sum(so.ops.values()) / (unit.pes * occ)
        gi = group_of[so.statement]
        cycles[gi][so.unit] = cycles[gi].get(so.unit, 0) + c
        unit_cycles[so.unit] = unit_cycles.get(so.unit, 0) + c
    bytes_by_group = [sp.Integer(0) for _ in mc.groups]
    for (gi, _, _), expr in traffic.by_group.items():
        bytes_by_group[gi] += expr * target.word_bytes
    latency = sp.Integer(0)
    for gi in range(len(mc.groups)):
        compute = sp.Max(*cycles[gi].values()) / target.clock_hz if cycles[gi] else sp.Integer(0)
        latency += sp.Max(compute, bytes_by_group[gi] / target.dram_bandwidth)
    return CostFormulas(latency, sum(bytes_by_group), unit_cycles, dict(table.symbols), dict(table.values))


def _space_ranks(mc: MappedCascade, name: str, variables: tuple[str, ...]) -> list[str]:
    iterated = set()
    for v in variables:
        r = v.upper()
        iterated.add(r)
        if r in mc.partitions:
            iterated.update(mc.partitions[r].names)
    return [r for r in mc.mapping.spacetime_for(name).space if r in iterated]


def lambdify_cost(formulas: CostFormulas) -> tuple[Callable[..., tuple], list[str]]:
    """A NumPy function f(*values) -> (latency_s, dram_bytes) over the symbols, in the order of
    the returned names; arguments may be arrays (one candidate per element)."""
    import sympy as sp

    names = sorted(formulas.symbols)
    args = [formulas.symbols[n] for n in names]
    fn = sp.lambdify(args, (formulas.latency_s, formulas.dram_bytes), modules="numpy")
    return fn, names
