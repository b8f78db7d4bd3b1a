"""Random legal mappings of the attention cascades: every generated executor matches the reference.

For the 3-, 2- and 1-pass cascades and the batched multi-head 1-pass one, at small shapes, the
strategy draws: partitions of P and M (none, one level or two; tile shapes that rarely divide
the rank, and for the 1-pass forms M's tile sets the cascade's own M0, possibly beyond M),
sometimes of E, F (accumulation over a loop) and B, H; a loop order that is a random
permutation of the loop ranks (levels of one rank kept outermost first); and a fusion grouping
that cuts the Einsums, in declaration order (a dependency order), into consecutive segments
that never cut through a recurrence, each segment listed as a group or left to the default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascade
from cascade.mapping.mapping_file import parse_mapping

ROOT = Path(__file__).resolve().parent.parent
ATTENTION = ROOT / "specs" / "attention"
FORMS = ("attention_3pass", "attention_2pass", "attention_1pass", "mha_1pass")
SPECS = {name: cascade.load(ATTENTION / f"{name}.einsum") for name in FORMS}


def einsum_order(spec: cascade.Spec) -> list[str]:
    """The Einsums in declaration order (every dependency comes before its reader)."""
    return list(dict.fromkeys(s.name for s in spec.semantics.statements if not s.is_init))


def recurrence_spans(spec: cascade.Spec, order: list[str]) -> list[tuple[int, int]]:
    """(first, last) positions in `order` of each recurrence group: no cut may fall inside."""
    sem = spec.semantics
    spans = []
    for step in sem.steps:
        if step.variable is not None:
            pos = [order.index(sem.statements[k].name) for k in step.statements if not sem.statements[k].is_init]
            spans.append((min(pos), max(pos)))
    return spans


@st.composite
def levels(draw, size: int) -> list[int] | None:
    """None, one tile shape, or two (the outer a multiple of the inner)."""
    kind = draw(st.sampled_from(["none", "one", "one", "two"]))
    if kind == "none":
        return None
    if kind == "one":
        return [draw(st.integers(1, size + 3))]
    inner = draw(st.integers(1, max(1, size // 2)))
    return [inner * draw(st.integers(2, 4)), inner]


@st.composite
def mapped_attention(draw):
    name = draw(st.sampled_from(FORMS))
    spec = SPECS[name]
    shapes = {"M": draw(st.integers(5, 40)), "P": draw(st.integers(5, 40)),
              "E": draw(st.integers(1, 4)), "F": draw(st.integers(1, 4))}
    if "B" in spec.shapes:
        shapes.update(B=draw(st.integers(1, 2)), H=draw(st.integers(1, 2)))
    parts: dict[str, list[int]] = {}
    for rank in ("P", "M"):
        if rank == "M" and spec.semantics.splits:
            parts["M"] = [draw(st.integers(1, shapes["M"] + 3))]  # the cascade's own split: sets M0
        elif (tiles := draw(levels(shapes[rank]))) is not None:
            parts[rank] = tiles
    for rank in ("E", "F", "B", "H"):
        if rank in shapes and draw(st.integers(0, 3)) == 0:
            parts[rank] = [draw(st.integers(1, 2))]
    loops = [f"{r}{len(t) - j}" for r, t in parts.items() for j in range(len(t))]
    order = draw(st.permutations(loops))
    for r, t in parts.items():  # the levels of one rank nest outermost first
        slots = sorted(i for i, x in enumerate(order) if x[0] == r)
        for i, level in zip(slots, [f"{r}{len(t) - j}" for j in range(len(t))]):
            order[i] = level
    einsums = einsum_order(spec)
    spans = recurrence_spans(spec, einsums)
    segments, current = [], [einsums[0]]
    for i in range(1, len(einsums)):
        inside = any(lo < i <= hi for lo, hi in spans)
        if not inside and draw(st.booleans()):
            segments.append(current)
            current = []
        current.append(einsums[i])
    segments.append(current)
    groups = [seg for seg in segments if draw(st.integers(0, 3)) > 0]
    lines = []
    if parts:
        lines.append("partitioning:")
        lines += [f"  {r}: [{', '.join(f'uniform_shape({n})' for n in t)}]" for r, t in parts.items()]
    if order and draw(st.integers(0, 4)) > 0:
        lines.append(f"loop-order:\n  default: [{', '.join(order)}]")
    if groups:
        lines.append("fusion:")
        lines += [f"  - [{', '.join(g)}]" for g in groups]
    return name, shapes, "\n".join(lines) + "\n"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapped_attention(), st.integers(0, 2**16))
def test_random_legal_mapping_matches_reference(case, seed):
    name, shapes, text = case
    mapping = parse_mapping(text, f"<random mapping for {name}>")
    spec = SPECS[name].with_shapes(**shapes)
    if "M" in mapping.partitioning and spec.semantics.splits:
        spec = spec.with_shapes(M0=mapping.partitioning["M"][0])  # the mapping sets the split's tile
    module = spec.executor(mapping)
    inputs = spec.random_inputs(seed)
    want = spec.run(inputs)
    got = module.run(**inputs)
    for out, expected in want.items():
        assert got[out].shape == expected.shape
        np.testing.assert_allclose(got[out], expected, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(expected).max()),
                                   err_msg=f"{name} {shapes}\n{text}")
