"""The iteration-space graph (`cascade.analysis.graph`): nodes, labelled edges, carried edges, producer /
consumer / iteration-space queries, and the DOT text with pass annotations."""

from __future__ import annotations

import re
from pathlib import Path

import cascade
from cascade.analysis.graph import PASS_COLOURS, build_graph, node_id, to_dot

SPECS = Path(__file__).resolve().parent.parent / "specs"


def load(name: str):
    spec = cascade.load(SPECS / name)
    return spec, build_graph(spec.semantics)


def test_nodes_of_the_1pass_cascade():
    spec, g = load("attention/attention_1pass.einsum")
    assert g.einsums() == ("QK", "LM", "RM", "SLN", "PRM", "SLD", "SPD", "RD", "SLNV", "SPNV", "RNV", "AV")
    assert set(g.tensors()) == set(spec.semantics.tensors)
    kinds = {d["kind"] for _, d in g.graph.nodes(data=True)}
    assert kinds == {"einsum", "init", "tensor"}
    inits = sorted(d["name"] for _, d in g.graph.nodes(data=True) if d["kind"] == "init")
    assert inits == ["RD", "RM", "RNV"]
    tensor = g.graph.nodes[node_id("tensor", "RNV")]
    assert (tensor["role"], tensor["ranks"], tensor["iterative"]) == ("intermediate", ("M1", "F", "P"), "M1")
    assert g.graph.nodes[node_id("tensor", "K")]["role"] == "input"


def test_iteration_spaces_and_reductions():
    _, g = load("attention/attention_1pass.einsum")
    assert g.iteration_space("QK") == ("m1", "m0", "p", "e")
    assert g.iteration_space("AV") == ("f", "p")
    lm = g.graph.nodes[node_id("einsum", "LM")]
    assert (lm["reduced"], lm["reduce_op"], lm["recurrence"]) == (("m0",), "max", None)
    assert g.graph.nodes[node_id("einsum", "RD")]["recurrence"] == "m1"
    assert g.graph.nodes[node_id("einsum", "SPD")]["recurrence"] == "m1"


def test_producers_and_consumers():
    _, g = load("attention/attention_1pass.einsum")
    assert g.producer("RD") == "RD" and g.producer("Q") is None and g.producer("SLN") == "SLN"
    assert g.consumers("RD") == ("SPD", "AV")
    assert g.consumers("RM") == ("RM", "SLN", "PRM")  # the recurrence reads its previous step
    assert g.consumers("QK") == ("LM", "SLN")
    assert g.consumers("AV") == ()
    assert g.init_of("RD") and not g.init_of("QK")


def test_read_write_and_carried_edges():
    spec, g = load("attention/attention_1pass.einsum")
    reads = g.edges("read") + g.edges("carried")
    assert len(reads) == sum(len(s.reads) for s in spec.semantics.statements)
    assert len(g.edges("write")) == len(spec.semantics.statements)
    carried = sorted((a, b, d["access"], d["rank"]) for a, b, d in g.edges("carried"))
    assert carried == [("tensor:RD", "einsum:SPD", "RD[m1, p]", "M1"),
                       ("tensor:RM", "einsum:RM", "RM[m1, p]", "M1"),
                       ("tensor:RNV", "einsum:SPNV", "RNV[m1, f, p]", "M1")]
    labels = {(a, b, d["indices"]) for a, b, d in g.edges("read")}
    assert ("tensor:K", "einsum:QK", "[e, m1, m0]") in labels
    assert ("tensor:RM", "einsum:PRM", "[m1, p]") in labels  # not carried: PRM is no recurrence
    assert ("tensor:RNV", "einsum:AV", "[M1, f, p]") in labels
    writes = {(a, b, d["indices"]) for a, b, d in g.edges("write")}
    assert ("einsum:RM", "tensor:RM", "[m1+1, p]") in writes and ("init:RM", "tensor:RM", "[0, p]") in writes


def test_recurrence_along_a_later_axis_is_carried():
    spec = cascade.loads("cascade c\nshape M = 4, P = 3\ninput X[M, P]\ninit C[p, 0] = 0\n"
                         "C[p, m+1] = C[p, m] + X[m, p]\nY[p] = C[p, M]\n")
    g = build_graph(spec.semantics)
    assert [(a, b, d["rank"]) for a, b, d in g.edges("carried")] == [("tensor:C", "einsum:C", "M")]
    assert g.consumers("C") == ("C", "Y")


# ---------------------------------------------------------------- DOT

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_NODE = re.compile(rf"^  ({_QUOTED}|legend) \[(.*)\];$")
_EDGE = re.compile(rf"^  ({_QUOTED}) -> ({_QUOTED}) \[(.*)\];$")
_ATTRS = re.compile(rf"^(\w+=({_QUOTED}|[\w#.]+))(, \w+=({_QUOTED}|[\w#.]+))*$")


def parse_dot(text: str):
    """A strict reading of the DOT we write: nodes, edges (with attributes), nothing else."""
    lines = text.splitlines()
    assert re.fullmatch(rf"digraph {_QUOTED} {{", lines[0]) and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.startswith(("  rankdir", "  node [", "  edge [")):
            continue
        if m := _EDGE.match(line):
            assert _ATTRS.match(m.group(3)), line
            edges.append((m.group(1).strip('"'), m.group(2).strip('"'), m.group(3)))
        elif m := _NODE.match(line):
            assert _ATTRS.match(m.group(2)), line
            nodes[m.group(1).strip('"')] = m.group(2)
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
    for a, b, _ in edges:
        assert a in nodes and b in nodes
    return nodes, edges


def test_dot_with_passes():
    spec, g = load("attention/attention_3pass.einsum")
    nodes, edges = parse_dot(to_dot(g, spec.passes()))
    assert len(edges) == g.graph.number_of_edges()
    assert "M: pass 2" in nodes["einsum:SN"] and "M: pass 3" in nodes["einsum:A"]
    assert f'fillcolor="{PASS_COLOURS[0]}"' in nodes["einsum:QK"]
    assert f'fillcolor="{PASS_COLOURS[1]}"' in nodes["einsum:SN"]
    assert f'fillcolor="{PASS_COLOURS[2]}"' in nodes["einsum:A"]
    red = {(a, b) for a, b, attrs in edges if "#cc0000" in attrs}
    assert red == {("tensor:GM", "einsum:SN"), ("tensor:SD", "einsum:A")}
    assert "passes M: 3, P: 1, E: 1, F: 1" in nodes["legend"]


def test_dot_annotates_split_parts_and_between_passes():
    spec, g = load("attention/attention_1pass.einsum")
    nodes, edges = parse_dot(to_dot(g, spec.passes()))
    assert "M1: pass 1, M0: pass 2" in nodes["einsum:SLN"]
    assert "M0: after 2" in nodes["einsum:AV"] and "M1: pass" not in nodes["einsum:AV"]
    assert [(a, b) for a, b, attrs in edges if "#cc0000" in attrs] == [("tensor:RM", "einsum:SLN")]
    assert any(a == "tensor:RM" and b == "einsum:RM" and "dashed" in attrs for a, b, attrs in edges)


def test_dot_without_report_has_no_passes():
    _, g = load("matmul.einsum")
    nodes, edges = parse_dot(to_dot(g))
    assert "legend" not in nodes and not any("pass" in attrs for attrs in nodes.values())
    assert sorted((a, b) for a, b, _ in edges) == [("einsum:Z", "tensor:Z"), ("tensor:A", "einsum:Z"),
                                                   ("tensor:B", "einsum:Z")]


def test_dot_is_deterministic():
    spec, g = load("attention/mha_1pass.einsum")
    assert to_dot(g, spec.passes()) == to_dot(build_graph(spec.semantics), spec.passes())
