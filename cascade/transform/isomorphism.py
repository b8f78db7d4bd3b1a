"""Are two cascades the same computation up to the names of their computed tensors?

Each cascade becomes a directed graph: a node per tensor labelled with its statement(s) written
with every tensor name replaced by `_` (operands of `+`, `*`, `max`, `min` sorted, so `a * b`
and `b * a` agree), its reduction, filters and left-side indices; inputs and outputs keep their
names. An edge from a reader to each tensor it reads carries the index texts of those reads.
Two cascades are isomorphic when networkx finds a label-preserving graph isomorphism.
"""

from __future__ import annotations

import networkx as nx

from ..lang import ir
from ..lang.show import show_compare, show_expr, show_index

_COMMUTATIVE = {"+", "*"}


def _canon(expr: ir.Expr) -> str:
    match expr:
        case ir.Read(access=a):
            return "_[" + ", ".join(show_index(i) for i in a.indices) + "]"
        case ir.Neg(operand=o):
            return f"-({_canon(o)})"
        case ir.BinOp(op=op, left=l, right=r):
            parts = [_canon(l), _canon(r)]
            if op in _COMMUTATIVE:
                parts.sort()
            return f"({parts[0]} {op} {parts[1]})"
        case ir.Call(fn=fn, args=args):
            parts = [_canon(a) for a in args]
            if fn in ("max", "min"):
                parts.sort()
            return f"{fn}({', '.join(parts)})"
    return show_expr(expr)


def _graph(c: ir.Cascade) -> nx.DiGraph:
    g = nx.DiGraph()
    outputs = {d.name for d in c.outputs}
    for d in c.inputs:
        g.add_node(d.name, label=f"input {d.name}[{', '.join(d.ranks)}]")
    labels: dict[str, list[str]] = {}
    for s in c.statements:
        lhs = "[" + ", ".join(show_index(i) for i in s.lhs.indices) + "]"
        if isinstance(s, ir.Init):
            text = f"init {lhs} = {_canon(s.expr)}"
        else:
            text = f"{lhs} = {_canon(s.expr)}"
            if s.reduction:
                text += f" :: {s.reduction.op}({', '.join(s.reduction.variables)})"
            if s.filters:
                text += " where " + " and ".join(sorted(show_compare(f) for f in s.filters))
        labels.setdefault(s.name, []).append(text)
    for name, texts in labels.items():
        tag = f"output {name}" if name in outputs else "computed"
        g.add_node(name, label=tag + " | " + " ; ".join(sorted(texts)))
    for s in c.statements:
        for a in ir.expr_reads(s.expr):
            reads = g.get_edge_data(s.name, a.tensor, {"reads": ()})["reads"]
            g.add_edge(s.name, a.tensor, reads=tuple(sorted(reads + (", ".join(show_index(i) for i in a.indices),))))
    return g


def isomorphic(a: ir.Cascade, b: ir.Cascade) -> bool:
    """True when `a` and `b` differ only in the names of computed (non-output) tensors, the
    order of their statements and the order of commutative operands."""
    if (a.splits, a.inputs, a.outputs) != (b.splits, b.inputs, b.outputs):
        return False
    return nx.is_isomorphic(_graph(a), _graph(b), node_match=lambda x, y: x["label"] == y["label"],
                            edge_match=lambda x, y: x["reads"] == y["reads"])


def name_mapping(a: ir.Cascade, b: ir.Cascade) -> dict[str, str] | None:
    """A tensor-name bijection from `a` to `b` under which they are the same cascade, or None."""
    if not isomorphic(a, b):
        return None
    matcher = nx.algorithms.isomorphism.DiGraphMatcher(
        _graph(a), _graph(b), node_match=lambda x, y: x["label"] == y["label"],
        edge_match=lambda x, y: x["reads"] == y["reads"])
    return next(matcher.isomorphisms_iter())
