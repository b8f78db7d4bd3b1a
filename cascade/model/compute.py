"""Operation counts per statement and per compute unit, as sympy expressions.

Each point of a statement's iteration space costs the operations of its expression: `*` is a
mac, `+ -` an add, `/` a divide, `max min abs` a max, `exp log sqrt` what the target's
`op_costs` say (e.g. exp = 6 mac + 1 add); a sum of products fuses its multiply and add into
one mac; other reductions cost one op of their kind per point. Sub-expressions of constants
cost nothing (they are computed once). Points of a split pair (m1, m0) number M, not M1*M0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import TargetError
from ..lang import ir
from ..mapping.schedule import MappedCascade
from .symbols import SymbolTable
from .target import Target

_BINARY_KIND = {"*": "mac", "+": "add", "-": "add", "/": "divide"}
_REDUCE_KIND = {"sum": "add", "max": "max", "min": "max", "prod": "mac"}


@dataclass(frozen=True)
class StatementOps:
    statement: int
    name: str
    unit: str
    points: Any  # sympy
    ops: dict[str, Any]  # kind -> sympy count


def statement_ops(mc: MappedCascade, target: Target, table: SymbolTable) -> list[StatementOps]:
    """Operations per statement on its unit: the mapping's binding, or where the mapping binds
    nothing (no entry and no `default`), the target's first unit able to do all of them."""
    out = []
    for k, info in enumerate(mc.semantics.statements):
        if info.is_init:
            continue
        per_point = point_ops(info.statement, info.reduce_op, bool(info.reduced), target)
        unit = mc.mapping.unit_for(info.name) or next(
            (u for u, spec in target.units.items() if all(kind in spec.ops for kind in per_point)),
            next(iter(target.units)))
        if unit not in target.units:
            raise TargetError(f"{mc.mapping.file}: binding.{info.name}: unit '{unit}' is not in target "
                              f"{target.name} (its units: {', '.join(target.units)})")
        for kind in per_point:
            if kind not in target.units[unit].ops:
                capable = [u for u, spec in target.units.items() if kind in spec.ops]
                raise TargetError(f"{info.name} needs '{kind}' operations, which {unit} of {target.name} cannot do; "
                                  f"bind {info.name} to {' or '.join(capable) or 'another unit'}")
        points = iteration_points(info.variables, mc, table)
        out.append(StatementOps(k, info.name, unit, points, {kind: points * n for kind, n in per_point.items()}))
    return out


def iteration_points(variables: tuple[str, ...], mc: MappedCascade, table: SymbolTable):
    ranks = [v.upper() for v in variables]
    points = 1
    done: set[str] = set()
    for rank, (outer, inner) in mc.semantics.splits.items():
        if outer in ranks and inner in ranks:
            points = points * table.size(rank)
            done |= {outer, inner}
    for r in ranks:
        if r not in done:
            points = points * table.size(r)
    return points


def point_ops(stmt: ir.Statement, reduce_op: str, reduces: bool, target: Target) -> Counter[str]:
    counts: Counter[str] = Counter()
    expr = stmt.expr
    fused_mac = reduces and reduce_op == "sum" and isinstance(expr, ir.BinOp) and expr.op == "*"
    _count(expr, counts, target, absorb=False)
    if reduces and not fused_mac:
        counts[_REDUCE_KIND[reduce_op]] += 1
    return +counts


def _constant(expr: ir.Expr) -> bool:
    return not ir.expr_reads(expr)


def _count(expr: ir.Expr, counts: Counter, target: Target, absorb: bool) -> None:
    if _constant(expr):
        return
    match expr:
        case ir.Neg(operand=o):
            _count(o, counts, target, False)
        case ir.BinOp(op=op, left=l, right=r):
            if not (absorb and op == "-"):
                counts[_BINARY_KIND[op]] += 1
            _count(l, counts, target, False)
            _count(r, counts, target, False)
        case ir.Call(fn=fn, args=args):
            if fn in ("max", "min", "abs"):
                counts["max"] += 1
            else:
                cost = target.op_costs.get(fn)
                if cost is None:
                    raise TargetError(f"{target.file}: op_costs.{fn}: missing: say what one {fn} costs, "
                                      f"e.g. '{fn}: {{mac: 6, add: 1}}'")
                for kind, n in cost.items():
                    counts[kind] += n
            for a in args:
                _count(a, counts, target, fn == "exp" and target.exp_absorbs_subtract)
