"""`cascade graph SPEC [-o FILE]`: the iteration-space graph, annotated with each Einsum's passes.

Without `-o` (or with `-o FILE.dot` / `.gv`) it writes DOT text, which always works. `.svg` and
`.png` are rendered with Graphviz's `dot` when it is on PATH, else with matplotlib when it is
installed, else the command says how to install either and exits 2.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..errors import CascadeError
from .common import add_shape_option, load_spec

FORMATS = (".dot", ".gv", ".svg", ".png")
INSTALL_HINT = ("install Graphviz (e.g. 'apt-get install graphviz', 'brew install graphviz' or "
                "'conda install graphviz') so that 'dot' is on PATH, or matplotlib ('pip install matplotlib', "
                "or 'pip install cascade[plot]'); or write DOT with -o FILE.dot and render it elsewhere")


def register(sub) -> None:
    p = sub.add_parser("graph", help="the iteration-space graph as DOT, SVG or PNG, with each Einsum's passes")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", metavar="FILE", help="write FILE (.dot, .gv, .svg or .png); default: DOT on stdout")
    add_shape_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in FORMATS:
        raise CascadeError(f"{out}: unknown output format '{out.suffix or '(none)'}': use one of {', '.join(FORMATS)}")
    spec = load_spec(args.spec, args.shape, needs_einsums="graph")
    from ..analysis.graph import build_graph, to_dot

    graph = build_graph(spec.semantics)
    report = spec.passes()
    dot = to_dot(graph, report)
    if out is None:
        print(dot, end="")
        return 0
    if out.suffix.lower() in (".dot", ".gv"):
        _write(out, dot.encode())
    elif shutil.which("dot"):
        _render_graphviz(dot, out)
    else:
        _render_matplotlib(graph, report, out)
    print(f"wrote {out}")
    return 0


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise CascadeError(f"{path}: cannot write: {exc.strerror}") from None


def _render_graphviz(dot: str, out: Path) -> None:
    import subprocess

    fmt = out.suffix.lower()[1:]
    try:
        done = subprocess.run(["dot", f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CascadeError(f"cannot run Graphviz 'dot' to render {out}: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise CascadeError(f"Graphviz 'dot' failed to render {out}: {message}")
    _write(out, done.stdout)


def _render_matplotlib(graph, report, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CascadeError(f"cannot render {out}: neither Graphviz's 'dot' nor matplotlib is available; "
                           + INSTALL_HINT) from None
    import networkx as nx

    from ..analysis.graph import PASS_COLOURS, einsum_pass_labels

    g = graph.graph
    flow = nx.DiGraph([(a, b) for a, b, d in g.edges(data=True) if d["kind"] != "carried"])
    flow.add_nodes_from(g.nodes)
    for layer, nodes in enumerate(nx.topological_generations(flow)):
        for n in nodes:
            flow.nodes[n]["layer"] = layer
    pos = nx.multipartite_layout(flow, subset_key="layer", align="horizontal", scale=-1)
    main = max(report.ranks, key=lambda r: r.passes) if report.ranks else None
    colours, labels = {}, {}
    for n in flow.nodes:
        d = g.nodes[n]
        labels[n] = d["name"] if d["kind"] != "init" else f"init {d['name']}"
        colours[n] = "#eeeeee" if d["kind"] == "tensor" else "#ffffff"
        if d["kind"] == "einsum":
            labels[n] += "\n" + "\n".join(einsum_pass_labels(report, d["name"]))
            e = main.einsum(d["name"]) if main is not None else None
            if e is not None and e.iterates:
                colours[n] = PASS_COLOURS[min(e.number, len(PASS_COLOURS)) - 1]
    waits = {(f"tensor:{w.tensor}", f"einsum:{e.name}") for r in report.ranks for e in r.einsums for w in e.waits}
    width = max(6.0, 1.8 * max(len(ns) for ns in nx.topological_generations(flow)))
    fig, ax = plt.subplots(figsize=(width, 1.3 * (1 + max(d["layer"] for _, d in flow.nodes(data=True)))))
    for shape, kinds in (("o", ("tensor",)), ("s", ("einsum", "init"))):
        nodes = [n for n in flow.nodes if g.nodes[n]["kind"] in kinds]
        nx.draw_networkx_nodes(flow, pos, nodelist=nodes, node_color=[colours[n] for n in nodes], node_shape=shape,
                               node_size=2200, edgecolors="#555555", ax=ax)
    nx.draw_networkx_labels(flow, pos, labels=labels, font_size=7, ax=ax)
    plain = [edge for edge in flow.edges if edge not in waits]
    nx.draw_networkx_edges(flow, pos, edgelist=plain, ax=ax, node_size=2200)
    nx.draw_networkx_edges(flow, pos, edgelist=sorted(waits & set(flow.edges)), ax=ax, node_size=2200,
                           edge_color="#cc0000", width=2)
    carried = [(a, b) for a, b, d in g.edges(data=True) if d["kind"] == "carried"]
    nx.draw_networkx_edges(flow, pos, edgelist=carried, ax=ax, style="dashed", edge_color="#888888",
                           connectionstyle="arc3,rad=0.3", node_size=2200)
    summary = ", ".join(f"{r.rank}: {r.passes}" for r in report.ranks)
    ax.set_title(f"{graph.cascade}  (passes {summary})", fontsize=10)
    ax.axis("off")
    try:
        fig.savefig(out, bbox_inches="tight")
    except OSError as exc:
        raise CascadeError(f"{out}: cannot write: {exc.strerror}") from None
    finally:
        plt.close(fig)
