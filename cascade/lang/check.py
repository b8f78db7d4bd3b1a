"""Semantic validation: a parsed `Cascade` -> `Semantics`, or a `SpecError` listing every problem.

The checks run in three layers (declarations, tensors, statements) and collect diagnostics
instead of stopping at the first; each names the culprit and, where there is one, the fix.
Evaluation order (including recurrence groups) is derived in `cascade.lang.order`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from ..errors import Diagnostic, Span, SpecError, source_lines
from . import ir
from .ops import CALLABLE_MAP_OPS, MAP_OPS, REDUCE_OPS
from .semantics import AccessInfo, AxisCoord, Semantics, StatementInfo, TensorInfo
from .shapes import known_ranks

RANK_RE = re.compile(r"[A-Z][A-Z0-9_]*\Z")
VAR_RE = re.compile(r"[a-z][a-z0-9_]*\Z")


def check(cascade: ir.Cascade) -> Semantics:
    """Validate a cascade; return its `Semantics` or raise one `SpecError` with every problem."""
    checker = _Checker(cascade)
    sem = checker.run()
    if checker.diagnostics:
        raise SpecError(sorted(checker.diagnostics, key=_position))
    assert sem is not None
    return sem


def _position(d: Diagnostic) -> tuple[int, int]:
    return (d.span.line, d.span.col) if d.span else (0, 0)


def _line(span: Span | None) -> str:
    return str(span.line) if span else "?"


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(options), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class _Checker:
    def __init__(self, cascade: ir.Cascade):
        self.c = cascade
        self.lines = source_lines(cascade.source)
        self.diagnostics: list[Diagnostic] = []
        self.ranks = known_ranks(cascade)
        self.splits: dict[str, tuple[str, str]] = {}
        self.part_of: dict[str, str] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self.broken: set[str] = set()  # tensors whose writer's left side is already reported

    def error(self, span: Span | None, message: str) -> None:
        line = self.lines[span.line - 1] if span and 0 < span.line <= len(self.lines) else ""
        self.diagnostics.append(Diagnostic(span, message, line))

    def run(self) -> Semantics | None:
        self.check_declarations()
        self.build_tensors()
        infos = [self.check_statement(s) for s in self.c.statements]
        if self.diagnostics:
            return None
        from .order import evaluation_order

        statements = tuple(i for i in infos if i is not None)
        steps, problems = evaluation_order(statements, self.tensors)
        for span, message in problems:
            self.error(span, message)
        return Semantics(self.c, self.tensors, statements, steps, self.splits)

    # ------------------------------------------------------------ declarations
    def check_declarations(self) -> None:
        c = self.c
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", c.name):
            self.error(None, f"cascade name {c.name!r} must be a name like attention_1pass")
        seen: dict[str, ir.ShapeDecl] = {}
        for s in c.shapes:
            if not RANK_RE.match(s.rank):
                self.error(s.span, f"rank name '{s.rank}' must be upper case (letters, digits, _), e.g. M or M0")
            if s.rank in seen:
                self.error(s.span, f"shape of {s.rank} given twice (first at line {_line(seen[s.rank].span)}): keep one")
            if s.size < 1:
                self.error(s.span, f"shape {s.rank} = {s.size}: a shape must be at least 1")
            seen[s.rank] = s
        declared = {s.rank for s in c.shapes} | {r for d in c.inputs + c.outputs for r in d.ranks}
        for split in c.splits:
            if split.rank in self.part_of:
                first = self.part_of[split.rank]
                self.error(split.span, f"{split.rank} is already a part of 'split {first} = "
                                       f"{' * '.join(self.splits[first])}': a split part cannot be split again "
                                       "(deeper splits belong in a mapping's partitioning)")
                continue
            if split.rank not in declared:
                self.error(split.span, f"split of undeclared rank {split.rank}: give its shape "
                                       f"('shape {split.rank} = <size>') or use it in an input or output")
            if len(split.parts) != 2:
                self.error(split.span, f"split {split.rank} into {len(split.parts)} ranks: only two-level "
                                       f"splits ({split.rank} = {split.rank}1 * {split.rank}0) are supported; "
                                       "deeper splits belong in a mapping's partitioning")
                continue
            if split.rank in self.splits or split.rank in self.part_of:
                self.error(split.span, f"rank {split.rank} is split twice")
                continue
            outer, inner = split.parts
            for part in split.parts:
                if not RANK_RE.match(part):
                    self.error(split.span, f"rank name '{part}' must be upper case")
                if part in self.part_of or part in self.splits or part == split.rank:
                    self.error(split.span, f"split part {part} is already part of another split; pick a new name")
            if outer == inner:
                self.error(split.span, f"split {split.rank} = {outer} * {inner} names the same rank twice")
            if outer in seen:
                self.error(seen[outer].span, f"{outer} is derived from 'split {split.rank} = {outer} * {inner}' "
                                             f"as ceil({split.rank} / {inner}): give the shape of {inner} instead")
            self.splits[split.rank] = (outer, inner)
            self.part_of[outer] = self.part_of[inner] = split.rank
        names: dict[str, ir.TensorDecl] = {}
        for decl in c.inputs + c.outputs:
            if decl.name in names:
                self.error(decl.span, f"tensor {decl.name} declared twice (first at line {_line(names[decl.name].span)})")
            names[decl.name] = decl
            for r in decl.ranks:
                if not RANK_RE.match(r):
                    self.error(decl.span, f"rank name '{r}' in {decl.name} must be upper case")
            if len(set(decl.ranks)) != len(decl.ranks):
                self.error(decl.span, f"{decl.name} names a rank twice: [{', '.join(decl.ranks)}]")

    # ------------------------------------------------------------ tensors and writers
    def build_tensors(self) -> None:
        c = self.c
        for d in c.inputs:
            self.tensors[d.name] = TensorInfo(d.name, "input", d.ranks)
        for d in c.outputs:
            self.tensors[d.name] = TensorInfo(d.name, "output", d.ranks)
        writers: dict[str, ir.Einsum] = {}
        inits: dict[str, ir.Init] = {}
        for stmt in c.statements:
            name = stmt.lhs.tensor
            if name in self.tensors and self.tensors[name].kind == "input":
                self.error(stmt.lhs.span, f"input {name} is written here: inputs are read-only; "
                                          f"write a new tensor (e.g. {name}2) instead")
                continue
            if isinstance(stmt, ir.Init):
                if name in inits:
                    self.error(stmt.lhs.span, f"{name} initialised twice (first at line {_line(inits[name].span)})")
                inits[name] = stmt
                continue
            if name in writers:
                self.error(stmt.lhs.span, f"tensor {name} written twice (first at line {_line(writers[name].span)}): "
                                          "each tensor has one Einsum; name this one differently")
                continue
            writers[name] = stmt
            before = len(self.diagnostics)
            iterative = self.lhs_iterative(stmt)
            if name in self.tensors and iterative is not None:  # an output: its declaration gives the ranks
                self.error(stmt.lhs.span, f"output {name} cannot be a recurrence: write the recurrence to "
                                          f"an intermediate and read its last element into {name}")
            if len(self.diagnostics) > before:
                self.broken.add(name)
            if name in self.tensors:
                continue
            ranks = tuple(i.var.upper() if isinstance(i, ir.VarIndex) else "?" for i in stmt.lhs.indices)
            self.tensors[name] = TensorInfo(name, "intermediate", ranks, iterative)
        for name, init in inits.items():
            info = self.tensors.get(name)
            if name in self.broken:
                continue  # its recurrence's left side is already reported; its init follows that fix
            if info is None or info.iterative is None:
                self.error(init.lhs.span, f"init of {name}, which no recurrence writes: 'init' gives the first "
                                          f"element of a recurrence like {name}[m+1, ...] = f({name}[m, ...])")
        for name, info in self.tensors.items():
            if info.iterative is not None and name not in inits:
                stmt = writers[name]
                idx = next(str(i.var) for i in stmt.lhs.indices if isinstance(i, ir.VarIndex) and i.offset)
                self.error(stmt.lhs.span, f"recurrence {name} has no 'init': add a line like "
                                          f"'init {name}[{self.init_example(stmt)}] = 0' giving its value at {idx} = 0")
            if info.kind == "output" and name not in writers:
                decl = next(d for d in c.outputs if d.name == name)
                self.error(decl.span, f"output {name} is never produced: add an Einsum writing {name}[...]")

    def init_example(self, stmt: ir.Einsum) -> str:
        return ", ".join("0" if isinstance(i, ir.VarIndex) and i.offset else
                         (i.var if isinstance(i, ir.VarIndex) else "?") for i in stmt.lhs.indices)

    def lhs_iterative(self, stmt: ir.Einsum) -> str | None:
        """Check the left side's indices; return the iterative rank if it is a recurrence."""
        iterative = None
        for idx in stmt.lhs.indices:
            if isinstance(idx, ir.LastIndex):
                self.error(idx.span, f"'{idx.rank}' on the left side: a rank name reads the last element; "
                                     f"an Einsum writes every element, so index it with a variable "
                                     f"({idx.rank.lower()})")
            elif not isinstance(idx, ir.VarIndex):
                self.error(idx.span, "the left side of an Einsum takes rank variables only; a fixed "
                                     "coordinate belongs in an 'init' line")
            elif idx.offset != 0:
                if idx.offset != 1:
                    self.error(idx.span, f"recurrence offset {idx.offset:+d} on {idx.var}: a recurrence writes "
                                         f"{idx.var}+1 from {idx.var} (offset +1 only)")
                if iterative is not None:
                    self.error(idx.span, "a recurrence iterates one rank: only one index may be v+1")
                iterative = idx.var.upper()  # kept after an error so its 'init' is not reported too
        return iterative

    # ------------------------------------------------------------ statements
    def check_statement(self, stmt: ir.Statement) -> StatementInfo | None:
        before = len(self.diagnostics)
        lhs = stmt.lhs
        if lhs.tensor not in self.tensors:
            return None  # already reported (written input, duplicate)
        lhs_vars = lhs.variables
        lhs_ok = self.check_vars(lhs)
        if len(set(lhs_vars)) != len(lhs_vars):
            self.error(lhs.span, f"a variable appears twice on the left side of {ir_text(lhs)}: each variable "
                                 "names one rank of the result")
        write = None
        if lhs_ok and not (isinstance(stmt, ir.Init) and lhs.tensor in self.broken):
            write = self.check_access(lhs, writing=True, stmt=stmt)
        reads: list[AccessInfo | None] = []
        for acc in ir.expr_reads(stmt.expr):
            if acc.tensor not in self.tensors:
                known = set(self.tensors)
                self.error(acc.span, f"unknown tensor '{acc.tensor}'{_suggest(acc.tensor, known)}: "
                                     "declare it as an input or write it with an Einsum")
                continue
            if acc.tensor == lhs.tensor and isinstance(stmt, ir.Init):
                self.error(acc.span, f"init of {lhs.tensor} reads {lhs.tensor} itself: an init gives the value "
                                     "before the first step (a constant, or other tensors)")
                continue
            # an access with an unknown variable is not matched against its ranks: one error, not two
            reads.append(self.check_access(acc, writing=False, stmt=stmt) if self.check_vars(acc) else None)
        self.check_expr(stmt.expr)
        read_vars: list[str] = []
        for acc in ir.expr_reads(stmt.expr):
            for v in acc.variables:
                if v not in read_vars and v not in lhs_vars:
                    read_vars.append(v)
        variables = tuple(dict.fromkeys(lhs_vars)) + tuple(read_vars)
        for iv in ir.expr_index_values(stmt.expr):
            if not VAR_RE.match(iv.var) or iv.var not in variables:
                self.error(iv.span, f"'{iv.var}' is not a rank variable of this statement (it iterates "
                                    f"{', '.join(variables) or 'nothing'}): a lower-case name in an expression "
                                    f"is the coordinate of a variable that indexes its left side or a read; "
                                    f"a tensor is read as {iv.var.upper()}[...]")
        self.check_split_mixing(stmt, variables)
        reduce_op = "sum"
        if isinstance(stmt, ir.Einsum):
            reduce_op = self.check_reduction(stmt, lhs_vars, read_vars)
            for cmp in stmt.filters:
                self.check_filter(cmp, variables)
        elif read_vars:
            self.error(stmt.span, f"init of {lhs.tensor} reduces {', '.join(read_vars)}: an init is a plain map")
        if len(self.diagnostics) > before or write is None or any(r is None for r in reads):
            return None
        return StatementInfo(stmt, variables, tuple(read_vars), reduce_op, write, tuple(reads))  # type: ignore[arg-type]

    def check_vars(self, acc: ir.Access) -> bool:
        """Check every variable index of an access; False if any was reported."""
        ok = True
        for idx in acc.indices:
            if isinstance(idx, ir.VarIndex):
                ok = self.check_var(idx.var, idx.span) and ok
        return ok

    def check_var(self, var: str, span: Span | None) -> bool:
        if not VAR_RE.match(var):
            self.error(span, f"rank variable '{var}' must be lower case (it names rank {var.upper()})")
            return False
        if var.upper() not in self.ranks:
            options = ", ".join(sorted(r.lower() for r in self.ranks if RANK_RE.match(r))) or "none: no rank is declared"
            self.error(span, f"rank variable '{var}' has no rank: declare {var.upper()} in 'shape' "
                             f"or use one of {options}")
            return False
        return True

    def check_split_mixing(self, stmt: ir.Statement, variables: tuple[str, ...]) -> None:
        vs = set(variables)
        for rank, (outer, inner) in self.splits.items():
            if rank.lower() in vs and (outer.lower() in vs or inner.lower() in vs):
                self.error(stmt.span, f"{stmt.lhs.tensor} iterates both {rank.lower()} and the parts of "
                                      f"'split {rank} = {outer} * {inner}': use {rank.lower()} or "
                                      f"{outer.lower()}, {inner.lower()}, not both")

    def check_reduction(self, stmt: ir.Einsum, lhs_vars: tuple[str, ...], dropped: list[str]) -> str:
        red = stmt.reduction
        if red is None:
            return "sum"
        if red.op not in REDUCE_OPS:
            self.error(red.span, f"unknown reduce operator '{red.op}'{_suggest(red.op, set(REDUCE_OPS))}: "
                                 f"use one of {', '.join(REDUCE_OPS)}")
        twice = sorted({v for v in red.variables if red.variables.count(v) > 1})
        if twice:
            self.error(red.span, f"':: {red.op}(...)' lists {', '.join(twice)} more than once: "
                                 "list each reduced variable once")
        for v in dict.fromkeys(red.variables):
            if v in lhs_vars:
                self.error(red.span, f"':: {red.op}({v})' reduces {v}, but {ir_text(stmt.lhs)} keeps it: "
                                     f"drop {v} from the left side or from the reduction")
            elif v not in dropped:
                self.error(red.span, f"':: {red.op}({v})' reduces {v}, which {stmt.name} does not iterate "
                                     f"(it iterates {', '.join(lhs_vars + tuple(dropped)) or 'nothing'})")
        missing = [v for v in dropped if v not in red.variables]
        if missing:
            self.error(red.span, f"{', '.join(missing)} is dropped from the left side but not reduced by "
                                 f"':: {red.op}(...)': list every reduced variable")
        return red.op

    def check_filter(self, cmp: ir.Compare, variables: tuple[str, ...]) -> None:
        for side in (cmp.left, cmp.right):
            for v in ir.affine_vars(side):
                if v.var not in variables:
                    self.error(v.span, f"filter on unknown variable '{v.var}': this Einsum iterates "
                                       f"{', '.join(variables) or 'no variable'}")
            for s in ir.affine_shapes(side):
                if s.rank not in self.ranks:
                    self.error(s.span, f"unknown rank {s.rank} in filter{_suggest(s.rank, self.ranks)}: a rank "
                                       f"name in a filter is its shape; the ranks are "
                                       f"{', '.join(sorted(self.ranks))}")
            if not _is_affine(side):
                self.error(cmp.span, "a filter must be affine in the rank variables (no product of two variables)")

    def check_expr(self, expr: ir.Expr) -> None:
        for call in ir.expr_calls(expr):
            op = MAP_OPS.get(call.fn)
            if op is None or call.fn not in CALLABLE_MAP_OPS:
                self.error(call.span, f"unknown map operator '{call.fn}'{_suggest(call.fn, CALLABLE_MAP_OPS)}: "
                                      f"use one of {', '.join(CALLABLE_MAP_OPS)} (or + - * /)")
            elif len(call.args) != op.arity:
                self.error(call.span, f"{call.fn} takes {op.arity} argument{'s' if op.arity > 1 else ''}, "
                                      f"not {len(call.args)}")
        for s in ir.expr_shapes(expr):
            if s.rank not in self.ranks:
                self.error(s.span, f"unknown shape '{s.rank}'{_suggest(s.rank, self.ranks)}: a bare name in "
                                   "an expression is a rank's shape")

    # ------------------------------------------------------------ accesses
    def check_access(self, acc: ir.Access, writing: bool, stmt: ir.Statement) -> AccessInfo | None:
        info = self.tensors[acc.tensor]
        vars_ = acc.variables
        if not writing and len(set(vars_)) != len(vars_):
            self.error(acc.span, f"a variable appears twice in {ir_text(acc)}: diagonal reads are not "
                                 "supported; copy through an intermediate")
            return None
        axes = self.match_axes(acc, info)
        if axes is None:
            return None
        for axis, idx in zip_axes(axes, acc):
            if (isinstance(idx, ir.VarIndex) and idx.offset and not writing
                    and (axis.rank != info.iterative or idx.offset != 1)):
                self.error(idx.span, f"{acc.tensor}[...{idx.var}{idx.offset:+d}...]: only a recurrence's "
                                     "iterative rank may be read at an offset, and only +1")
                return None
            if isinstance(idx, ir.ConstIndex) and isinstance(stmt, ir.Init) and writing:
                if info.iterative is None:
                    return None  # reported once: an init of a tensor that no recurrence writes
                if axis.rank != info.iterative or idx.value != 0:
                    self.error(idx.span, f"init {acc.tensor} sets element 0 of its iterative rank "
                                         f"{info.iterative}; the other indices are variables")
                    return None
            if isinstance(idx, ir.ConstIndex) and idx.value < 0:
                self.error(idx.span, f"negative coordinate {idx.value} in {ir_text(acc)}: coordinates count from 0")
                return None
        if (isinstance(stmt, ir.Init) and writing and info.iterative
                and not any(isinstance(i, ir.ConstIndex) for i in acc.indices)):
            self.error(acc.span, f"init {acc.tensor} must give a 0 for its iterative rank {info.iterative}")
            return None
        return AccessInfo(acc, axes)

    def match_axes(self, acc: ir.Access, info: TensorInfo) -> tuple[AxisCoord, ...] | None:
        """Match an access's indices to the tensor's ranks, allowing split and merged views."""
        ranks, idxs = info.ranks, acc.indices
        axes: list[AxisCoord] = []
        t = i = 0

        def idx_rank(k: int) -> str | None:
            x = idxs[k]
            if isinstance(x, ir.VarIndex):
                return x.var.upper()
            if isinstance(x, ir.LastIndex):
                return x.rank
            return None

        while t < len(ranks) and i < len(idxs):
            rank, idx, r = ranks[t], idxs[i], idx_rank(i)
            if isinstance(idx, ir.ConstIndex):
                axes.append(AxisCoord(rank, "const", offset=idx.value))
                t, i = t + 1, i + 1
            elif r == rank:
                if isinstance(idx, ir.LastIndex):
                    axes.append(AxisCoord(rank, "last"))
                else:
                    axes.append(AxisCoord(rank, "var", var=idx.var, offset=idx.offset))
                t, i = t + 1, i + 1
            elif (rank in self.splits and r == self.splits[rank][0] and i + 1 < len(idxs)
                  and idx_rank(i + 1) == self.splits[rank][1]
                  and isinstance(idx, ir.VarIndex) and isinstance(idxs[i + 1], ir.VarIndex)
                  and not idx.offset and not idxs[i + 1].offset):  # type: ignore[union-attr]
                axes.append(AxisCoord(rank, "split", var=idx.var, inner=idxs[i + 1].var,  # type: ignore[union-attr]
                                      tile_rank=self.splits[rank][1]))
                t, i = t + 1, i + 2
            elif (r in self.splits and t + 1 < len(ranks) and (ranks[t], ranks[t + 1]) == self.splits[r]
                  and isinstance(idx, ir.VarIndex) and not idx.offset):
                inner = self.splits[r][1]
                axes.append(AxisCoord(ranks[t], "outer", var=idx.var, tile_rank=inner))
                axes.append(AxisCoord(ranks[t + 1], "inner", var=idx.var, tile_rank=inner))
                t, i = t + 2, i + 1
            else:
                self.rank_mismatch(acc, info, t, i, r)
                return None
        if t < len(ranks) or i < len(idxs):
            self.error(acc.span, f"wrong number of indices: {acc.tensor} has ranks [{', '.join(ranks)}] "
                                 f"({len(ranks)} indices{self.split_hint(ranks)}), but {ir_text(acc)} gives {len(idxs)}")
            return None
        return tuple(axes)

    def split_hint(self, ranks: tuple[str, ...]) -> str:
        hints = [f"{r} may be read as {o.lower()}, {n.lower()}" for r in ranks if r in self.splits
                 for o, n in [self.splits[r]]]
        return "; " + "; ".join(hints) if hints else ""

    def rank_mismatch(self, acc: ir.Access, info: TensorInfo, t: int, i: int, r: str | None) -> None:
        idx = acc.indices[i]
        where = "declared" if info.kind != "intermediate" else "written"
        self.error(idx.span, f"inconsistent ranks for {acc.tensor}: it is {where} as "
                             f"[{', '.join(info.ranks)}], so index {i + 1} must be of rank {info.ranks[t]} "
                             f"({info.ranks[t].lower()}), but '{_index_text(idx)}' is of rank {r}")


def zip_axes(axes: tuple[AxisCoord, ...], acc: ir.Access):
    """Pairs (axis, the index that addresses it) for the one-index-per-axis kinds."""
    it = iter(acc.indices)
    for axis in axes:
        if axis.kind == "split":
            yield axis, next(it)
            next(it)
        elif axis.kind == "inner":
            continue
        else:
            yield axis, next(it)


def _is_affine(aff: ir.Affine) -> bool:
    match aff:
        case ir.AffBin(op="*", left=l, right=r):
            return _is_affine(l) and _is_affine(r) and not (ir.affine_vars(l) and ir.affine_vars(r))
        case ir.AffBin(left=l, right=r):
            return _is_affine(l) and _is_affine(r)
        case ir.AffNeg(operand=o):
            return _is_affine(o)
    return True


def _index_text(idx: ir.Index) -> str:
    from .show import show_index

    return show_index(idx)


def ir_text(acc: ir.Access) -> str:
    from .show import show_access

    return show_access(acc)
