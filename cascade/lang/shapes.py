"""Rank shapes at run time: spec defaults, user overrides, and the outer ranks of splits.

`resolve_shapes` is the one place that says what size every rank has; a rank left without a
shape is a `SpecError` at its first mention, saying how to give it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import Diagnostic, Span, SpecError, source_lines
from ..limits import MAX_SHAPE, parse_int_text, quote, read_int
from . import ir
from .semantics import Semantics


def parse_shape_overrides(items: list[str] | None) -> dict[str, int]:
    """`['M=4096', 'P=64']` -> `{'M': 4096, 'P': 64}`; raises SpecError on a malformed item."""
    result: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise SpecError([Diagnostic(None, f"--shape {quote(item)}: write RANK=N with N a positive integer, "
                                              "e.g. M=1024")])
        try:
            result[name] = parse_int_text(value, f"--shape {quote(item)}", _BadShape, 1, MAX_SHAPE)
        except _BadShape:
            raise SpecError([Diagnostic(None, f"--shape {quote(item)}: write RANK=N with N a positive integer "
                                              f"(ASCII digits, at most {MAX_SHAPE}), e.g. M=1024")]) from None
    return result


class _BadShape(Exception):
    pass


def _shape_value(what: str, value: object) -> int:
    """A rank size: a whole number from 1 to MAX_SHAPE (never a bool, float, string or NaN)."""
    try:
        return read_int(value, what, _BadShape, 1, MAX_SHAPE)
    except _BadShape as exc:
        raise SpecError([Diagnostic(None, f"{exc} (a rank's shape)")]) from None


def resolve_shapes(sem: Semantics, overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Every rank's size: spec `shape` defaults, then overrides; split outer ranks derived."""
    cascade = sem.cascade
    shapes = cascade.shape_dict()
    known = known_ranks(cascade)
    derived = {outer: (rank, inner) for rank, (outer, inner) in sem.splits.items()}
    problems: list[Diagnostic] = []
    if overrides is not None and not isinstance(overrides, Mapping):
        raise SpecError([Diagnostic(None, f"shapes {quote(overrides)}: give a mapping of rank name to size, "
                                          "e.g. {'M': 1024}")])
    for name, size in (overrides or {}).items():
        if not isinstance(name, str):
            problems.append(Diagnostic(None, f"shape override {quote(name)}: a rank name is a string such as 'M'"))
            continue
        try:
            size = _shape_value(f"shape of rank {quote(name)}", size)
        except SpecError as exc:
            problems.extend(exc.diagnostics)
            continue
        if name in derived:
            rank, inner = derived[name]
            problems.append(Diagnostic(None, f"--shape {name}={size}: {name} is derived as ceil({rank} / {inner}); "
                                             f"set {inner} instead"))
        elif name not in known:
            problems.append(Diagnostic(None, f"--shape {name}={size}: the cascade has no rank {name} "
                                             f"(its ranks: {', '.join(sorted(known))})"))
        else:
            shapes[name] = size
    for rank in sorted(known, key=lambda r: first_mention(cascade, r)[0]):
        if rank in shapes or rank in derived:
            continue
        span = first_mention(cascade, rank)[1]
        line = source_lines(cascade.source)[span.line - 1] if span and cascade.source else ""
        problems.append(Diagnostic(span, f"rank {rank} has no shape: add it to the 'shape' line "
                                         f"or pass --shape {rank}=<size>", line))
    for rank, (outer, inner) in sem.fixed_splits().items():
        if rank in shapes and inner in shapes and shapes[rank] % shapes[inner]:
            problems.append(Diagnostic(first_mention(cascade, rank)[1],
                                       f"{rank} = {shapes[rank]} is not a multiple of {inner} = {shapes[inner]}: "
                                       f"{sem.fixed_split_reason(rank)}, so {rank} must be {outer} * {inner} "
                                       f"exactly; give {rank} a multiple of {inner}"))
    if problems:
        raise SpecError(problems)
    for outer, (rank, inner) in derived.items():
        shapes[outer] = -(-shapes[rank] // shapes[inner])
    return shapes


def known_ranks(cascade: ir.Cascade) -> set[str]:
    ranks = {s.rank for s in cascade.shapes}
    for split in cascade.splits:
        ranks.add(split.rank)
        ranks.update(split.parts)
    for decl in cascade.inputs + cascade.outputs:
        ranks.update(decl.ranks)
    return ranks


def first_mention(cascade: ir.Cascade, rank: str) -> tuple[int, Span | None]:
    """(order key, span) of the first place a rank is named or iterated, for error messages."""
    best: tuple[int, Span | None] = (1 << 30, None)
    for decl in cascade.inputs + cascade.outputs:
        if rank in decl.ranks and decl.span and decl.span.line < best[0]:
            best = (decl.span.line, decl.span)
    for split in cascade.splits:
        if rank in (split.rank, *split.parts) and split.span and split.span.line < best[0]:
            best = (split.span.line, split.span)
    for stmt in cascade.statements:
        for acc in (stmt.lhs, *ir.expr_reads(stmt.expr)):
            for idx in acc.indices:
                if isinstance(idx, ir.VarIndex) and idx.var.upper() == rank and idx.span and idx.span.line < best[0]:
                    best = (idx.span.line, idx.span)
    return best


def tensor_shape(sem: Semantics, tensor: str, shapes: Mapping[str, int]) -> tuple[int, ...]:
    info = sem.tensors[tensor]
    return tuple(shapes[r] + (1 if r == info.iterative else 0) for r in info.ranks)
