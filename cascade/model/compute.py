"""Operation counts per statement and per compute unit, as sympy expressions.

Each point of a statement's iteration space costs the operations of its expression: `*` is a
mac, `+ -` an add, `/` a divide, `max min abs` a max, `exp log sqrt` what the target's
`op_costs` say (e.g. exp = 6 mac + 1 add); a sum of products fuses its multiply and add into
one mac; other reductions cost one op of their kind per point. Sub-expressions of constants
cost nothing (they are computed once), so a division by a constant is a multiply by its
reciprocal: `x / M` and `x * (1/M)` both cost one mac. Points of a split pair (m1, m0) number
M, not M1*M0.

Rank values are costed like reads: the coordinate `p` itself is the loop counter the unit
already holds (no operation), and arithmetic on it (`p - m`, `m1*M0 + m0`, ALiBi's
`slope * (p - m)`) costs the same map operations as on values read from memory, per point of the
Einsum that computes it, on that Einsum's unit; hoisted out of a sum like any factor that does
not vary along the reduced rank.

A tile a filter empties and the executor skips (`cascade.mapping.skips`) costs nothing: the
per-tile statements of a 1-pass loop (running max, rescaling, running sums) count only the
tiles that run, as `traffic.run_tiles_sum` counts them for the loads.

Only present points cost anything: a `where` filter, and the absent points it leaves flowing
through the merge rules, shrink a statement's points to `presence.Presence.points` (a triangle
for `m <= p`, a band for a window).

Loop-invariant factors are hoisted out of sums: in `QK[m, p] = Q[e, p] * K[e, m] / sqrt(E)`
the factor `1/sqrt(E)` does not vary along the reduced rank e, and sum(x * c) = c * sum(x), so
it costs one op per *output* point (m, p), not per point (e, m, p). The same holds for a factor
read per output point (`/ SD[p]` inside a sum over m): its own operations and the multiply or
divide that applies it are counted once per output point.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import TargetError
from ..lang import ir
from ..mapping.schedule import MappedCascade
from ..mapping.skips import tile_skips
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
    from .presence import Presence

    out = []
    present = Presence(mc, table)
    skips = tile_skips(mc)
    for k, info in enumerate(mc.semantics.statements):
        if info.is_init:
            continue
        per_point, per_output = split_ops(info.statement, info.reduce_op, bool(info.reduced), target)
        unit = mc.mapping.unit_for(info.name) or next(
            (u for u, spec in target.units.items() if all(kind in spec.ops for kind in per_point + per_output)),
            next(iter(target.units)))
        if unit not in target.units:
            raise TargetError(f"{mc.mapping.file}: binding.{info.name}: unit '{unit}' is not in target "
                              f"{target.name} (its units: {', '.join(target.units)})")
        for kind in per_point + per_output:
            if kind not in target.units[unit].ops:
                capable = [u for u, spec in target.units.items() if kind in spec.ops]
                raise TargetError(f"{info.name} needs '{kind}' operations, which {unit} of {target.name} cannot do; "
                                  f"bind {info.name} to {' or '.join(capable) or 'another unit'}")
        skip = next((skips[lid] for lid in mc.paths[k] if lid in skips), None)
        points = present.points(k, iteration_points(info.variables, mc, table), info.variables)
        if skip is not None and present.statement_band.get(k) is None:
            points = run_points(mc, table, skip, info.variables, points)
        ops = {kind: points * n for kind, n in per_point.items()}
        if per_output:
            lhs = info.statement.lhs.variables
            outputs = present.points(k, iteration_points(lhs, mc, table), lhs)
            if skip is not None and present.statement_band.get(k) is None:
                outputs = run_points(mc, table, skip, lhs, outputs)
            for kind, n in per_output.items():
                ops[kind] = ops.get(kind, 0) + outputs * n
        out.append(StatementOps(k, info.name, unit, points, ops))
    return out


def run_points(mc: MappedCascade, table: SymbolTable, skip, variables: tuple[str, ...], points: Any) -> Any:
    """Points of a statement inside a loop that skips tiles a filter empties (`mapping.skips`),
    where the statement is not itself filtered by the band: only the tiles that run compute it
    (the per-tile work of 1-pass attention: the running max, the rescaling, the sums). Needs the
    statement to iterate M1 and the band's other rank; else `points` unchanged."""
    from .traffic import run_tiles_sum

    ranks = {v.upper() for v in variables}
    if skip.outer not in ranks or skip.other not in ranks:
        return points
    rest = tuple(v for v in variables if v.upper() not in (skip.outer, skip.inner, skip.other))
    size = table.size(skip.other)
    runs = run_tiles_sum(table, skip, skip.inner in ranks, lambda length: size if length is None else length)
    return iteration_points(rest, mc, table) * runs


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
    """Every kind of operation a statement needs, with its count per iteration point (hoisted
    factors included as if per point: what a capability check or a per-point view needs)."""
    per_point, per_output = split_ops(stmt, reduce_op, reduces, target)
    return per_point + per_output


def split_ops(stmt: ir.Statement, reduce_op: str, reduces: bool, target: Target) -> tuple[Counter, Counter]:
    """(operations per iteration point, operations per output point): the second holds the
    factors of a sum that do not vary along a reduced rank (see the module docstring)."""
    counts: Counter[str] = Counter()
    expr = stmt.expr
    if reduces and reduce_op == "sum":
        reduced = {v for a in ir.expr_reads(expr) for v in a.variables} - set(stmt.lhs.variables) | _EVERYWHERE
        factors = _factors(expr, "*")
        varying = [(f, op) for f, op in factors if _variables(f) & reduced]
        invariant = [(f, op) for f, op in factors if not _variables(f) & reduced]
        if varying and invariant:
            hoisted: Counter[str] = Counter()
            scale = False  # the constant factors fold into one, applied by one mac
            for f, op in invariant:
                if _constant(f):
                    scale = True
                    continue
                _count(f, hoisted, target, absorb=False)
                hoisted["divide" if op == "/" else "mac"] += 1
            if scale:
                hoisted["mac"] += 1
            fused = len(varying) > 1 and all(op == "*" for _, op in varying[1:])
            for j, (f, op) in enumerate(varying):
                _count(f, counts, target, absorb=False)
                if j:
                    counts["mac" if op == "*" else "divide"] += 1
            if not fused:
                counts["add"] += 1
            return +counts, +hoisted
    fused_mac = reduces and reduce_op == "sum" and isinstance(expr, ir.BinOp) and expr.op == "*"
    _count(expr, counts, target, absorb=False)
    if reduces and not fused_mac:
        counts[_REDUCE_KIND[reduce_op]] += 1
    return +counts, Counter()


def _factors(expr: ir.Expr, op: str) -> list[tuple[ir.Expr, str]]:
    """The factors of a chain of `*` and `/` with the operator that applies each: a * b / c ->
    [(a, '*'), (b, '*'), (c, '/')]. A divisor is one factor, whatever it holds."""
    match expr:
        case ir.BinOp(op="*", left=left, right=right):
            return _factors(left, op) + _factors(right, "*")
        case ir.BinOp(op="/", left=left, right=right):
            return _factors(left, op) + [(right, "/")]
    return [(expr, op)]


_EVERYWHERE = {"*"}  # stands for every variable: an expression this module does not know may vary along any


def _variables(expr: ir.Expr) -> set[str]:
    """The rank variables an expression's value varies along (its reads' variables)."""
    match expr:
        case ir.Num() | ir.ShapeScalar():
            return set()
        case ir.Read(access=a):
            return set(a.variables)
        case ir.IndexValue(var=v):  # a coordinate varies along its own variable only
            return {v}
        case ir.Neg(operand=o):
            return _variables(o)
        case ir.BinOp(left=l, right=r):
            return _variables(l) | _variables(r)
        case ir.Call(args=args):
            return set().union(*(_variables(x) for x in args))
    return set(_EVERYWHERE)


def _constant(expr: ir.Expr) -> bool:
    return not _variables(expr)


def _count(expr: ir.Expr, counts: Counter, target: Target, absorb: bool) -> None:
    if _constant(expr):
        return
    match expr:
        case ir.Neg(operand=o):
            _count(o, counts, target, False)
        case ir.BinOp(op=op, left=l, right=r):
            if op == "/" and _constant(r):
                counts["mac"] += 1  # a multiply by the reciprocal, computed once
            elif not (absorb and op == "-"):
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
