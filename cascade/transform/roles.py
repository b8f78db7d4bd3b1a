"""What each tensor of a cascade is with respect to one rank R (variable r), and the least
number of passes over R any rewrite can reach.

- *stream*: keeps r (`QK[m, p]`, `SN[m, p]`); *full*: reduces r (`GM[p]`, `SD[p]`);
  *complete*: does not iterate r but reads a full one (`MU[p] = S[p] / M`); *const*: neither.
- `deps[T]`: the full reductions whose complete value T needs; a full reduction whose body has
  deps is a *target* (it waits for another pass), otherwise a *producer*.
- `lower_bound`: 2 when an output keeps r and reads a complete value (it cannot be written
  before the fiber is seen), else 1.
`Roles` also inlines map statements into a body (with variable renaming); nothing here
rewrites (which filters a body's points satisfy is `masks.presence`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Span
from ..lang import ir
from ..lang.semantics import Semantics
from ..lang.show import show_access


class Refusal(Exception):
    """A reduction (or the cascade) that cannot be rewritten: where and why."""

    def __init__(self, span: Span | None, reason: str):
        super().__init__(reason)
        self.span = span
        self.reason = reason


@dataclass
class Roles:
    sem: Semantics
    rank: str
    kind: dict[str, str] = field(default_factory=dict)
    deps: dict[str, frozenset[str]] = field(default_factory=dict)
    writer: dict[str, ir.Einsum] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    @property
    def var(self) -> str:
        return self.rank.lower()

    @property
    def cascade(self) -> ir.Cascade:
        return self.sem.cascade

    def is_full(self, name: str) -> bool:
        return self.kind.get(name) == "full"

    def reduce_op(self, name: str) -> str:
        stmt = self.writer[name]
        return stmt.reduction.op if stmt.reduction else "sum"

    def is_stabiliser(self, name: str) -> bool:
        return self.is_full(name) and self.reduce_op(name) in ("max", "min")

    def targets(self) -> list[str]:
        return [t for t in self.order if self.kind[t] == "full" and self.deps[t]]

    def producers(self) -> list[str]:
        return [t for t in self.order if self.kind[t] == "full" and not self.deps[t]]

    def lower_bound(self) -> tuple[int, str]:
        for d in self.cascade.outputs:
            if self.kind.get(d.name) == "stream" and self.deps[d.name]:
                return 2, (f"{d.name} keeps {self.var} and reads {', '.join(sorted(self.deps[d.name]))}, "
                           f"complete over {self.var}: 2 is the least")
        return 1, "no output keeps " + self.var + " and reads a complete value: 1 is the least"


def analyse(sem: Semantics, rank: str) -> Roles:
    """Classify every tensor; refuse cascades whose R already has a split or a recurrence."""
    c = sem.cascade
    roles = Roles(sem, rank)
    var = roles.var
    if rank in sem.splits or any(rank in parts for parts in sem.splits.values()):
        split = next(s for s in c.splits if rank == s.rank or rank in s.parts)
        raise Refusal(split.span, f"{rank} is already split ('split {split.rank} = ...'): reduce takes the "
                                  "untiled cascade and emits the split itself")
    for d in c.inputs:
        roles.kind[d.name] = "input-stream" if rank in d.ranks else "const"
        roles.deps[d.name] = frozenset()
    for init in c.inits:
        raise Refusal(init.span, f"the cascade already has a recurrence ({init.name}); recurrences are left "
                                 "as written: reduce takes cascades of plain Einsums")
    for step in sem.steps:
        for k in step.statements:
            info = sem.statements[k]
            stmt = info.statement
            assert isinstance(stmt, ir.Einsum)
            _check_accesses(stmt, var)
            name = stmt.name
            roles.writer[name] = stmt
            roles.order.append(name)
            deps: set[str] = set()
            for acc in ir.expr_reads(stmt.expr):
                t = acc.tensor
                deps |= {t} if roles.kind.get(t) == "full" else roles.deps.get(t, frozenset())
            roles.deps[name] = frozenset(deps)
            if var in info.reduced:
                roles.kind[name] = "full"
            elif var in info.variables:
                roles.kind[name] = "stream"
            else:
                roles.kind[name] = "complete" if deps else "const"
    return roles


def _check_accesses(stmt: ir.Einsum, var: str) -> None:
    for acc in [stmt.lhs, *ir.expr_reads(stmt.expr)]:
        for idx in acc.indices:
            if isinstance(idx, ir.VarIndex) and idx.var == var and idx.offset:
                raise Refusal(acc.span, f"{acc.tensor} is read at {var}{idx.offset:+d}: a shifted access along "
                                        f"{var} is a recurrence; reduce takes cascades of plain Einsums")


def rename_expr(expr: ir.Expr, mapping: dict[str, ir.Index]) -> ir.Expr:
    """The expression with rank variables renamed (`mapping` var -> index) in its reads and in
    its index values (`p - m` read through `S[m, 0]` becomes `p - 0`)."""
    renamed = ir.map_reads(expr, lambda r: ir.Read(rename_access(r.access, mapping), span=r.span))
    return map_index_values(renamed, lambda iv: index_value(mapping[iv.var]) if iv.var in mapping else iv)


def map_index_values(expr: ir.Expr, fn) -> ir.Expr:
    """The expression with every `IndexValue` replaced by `fn(index_value)`; reads are kept."""
    match expr:
        case ir.IndexValue():
            return fn(expr)
        case ir.Neg(operand=o):
            return ir.Neg(map_index_values(o, fn))
        case ir.BinOp(op=op, left=l, right=r):
            return ir.BinOp(op, map_index_values(l, fn), map_index_values(r, fn))
        case ir.Call(fn=name, args=args):
            return ir.Call(name, tuple(map_index_values(x, fn) for x in args))
    return expr


def index_value(idx: ir.Index) -> ir.Expr:
    """An index as a value: `m` -> m, `m+1` -> m + 1, `0` -> 0."""
    if isinstance(idx, ir.VarIndex):
        base = ir.IndexValue(idx.var)
        return base if not idx.offset else ir.BinOp("+", base, ir.Num(float(idx.offset)))
    if isinstance(idx, ir.ConstIndex):
        return ir.Num(float(idx.value))
    raise Refusal(idx.span, f"the last element '{idx.rank}' used as an index value has no rewrite; "
                            "write the coordinate instead")


def rename_access(acc: ir.Access, mapping: dict[str, ir.Index]) -> ir.Access:
    out = []
    for idx in acc.indices:
        if isinstance(idx, ir.VarIndex) and idx.var in mapping:
            new = mapping[idx.var]
            if isinstance(new, ir.VarIndex):
                new = ir.VarIndex(new.var, new.offset + idx.offset)
            out.append(new)
        else:
            out.append(idx)
    return ir.Access(acc.tensor, tuple(out), span=acc.span)


def rename_affine(aff: ir.Affine, mapping: dict[str, ir.Affine]) -> ir.Affine:
    match aff:
        case ir.AffVar(var=v):
            return mapping.get(v, aff)
        case ir.AffBin(op=op, left=l, right=r):
            return ir.AffBin(op, rename_affine(l, mapping), rename_affine(r, mapping))
        case ir.AffNeg(operand=o):
            return ir.AffNeg(rename_affine(o, mapping))
    return aff


def rename_compare(cmp: ir.Compare, mapping: dict[str, ir.Affine]) -> ir.Compare:
    return ir.Compare(cmp.op, rename_affine(cmp.left, mapping), rename_affine(cmp.right, mapping), span=cmp.span)


def _index_affine(idx: ir.Index) -> ir.Affine:
    if isinstance(idx, ir.VarIndex):
        base: ir.Affine = ir.AffVar(idx.var)
        return base if not idx.offset else ir.AffBin("+", base, ir.AffConst(idx.offset))
    if isinstance(idx, ir.ConstIndex):
        return ir.AffConst(idx.value)
    return ir.AffShape(idx.rank)


def call_mapping(stmt: ir.Einsum, acc: ir.Access) -> tuple[dict[str, ir.Index], dict[str, ir.Affine]]:
    """How the writer's left-side variables map to the indices of a read of it."""
    idx_map: dict[str, ir.Index] = {}
    aff_map: dict[str, ir.Affine] = {}
    for lhs_idx, idx in zip(stmt.lhs.indices, acc.indices):
        assert isinstance(lhs_idx, ir.VarIndex)
        idx_map[lhs_idx.var] = idx
        aff_map[lhs_idx.var] = _index_affine(idx)
    return idx_map, aff_map


def inline(roles: Roles, expr: ir.Expr, stop) -> tuple[ir.Expr, list[ir.Compare]]:
    """`expr` with every read of a stream map statement inlined unless `stop(tensor)`; returns the
    expression and the filters of the inlined statements (renamed to the caller's variables)."""
    filters: list[ir.Compare] = []

    def read(e: ir.Read) -> ir.Expr:
        a = e.access
        stmt = roles.writer.get(a.tensor)
        if stmt is None or roles.kind[a.tensor] != "stream" or stop(a.tensor):
            return e
        if stmt.reduction is not None or len(set(_vars(stmt.expr)) - set(stmt.lhs.variables)):
            raise Refusal(stmt.span, f"{a.tensor} reads a complete value and reduces another rank: "
                                     "only maps can be inlined into a reduction")
        idx_map, aff_map = call_mapping(stmt, a)
        filters.extend(rename_compare(cmp, aff_map) for cmp in stmt.filters)
        return ir.map_reads(rename_expr(stmt.expr, idx_map), read)

    return ir.map_reads(expr, read), filters


def _vars(expr: ir.Expr) -> list[str]:
    return [v for a in ir.expr_reads(expr) for v in a.variables]


def written_lower_bound(sem: Semantics, rank: str) -> tuple[int, str]:
    """The lower bound of a cascade that is already split along `rank` or recurrent over it,
    by the same rule as `Roles.lower_bound`: 2 when an output keeps r (any of r, r1, r0) and
    depends, through any statements, on a value complete over r: a reduction whose left side
    keeps no r variable but whose body reduces one, or a running value read at its last step
    (`RD[M1, p]`, `RM[M, p]`)."""
    c = sem.cascade
    parts = sem.splits.get(rank, ())
    ranks = {rank, *parts}
    r_vars = {r.lower() for r in ranks}
    var = rank.lower()
    deps: dict[str, set[str]] = {}
    for info in sem.statements:
        stmt = info.statement
        if not isinstance(stmt, ir.Einsum):
            continue
        need = set(deps.get(stmt.name, set()))
        for acc in ir.expr_reads(stmt.expr):
            need |= deps.get(acc.tensor, set())
            if any(isinstance(i, ir.LastIndex) and i.rank in ranks for i in acc.indices):
                need.add(show_access(acc))
        keeps = set(stmt.lhs.variables) & r_vars
        if not keeps and set(info.reduced) & r_vars:
            need = {stmt.name}  # a full reduction: its readers need it complete
        deps[stmt.name] = need
    for d in c.outputs:
        info_vars = {v for s in sem.statements if s.name == d.name for v in s.statement.lhs.variables}
        if info_vars & r_vars and deps.get(d.name):
            return 2, (f"{d.name} keeps {var} and reads {', '.join(sorted(deps[d.name]))}, complete over {var}: "
                       "2 is the least")
    return 1, "no output keeps " + var + " and reads a complete value: 1 is the least"
