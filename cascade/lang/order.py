"""Evaluation order: which statement runs after which, and which run as a recurrence group.

Statements depend on the writers of what they read. A read of a recurrence's tensor at its
iterative variable itself (`RD[m1, p]` when `RD[m1+1, p]` is written) is *carried*: it needs
the previous step only. Without the carried edges the graph must be acyclic (else: a
dependency cycle); with them, each strongly connected set of statements is a recurrence group
that advances its variable one coordinate at a time. Pure functions; no networkx, so that
`cascade check` starts fast.
"""

from __future__ import annotations

import heapq

from ..errors import Span
from .semantics import StatementInfo, Step, TensorInfo


def dependency_edges(statements: tuple[StatementInfo, ...], tensors: dict[str, TensorInfo]):
    """(writer, reader, carried) for every read; writer/reader are statement indices."""
    writers: dict[str, list[int]] = {}
    for k, s in enumerate(statements):
        writers.setdefault(s.name, []).append(k)
    edges: list[tuple[int, int, bool]] = []
    for j, s in enumerate(statements):
        for read in s.reads:
            info = tensors[read.access.tensor]
            for w in writers.get(read.access.tensor, []):
                carried = (
                    not statements[w].is_init
                    and info.iterative is not None
                    and any(a.rank == info.iterative and a.kind == "var" and a.offset == 0 for a in read.axes)
                )
                edges.append((w, j, carried))
    return edges


def strongly_connected(n: int, succ: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative (a chain of thousands of Einsums needs no recursion);
    components in reverse topological order."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    comps: list[list[int]] = []
    for root in range(n):
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]  # (node, next successor to look at)
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
            if work:  # back in the caller: fold this node's low-link into it
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return comps


def _topological(nodes: list[int], edges: list[tuple[int, int]], key) -> list[int]:
    """Kahn's algorithm over `nodes`, ties broken by `key` (source order)."""
    indeg = {v: 0 for v in nodes}
    succ: dict[int, list[int]] = {v: [] for v in nodes}
    for a, b in edges:
        if a in indeg and b in indeg and a != b:
            succ[a].append(b)
            indeg[b] += 1
    heap = [(key(v), v) for v in nodes if indeg[v] == 0]
    heapq.heapify(heap)
    out = []
    while heap:
        _, v = heapq.heappop(heap)
        out.append(v)
        for w in succ[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(heap, (key(w), w))
    return out


def evaluation_order(statements: tuple[StatementInfo, ...], tensors: dict[str, TensorInfo]):
    """(steps, problems): the order to evaluate statements in, or (span, message) problems."""
    n = len(statements)
    edges = dependency_edges(statements, tensors)
    problems: list[tuple[Span | None, str]] = []
    names = [s.name if not s.is_init else f"init {s.name}" for s in statements]

    plain = [[] for _ in range(n)]  # type: list[list[int]]
    for a, b, carried in edges:
        if not carried:
            plain[a].append(b)
    for comp in strongly_connected(n, plain):
        if len(comp) > 1 or comp[0] in plain[comp[0]]:
            cycle = " -> ".join(names[k] for k in comp + comp[:1])
            first = statements[comp[0]].statement
            problems.append((first.span, (f"dependency cycle: {cycle}; a tensor cannot depend on itself "
                                          "except through a recurrence (X[m+1] = f(X[m]))")))
    if problems:
        return (), problems

    full = [[] for _ in range(n)]  # type: list[list[int]]
    for a, b, _ in edges:
        full[a].append(b)
    comps = strongly_connected(n, full)
    comp_of = {v: ci for ci, comp in enumerate(comps) for v in comp}
    steps_by_comp: dict[int, Step] = {}
    for ci, comp in enumerate(comps):
        carried = [(a, b) for a, b, c in edges if c and a in comp and b in comp]
        if not carried:
            steps_by_comp[ci] = Step(tuple(comp))
            continue
        variables = {tensors[statements[a].name].iterative.lower() for a, _ in carried}  # type: ignore[union-attr]
        if len(variables) > 1:
            problems.append((statements[comp[0]].statement.span,
                             f"recurrences over {', '.join(sorted(variables))} depend on each other in a cycle"))
            continue
        var = variables.pop()
        members = {statements[k].name for k in comp}
        for k in comp:  # inside the group, a member is read only at the current or previous step
            for read in statements[k].reads:
                info = tensors[read.access.tensor]
                if read.access.tensor not in members or info.iterative is None:
                    continue
                axis = next((a for a in read.axes if a.rank == var.upper()), None)
                if axis is not None and not (axis.kind == "var" and axis.offset in (0, 1)):
                    problems.append((read.access.span, f"dependency cycle: {names[k]} reads "
                                     f"{read.access.tensor} at a fixed coordinate of {var.upper()} inside the "
                                     f"recurrence over {var} that computes it; the value exists only after the "
                                     "last step"))
            lhs_vars = statements[k].statement.lhs.variables
            if var not in lhs_vars:
                problems.append((statements[k].statement.span,
                                 (f"{names[k]} is part of the recurrence over {var} but does not keep {var} "
                                  f"on its left side: it would need the whole {var.upper()} fiber at every step "
                                  "(dependency cycle)")))
        inner = _topological(comp, [(a, b) for a, b, c in edges if not c], key=lambda v: v)
        steps_by_comp[ci] = Step(tuple(inner), var)
    if problems:
        return (), problems
    comp_edges = [(comp_of[a], comp_of[b]) for a, b, _ in edges if comp_of[a] != comp_of[b]]
    order = _topological(list(range(len(comps))), comp_edges, key=lambda ci: min(comps[ci]))
    return tuple(steps_by_comp[ci] for ci in order), problems
