"""A small hypothesis fuzzer over mapping and target YAML: wrong types, bombs, extreme numbers.

Each generated file runs through every stage in-process (`map`, `run --check` of the generated
executor, `estimate`) under the suite's time and memory guard, and must end in exit 0 (with a
check that matches the reference) or exit 2 with a message; never 1, a traceback or a hang.
"""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_bombs import laughs

SHAPES = ["--shape", "K=4", "--shape", "M=6", "--shape", "N=3"]
RANK_NAMES = ["K", "M", "N", "K0", "K1", "K2", "M0", "M1", "M2", "N0", "N1", "Z", "A", "B", "default", "x"]
FUZZ = settings(max_examples=20, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

numbers = st.one_of(
    st.integers(-3, 12), st.integers(-(10**30), 10**30), st.sampled_from([0, 1, 2**40, 2**40 + 1, 10**18]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, 0.5, -0.0]),
)
scalars = st.one_of(
    numbers, st.booleans(), st.none(), st.sampled_from(RANK_NAMES),
    st.builds(lambda n: f"uniform_shape({n})", st.one_of(st.integers(-2, 9), st.just(10**25))),
    st.sampled_from(["no", "yes", "on", "", "mac", "array2d", "uniform_shape(2.5)", "ǅ", "\u2028"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(RANK_NAMES), inner, max_size=3)), max_leaves=10)

MAPPING_KEYS = ["partitioning", "loop-order", "spacetime", "fusion", "binding", "rank-order", "unknown-key"]
mapping_docs = st.dictionaries(st.sampled_from(MAPPING_KEYS), values, max_size=4)


def _tidy(doc) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@pytest.fixture(scope="module")
def fusemax_doc(request):
    from pathlib import Path

    root = Path(request.config.rootpath)
    return yaml.safe_load((root / "specs" / "targets" / "fusemax.yaml").read_text())


@FUZZ
@given(doc=st.one_of(mapping_docs, st.just("BOMB")))
def test_fuzzed_mappings_exit_0_or_2(cli, root, tmp_path, doc):
    path = tmp_path / "fuzz_mapping.yaml"
    path.write_text(laughs() if doc == "BOMB" else _tidy(doc), encoding="utf-8")
    spec = root / "specs" / "matmul.einsum"
    code, _, err = cli("map", spec, *SHAPES, "-m", path, seconds=20, megabytes=200)
    if code == 2:
        assert err.strip() and len(err) < 5000
        return
    code, out, err = cli("run", spec, *SHAPES, "-m", path, "--check", seconds=30, megabytes=200)
    assert code == 2 or "matches the reference" in out


@st.composite
def target_docs(draw, base):
    """The bundled fusemax target with one to three fields replaced, removed or added."""
    doc = yaml.safe_load(yaml.safe_dump(base))
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from([None, "dram", "buffer", "units", "op_costs"]))
        table = doc if section is None or not isinstance(doc.get(section), dict) else doc[section]
        keys = list(table) + ["clock_hz", "word_bytes", "extra_field"]
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["replace", "remove", "replace"]))
        if action == "remove":
            table.pop(key, None)
        else:
            table[key] = draw(values)
    return doc


@FUZZ
@given(data=st.data())
def test_fuzzed_targets_exit_0_or_2(cli, root, tmp_path, fusemax_doc, data):
    doc = data.draw(st.one_of(target_docs(fusemax_doc), st.just("BOMB")))
    path = tmp_path / "fuzz_target.yaml"
    path.write_text(laughs() if doc == "BOMB" else _tidy(doc), encoding="utf-8")
    code, out, err = cli("estimate", root / "specs" / "matmul.einsum", *SHAPES, "-t", path, "--json",
                         seconds=30, megabytes=300)
    if code == 0:
        import json

        json.loads(out, parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))
    else:
        assert err.strip() and len(err) < 5000
