"""The iteration-space graph of a cascade (networkx) and its DOT export.

Nodes are Einsums, inits and tensors (ids `einsum:QK`, `init:RM`, `tensor:QK`: an Einsum is named
after the tensor it writes, so the kinds keep them apart). Edges:
- `read`    tensor -> Einsum, labelled with the index expressions (`[m, p]`);
- `write`   Einsum -> tensor, labelled with the left side's indices (`[m1+1, p]`);
- `carried` tensor -> Einsum for a recurrence's read of the previous step (`RD[m1, p]` in the
  group that writes `RD[m1+1, p]`), labelled with the rank it is carried along.
Each Einsum node holds its iteration space (the rank variables it mentions) and what it
reduces; each tensor node its ranks and role. `IterationGraph` answers producer / consumer /
iteration-space questions; `to_dot` writes Graphviz text, optionally annotated with a
`PassReport` (each Einsum's pass per rank, and the reads that force a new pass).

networkx is imported when a graph is built, never at module import (`cascade check` and
`cascade passes` do not need it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lang.semantics import Semantics
from ..lang.show import show_access, show_index, show_statement

if TYPE_CHECKING:
    from .passes import PassReport

PASS_COLOURS = ("#d6eaff", "#ffe0b0", "#ffc4c4", "#e2d2ff", "#c8f0d0", "#d9d9d9")


def node_id(kind: str, name: str) -> str:
    """`einsum:QK`, `init:RM`, `tensor:QK`."""
    return f"{kind}:{name}"


@dataclass(frozen=True)
class IterationGraph:
    """A cascade's iteration-space graph; `graph` is a `networkx.MultiDiGraph`."""

    cascade: str
    graph: Any

    def einsums(self) -> tuple[str, ...]:
        """Einsum names in evaluation order."""
        nodes = [(d["order"], d["name"]) for _, d in self.graph.nodes(data=True) if d["kind"] == "einsum"]
        return tuple(name for _, name in sorted(nodes))

    def tensors(self) -> tuple[str, ...]:
        return tuple(d["name"] for _, d in self.graph.nodes(data=True) if d["kind"] == "tensor")

    def iteration_space(self, einsum: str) -> tuple[str, ...]:
        """The rank variables an Einsum iterates (left side first, then reduced ones)."""
        return self.graph.nodes[node_id("einsum", einsum)]["variables"]

    def producer(self, tensor: str) -> str | None:
        """The Einsum writing a tensor (None for an input)."""
        for src, _, d in self.graph.in_edges(node_id("tensor", tensor), data=True):
            if self.graph.nodes[src]["kind"] == "einsum":
                return self.graph.nodes[src]["name"]
        return None

    def init_of(self, tensor: str) -> bool:
        return self.graph.has_node(node_id("init", tensor))

    def consumers(self, tensor: str) -> tuple[str, ...]:
        """Einsums reading a tensor, in evaluation order (an init reading it as `init X`); a
        recurrence reading its own previous step counts."""
        found = set()
        for _, dst in self.graph.out_edges(node_id("tensor", tensor)):
            d = self.graph.nodes[dst]
            found.add((d["order"], d["name"] if d["kind"] == "einsum" else f"init {d['name']}"))
        return tuple(name for _, name in sorted(found))

    def edges(self, kind: str | None = None) -> list[tuple[str, str, dict]]:
        """(source id, target id, attributes) of every edge, or of one kind."""
        return [(a, b, d) for a, b, d in self.graph.edges(data=True) if kind is None or d["kind"] == kind]


def build_graph(sem: Semantics) -> IterationGraph:
    """The iteration-space graph of a checked cascade."""
    import networkx as nx

    g = nx.MultiDiGraph(name=sem.cascade.name)
    for name, info in sem.tensors.items():
        g.add_node(node_id("tensor", name), kind="tensor", name=name, role=info.kind, ranks=info.ranks,
                   iterative=info.iterative)
    order = {k: i for i, k in enumerate(k for step in sem.steps for k in step.statements)}
    carried_along = {k: step.variable for step in sem.steps if step.variable for k in step.statements}
    group_of = {k: {sem.statements[j].name for j in step.statements} for step in sem.steps for k in step.statements}
    for k, s in enumerate(sem.statements):
        kind = "init" if s.is_init else "einsum"
        me = node_id(kind, s.name)
        g.add_node(me, kind=kind, name=s.name, text=show_statement(s.statement), variables=s.variables,
                   reduced=s.reduced, reduce_op=s.reduce_op if s.reduced else None,
                   recurrence=carried_along.get(k), order=order[k])
        for read in s.reads:
            t = read.access.tensor
            info = sem.tensors[t]
            var = carried_along.get(k)
            carried = var is not None and t in group_of[k] and any(
                a.rank == info.iterative and a.kind == "var" and a.var == var and a.offset == 0 for a in read.axes)
            g.add_edge(node_id("tensor", t), me, kind="carried" if carried else "read",
                       indices=_indices(read.access), access=show_access(read.access),
                       rank=sem.rank_of(var) if carried and var else None)
        g.add_edge(me, node_id("tensor", s.name), kind="write", indices=_indices(s.write.access),
                   access=show_access(s.write.access), rank=None)
    return IterationGraph(sem.cascade.name, g)


def _indices(access) -> str:
    return "[" + ", ".join(show_index(i) for i in access.indices) + "]"


# ---------------------------------------------------------------- DOT


def to_dot(graph: IterationGraph, report: PassReport | None = None) -> str:
    """Graphviz DOT text; with a report, Einsums show their pass per rank and are coloured by
    their pass over the rank with the most passes, and reads that force a new pass are red."""
    g = graph.graph
    main = max(report.ranks, key=lambda r: r.passes) if report and report.ranks else None
    waits = _waits(report)
    lines = [f"digraph {_q(graph.cascade)} {{",
             "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    if report is not None:
        summary = ", ".join(f"{r.rank}: {r.passes}" for r in report.ranks)
        legend = f"{graph.cascade}\\npasses {summary}"
        if main is not None and main.passes > 1:
            legend += f"\\nfill colour = pass over {main.rank}; red edges = waits for a complete value"
        lines.append(f'  legend [shape=note, style=filled, fillcolor="#fffbe6", label={_q(legend, raw=True)}];')
    for n, d in sorted(g.nodes(data=True), key=lambda item: (item[1].get("order", -1), item[0])):
        lines.append(f"  {_q(n)} [{_node_attrs(d, report, main)}];")
    for a, b, d in sorted(g.edges(data=True), key=lambda e: (e[0], e[1], e[2]["kind"], e[2]["indices"])):
        attrs = {"label": d["indices"]}
        if d["kind"] == "carried":
            attrs.update(label=f"{d['indices']} (carried along {d['rank']})", style="dashed", color="#555555")
        cause = waits.get((g.nodes[a]["name"], g.nodes[b]["name"])) if g.nodes[b]["kind"] == "einsum" else None
        if cause and d["kind"] == "read":
            attrs.update(label=f"{d['indices']}\\nwaits: {cause}", color="#cc0000", fontcolor="#cc0000",
                         penwidth="2")
        body = ", ".join(f"{k}={_q(v, raw=k == 'label')}" for k, v in attrs.items())
        lines.append(f"  {_q(a)} -> {_q(b)} [{body}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _waits(report: PassReport | None) -> dict[tuple[str, str], str]:
    """(tensor, Einsum) -> 'complete after pass 1 of M; ...' for every read that forces a pass."""
    out: dict[tuple[str, str], list[str]] = {}
    for r in report.ranks if report else ():
        for e in r.einsums:
            for w in e.waits:
                out.setdefault((w.tensor, e.name), []).append(f"{r.rank} pass {e.number}")
    return {key: "; ".join(v) for key, v in out.items()}


def einsum_pass_labels(report: PassReport, name: str) -> list[str]:
    """['M: pass 2', 'P: pass 1', 'M0: after 2', ...] for one Einsum: its pass over every rank
    it iterates, and where it runs between the passes of a rank with more than one."""
    labels = []
    for r in report.ranks:
        e = r.einsum(name)
        if e.iterates:
            labels.append(f"{r.rank}: pass {e.number}")
        elif r.passes > 1:
            labels.append(f"{r.rank}: after {e.number}" if e.number else f"{r.rank}: before 1")
    return labels


def _node_attrs(d: dict, report: PassReport | None, main) -> str:
    if d["kind"] == "tensor":
        ranks = ", ".join(r + ("+1" if r == d["iterative"] else "") for r in d["ranks"])
        label = f"{d['name']}[{ranks}]" + (f"\\n{d['role']}" if d["role"] != "intermediate" else "")
        fill = {"input": "#eeeeee", "output": "#fff2cc"}.get(d["role"], "#ffffff")
        return f'shape=ellipse, style=filled, fillcolor="{fill}", label={_q(label, raw=True)}'
    label = _escape(d["text"]) + "\\niterates " + (", ".join(d["variables"]) or "nothing")
    if d["recurrence"]:
        label += f" (recurrence along {d['recurrence']})"
    fill = "#ffffff"
    if d["kind"] == "einsum" and report is not None:
        label += "\\n" + ", ".join(einsum_pass_labels(report, d["name"]))
        if main is not None:
            e = main.einsum(d["name"])
            if e.iterates:
                fill = PASS_COLOURS[min(e.number, len(PASS_COLOURS)) - 1]
    style = "rounded,filled" if d["kind"] == "einsum" else "rounded,filled,dashed"
    return f'shape=box, style="{style}", fillcolor="{fill}", label="{label}"'


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _q(text: str, raw: bool = False) -> str:
    """A quoted DOT string; `raw` keeps `\\n` line breaks already in the text."""
    if raw:
        return '"' + text.replace('"', '\\"') + '"'
    return '"' + _escape(text) + '"'
