"""Robustness: mutated valid specs either load or raise `SpecError`, never anything else.

The seeds are every bundled spec plus a few small cascades that exercise filters, split views,
merged views, recurrences and constants. Mutations work on tokens (delete, duplicate, swap,
replace one name by another name of the same spec, replace an operator) and on characters
(delete, insert punctuation), and several may be stacked, so both the parser and the semantic
checker (and run-time shape resolution) see broken input of every kind.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascade
from cascade import SpecError

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = sorted((ROOT / "specs").rglob("*.einsum"))

SMALL = [
    # a filter with an affine expression over split parts, and a shape used as a value
    """shape M = 10, P = 8, M0 = 4, E = 3
split M = M1 * M0
input Q[E, P], K[E, M]
output S[M, P]
QK[m1, m0, p] = Q[e, p] * K[e, m1, m0] where m1*M0 + m0 <= p + 2
S[m, p] = QK[m, p] / sqrt(E)
""",
    # a merged view, a recurrence read at its last element, min/max/abs/log
    """cascade small_rec
shape N = 5, P = 3
input X[N, P]
output Y[P], W[N, P]
init R[0, p] = inf
R[n+1, p] = min(R[n, p], abs(X[n, p]))
Y[p] = R[N, p] + log(1 + X[n, p] * X[n, p]) :: prod(n)
W[n, p] = -X[n, p] - max(X[n, p], 0.5e1) where n != p and n >= 1
""",
    # a two-level split, a reduction of both parts, a fixed coordinate read
    """shape I = 7, J = 6, I0 = 2
split I = I1 * I0
input A[I, J]
output T[J], F[J]
T[j] = A[i1, i0, j] :: max(i1, i0)
F[j] = A[0, j] * A[I, j] - T[j]
""",
]

SEEDS = [p.read_text() for p in BUNDLED] + SMALL

TOKEN_RE = re.compile(r"\s+|[A-Za-z_][A-Za-z0-9_]*|\d+\.?\d*(?:[eE][+-]?\d+)?|::|<=|>=|==|!=|.", re.DOTALL)
PUNCT = list("[](),=:+-*/<>!#.$@_;{}'\"\\\t\n") + ["::", "==", "<=", "where", "and", "init", "inf", "-inf"]
OPERATORS = ["+", "-", "*", "/", "::", "max", "min", "exp", "sum", "prod", "=", "<", "where"]


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def test_tokenizer_round_trips_every_seed():
    for text in SEEDS:
        assert "".join(tokens(text)) == text


@pytest.mark.parametrize("text", SEEDS, ids=[p.stem for p in BUNDLED] + [f"small{i}" for i in range(len(SMALL))])
def test_seeds_are_valid(text):
    cascade.loads(text)


@st.composite
def mutated(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        toks = tokens(text)
        if not toks:
            break
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "rename", "operator",
                                     "char_delete", "char_insert", "line_delete", "line_duplicate"]))
        i = draw(st.integers(0, len(toks) - 1))
        if kind == "delete":
            del toks[i]
        elif kind == "duplicate":
            toks.insert(i, toks[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == "rename":  # a name replaced by another name of the same spec: semantic damage
            names = sorted({t for t in toks if t[0].isalpha()})
            named = [k for k, t in enumerate(toks) if t[0].isalpha()]
            if named:
                toks[draw(st.sampled_from(named))] = draw(st.sampled_from(names))
        elif kind == "operator":
            toks[i] = draw(st.sampled_from(OPERATORS))
        elif kind in ("line_delete", "line_duplicate"):
            lines = text.splitlines(keepends=True)
            k = draw(st.integers(0, len(lines) - 1))
            if kind == "line_delete":
                del lines[k]
            else:
                lines.insert(k, lines[k])
            text = "".join(lines)
            continue
        else:
            pos = draw(st.integers(0, len(text)))
            if kind == "char_delete":
                text = text[:pos] + text[pos + 1:]
            else:
                text = text[:pos] + draw(st.sampled_from(PUNCT)) + text[pos:]
            continue
        text = "".join(toks)
    return text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_load_or_raise_spec_error(text):
    try:
        cascade.loads(text, file="mutant.einsum")
    except SpecError as exc:
        assert exc.diagnostics, "a SpecError must carry at least one diagnostic"
        for d in exc.diagnostics:
            assert d.message and "\n" not in d.message
            assert "None" not in d.message, d.message
            if d.span is not None:
                assert d.span.file == "mutant.einsum"
                assert 1 <= d.span.line <= max(1, len(text.splitlines()))
                assert d.span.col >= 1
        str(exc)  # rendering (caret excerpts) must not fail either


NOISE = list("MNmnk[](),=+-*/:<>0123 \n") + ["input ", "output ", "shape ", "split ", "init ", "where ", "::"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(NOISE), max_size=40).map("".join))
def test_random_text_only_raises_spec_error(text):
    try:
        cascade.loads(text, file="noise.einsum")
    except SpecError as exc:
        assert exc.diagnostics
        str(exc)
