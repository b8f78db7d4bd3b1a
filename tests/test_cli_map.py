"""`cascade map`, `cascade compile` and `cascade run -m` as the user sees them.

Golden files (tests/golden/map/*.txt, tests/golden/compile/*.py.txt) hold the text the user
reads: the loop nest of every bundled mapping and the generated module of the 1-pass tiled
mapping. Rewrite them with `pytest --update-golden` and review the diff. The readability tests
check properties of generated modules rather than their text: they compile, have one comment
line per Einsum naming it, and every identifier outside comments and strings is Python's,
NumPy's, the module's own, or derived from a validated spec name.
"""

from __future__ import annotations

import builtins
import importlib.util
import io
import json
import keyword
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.cli import main
from cascade.lang.show import show_statement
from cascade.mapping.mapping_file import parse_mapping

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = sorted((ROOT / "mappings").glob("*/*.yaml"))
SPEC_OF = {p.stem: p for p in (ROOT / "specs").rglob("*.einsum")}
A1 = "specs/attention/attention_1pass.einsum"
TILED = "mappings/attention_1pass/tiled.yaml"


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def at_root(monkeypatch):
    """Run commands from the repository root so that the paths they echo are relative."""
    monkeypatch.chdir(ROOT)


# ------------------------------------------------------------------ golden files


@pytest.mark.parametrize("mapping", BUNDLED, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_map_golden(at_root, capsys, golden, mapping: Path):
    code, out, err = cli(capsys, "map", rel(SPEC_OF[mapping.parent.name]), "-m", rel(mapping))
    assert code == 0 and err == ""
    golden(f"map/{mapping.parent.name}__{mapping.stem}.txt", out)


def test_map_golden_default_mapping(at_root, capsys, golden):
    code, out, err = cli(capsys, "map", A1, "--shape", "M=600")
    assert code == 0 and err == ""
    golden("map/attention_1pass__default.txt", out)


def test_compile_golden(at_root, capsys, golden, tmp_path):
    out_path = tmp_path / "attention_1pass_tiled.py"
    code, _, err = cli(capsys, "compile", A1, "-m", TILED, "-o", str(out_path))
    assert code == 0 and err == ""
    golden("compile/attention_1pass__tiled.py.txt", out_path.read_text())


# ------------------------------------------------------------------ what `cascade map` shows


def test_map_shows_loops_and_storage(at_root, capsys):
    code, out, _ = cli(capsys, "map", "specs/attention/mha_1pass.einsum", "-m", "mappings/mha_1pass/fusemax.yaml")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "cascade mha_1pass  (specs/attention/mha_1pass.einsum)"
    assert lines[1] == "mapping mappings/mha_1pass/fusemax.yaml"
    assert "DRAM    Q, K, V, AV" in lines  # everything else stays on chip
    assert any(re.fullmatch(r"\s+for m1 in \[0, \d+\):", line) for line in lines)
    sem = cascade.load(ROOT / "specs/attention/mha_1pass.einsum").semantics
    for s in sem.statements:  # one line per statement, at the depth where it runs
        text = show_statement(s.statement).removeprefix("init ")
        assert sum(line.strip().removeprefix("init ").startswith(text) for line in lines) == 1, text


def test_map_marks_space_loops(at_root, capsys):
    code, out, _ = cli(capsys, "map", "specs/attention/scores_softmax.einsum", "-m",
                       "mappings/scores_softmax/grayskull_fused.yaml")
    assert code == 0
    # grayskull_fused.yaml: P1 and M1 in space (the 8 x 8 core grid), at the default n = 1024
    assert re.search(r"^  parallel for p1 in \[0, 8\):\s+# space$", out, re.MULTILINE)
    assert re.search(r"^    parallel for m1 in \[0, 8\):\s+# space$", out, re.MULTILINE)


def test_map_trip_counts_stop_at_the_rank(capsys):
    spec = ROOT / "specs/attention/attention_3pass.einsum"
    mapping = parse_mapping("partitioning: {P: [uniform_shape(8), uniform_shape(2)]}")
    text = cascade.load(spec, {"P": 11}).loop_nest(mapping)
    # P = 11 in tiles of 8 then 2: p2 runs twice, p1 at most 4 times; the last tile of p0 has 1
    assert "for p2 in [0, 2):" in text and "for p1 in [0, 4):" in text
    text = cascade.load(spec, {"P": 5}).loop_nest(mapping)
    assert "for p2 in [0, 1):" in text and "for p1 in [0, 3):" in text  # 5 = one P2 tile of 3 P1 tiles


def test_map_json(at_root, capsys):
    code, out, _ = cli(capsys, "map", A1, "-m", TILED, "--json", "--shape", "P=300")
    assert code == 0
    data = json.loads(out)
    assert data["cascade"] == "attention_1pass"
    assert data["partitions"]["P"] == {"levels": ["P1", "P0"], "extents": [2, 256]}
    assert data["shapes"]["M0"] == 256 and data["shapes"]["P"] == 300
    [group] = data["groups"]
    assert group["loops"] == ["P1", "M1"]
    assert {t for t, s in data["storage"].items() if s["dram"]} == {"Q", "K", "V", "AV"}


# ------------------------------------------------------------------ readable generated modules

READABLE = [(A1, TILED), ("specs/attention/mha_1pass.einsum", "mappings/mha_1pass/fusemax.yaml"),
            ("specs/attention/mha_3pass.einsum", "mappings/mha_3pass/flat.yaml"),
            ("specs/softmax_online.einsum", None), ("tests/cascades/split_intermediate_merge.einsum", None)]

# Names the module defines for itself (its prelude and fixed locals).
MODULE_NAMES = {"numpy", "np", "SHAPES", "run", "run_traced", "inputs", "trace", "outputs", "dt", "value", "present",
                "_execute", "_rd", "_wr", "_input", "InputError", "_fill", "_merge", "_where", "tensor", "view", "array",
                "ndim", "shape", "lo", "hi", "index",
                "dtype", "optimize", "axis"}  # NumPy keyword arguments
SUFFIX = re.compile(r"(?:_tile\d*|_prev|_cur|_present|_lo|_hi|_n)?_*\d*\Z")


def code_without_comments_and_strings(source: str) -> str:
    return " ".join(tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                    if tok.type not in (tokenize.COMMENT, tokenize.STRING))


def identifiers_outside_comments_and_strings(source: str) -> list[tuple[str, str]]:
    """(identifier, previous significant token) for every NAME token of the code itself."""
    out, prev = [], ""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT):
            continue
        if tok.type == tokenize.NAME:
            out.append((tok.string, prev))
        prev = tok.string
    return out


def spec_names(spec: cascade.Spec, shapes: dict) -> set[str]:
    ranks = set(shapes)
    return set(spec.semantics.tensors) | ranks | {r.lower() for r in ranks}


@pytest.mark.parametrize("spec_path, mapping", READABLE, ids=lambda x: Path(x).stem if x else "default")
def test_generated_module_is_readable(spec_path, mapping):
    spec = cascade.load(ROOT / spec_path)
    source = spec.compile(ROOT / mapping if mapping else None)
    compile(source, f"<{Path(spec_path).stem} executor>", "exec")
    comments = [line.strip() for line in source.splitlines() if line.strip().startswith("#")]
    for s in spec.semantics.statements:  # one comment line per Einsum (and init), naming it
        text = show_statement(s.statement)
        assert comments.count(f"# {text}") == 1, text
        prefix = f"# init {s.name}[" if s.is_init else f"# {s.name}["
        assert sum(c.startswith(prefix) for c in comments) == 1, text
    code = re.sub(r"\s+", "", code_without_comments_and_strings(source))
    for s in spec.semantics.statements:  # spec expressions appear only in comments
        rhs = show_statement(s.statement).split(" = ", 1)[1]
        if any(op in rhs for op in "(+-*/"):
            assert re.sub(r"\s+", "", rhs) not in code, rhs
    names = spec_names(spec, spec.bind(ROOT / mapping if mapping else None).shapes)
    allowed = set(keyword.kwlist) | set(dir(builtins)) | MODULE_NAMES
    for name, prev in identifiers_outside_comments_and_strings(source):
        if prev == "." or name in allowed:
            continue
        base = SUFFIX.sub("", name)
        assert base in names, f"identifier {name!r} is neither Python's nor derived from a spec name"


HOSTILE = """
cascade hostile
shape M = 5, N = 4, R = 3
input np[M, N], run[N, R], SHAPES[R]
output value[M, R], trace[M], inputs[R]
dt[m, r]      = np[m, n] * run[n, r]
value[m, r]   = exp(dt[m, r]) - 1
trace[m]      = dt[m, r] :: max(r)
inputs[r]     = SHAPES[r] + dt[m, r]
"""


def test_spec_names_that_shadow_module_names():
    """Tensors named like the module's own names (np, run, trace, value, dt, inputs, SHAPES) are
    renamed in the code, keep their names in run()'s keywords and results, and still compute."""
    spec = cascade.loads(HOSTILE)
    mapping = parse_mapping("partitioning: {M: [uniform_shape(2)]}\n"
                                            "fusion: [[dt, value, trace, inputs]]\n")
    source = spec.compile(mapping)
    compile(source, "<hostile executor>", "exec")
    module = spec.executor(mapping)
    inputs = spec.random_inputs(0)
    got, want = module.run(**inputs), spec.run(inputs)
    assert set(got) == {"value", "trace", "inputs"}
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ cascade compile / cascade run -m


def test_compile_writes_an_importable_module(at_root, capsys, tmp_path):
    out_path = tmp_path / "tiled_executor.py"
    code, out, err = cli(capsys, "compile", A1, "-m", TILED, "-o", str(out_path), "--shape", "M=300")
    assert code == 0 and err == "" and str(out_path) in out
    source = out_path.read_text()
    doc = source.split('"""')[1]
    assert "attention_1pass" in doc and A1 in doc and TILED in doc and "M=300" in doc
    module_spec = importlib.util.spec_from_file_location("tiled_executor", out_path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    spec = cascade.load(ROOT / A1, {"M": 300, "P": 200, "E": 8, "F": 8})  # shapes come from the inputs
    inputs = spec.random_inputs(2)
    np.testing.assert_allclose(module.run(**inputs)["AV"], spec.run(inputs)["AV"], rtol=1e-9, atol=1e-12)
    _, trace = module.run_traced(**inputs)
    assert set(trace) == {"reads", "writes"} and trace["writes"] == {"AV": 8 * 200}


def test_compile_default_mapping(at_root, capsys, tmp_path):
    out_path = tmp_path / "matmul_executor.py"
    code, _, err = cli(capsys, "compile", "specs/matmul.einsum", "-o", str(out_path))
    assert code == 0 and err == ""
    assert "default (no splits, nothing fused)" in out_path.read_text()


@pytest.mark.parametrize("name", ["out.txt", "out", "out.py.bak"])
def test_compile_rejects_a_non_python_output(at_root, capsys, tmp_path, name):
    code, out, err = cli(capsys, "compile", A1, "-m", TILED, "-o", str(tmp_path / name))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: -o ") and "name it something.py" in err
    assert not (tmp_path / name).exists()


def test_compile_into_a_missing_folder(at_root, capsys, tmp_path):
    code, _, err = cli(capsys, "compile", A1, "-o", str(tmp_path / "no" / "such" / "x.py"))
    assert code == 2 and "cannot write" in err and "Traceback" not in err


def test_run_check_trace_json(at_root, capsys):
    code, out, err = cli(capsys, "run", A1, "-m", TILED, "--check", "--trace", "--json",
                         "--shape", "M=300", "--shape", "P=200", "--shape", "E=8", "--shape", "F=8")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert {"cascade", "evaluator", "mapping", "shapes", "seed", "seconds", "outputs", "check", "trace"} <= set(data)
    assert data["evaluator"] == "executor" and data["mapping"] == TILED
    assert set(data["check"]["AV"]) == {"max_abs", "max_rel", "ok"} and data["check"]["AV"]["ok"] is True
    assert data["check"]["AV"]["max_rel"] < 1e-9
    # tiled.yaml: P0 = 256 >= P, so one query tile: Q, K, V each read once, AV written once
    assert data["trace"] == {"reads": {"Q": 8 * 200, "K": 8 * 300, "V": 8 * 300}, "writes": {"AV": 8 * 200}}
    assert data["outputs"]["AV"]["shape"] == [8, 200]


def test_run_check_float32(at_root, capsys):
    code, out, _ = cli(capsys, "run", A1, "-m", TILED, "--check", "--dtype", "float32", "--json",
                       "--shape", "M=300", "--shape", "P=100")
    assert code == 0
    data = json.loads(out)
    assert data["outputs"]["AV"]["dtype"] == "float32" and data["check"]["AV"]["ok"] is True


def test_run_check_text(at_root, capsys):
    code, out, _ = cli(capsys, "run", A1, "-m", TILED, "--check", "--trace", "--shape", "M=40", "--shape", "P=30")
    assert code == 0
    assert out.startswith(f"cascade attention_1pass: executor for {TILED}, ")
    assert re.search(r"check AV: max abs error \S+, max rel error \S+: matches the reference", out)
    assert "DRAM traffic (elements):" in out and re.search(r"K\s+read\s+[\d,]+\s+written\s+0", out)
