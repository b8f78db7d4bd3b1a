"""`cascade passes` and `cascade graph` on the command line: JSON keys, golden readable reports,
exit codes without tracebacks, DOT/SVG/PNG output, and lazy imports.

The golden reports live in tests/golden/passes/; after an intended change of the report, rewrite
them with `python tests/test_cli_passes.py --update-golden` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden" / "passes"
GOLDEN_SPECS = {"attention_1pass.txt": "attention/attention_1pass.einsum",
                "attention_3pass.txt": "attention/attention_3pass.einsum"}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def readable_report(spec: str) -> str:
    import cascade
    from cascade.commands.passes import format_report

    return format_report(cascade.load(SPECS / spec).passes())


@pytest.mark.parametrize("golden", sorted(GOLDEN_SPECS))
def test_readable_report_matches_golden(capsys, golden):
    code, out, err = cli(capsys, "passes", str(SPECS / GOLDEN_SPECS[golden]))
    assert code == 0 and err == ""
    assert out == (GOLDEN / golden).read_text(), \
        "report changed: review, then run `python tests/test_cli_passes.py --update-golden`"
    assert out == readable_report(GOLDEN_SPECS[golden])


def test_json_report(capsys):
    code, out, _ = cli(capsys, "passes", str(SPECS / "attention/attention_3pass.einsum"), "--json")
    data = json.loads(out)
    assert code == 0
    assert {"passes", "boundaries", "cascade", "shapes", "ranks"} <= set(data)
    assert data["passes"] == {"M": 3, "P": 1, "E": 1, "F": 1}
    first = data["boundaries"][0]
    assert {"rank", "pass", "einsum", "waits_for", "footprint", "causes"} <= set(first)
    assert (first["rank"], first["pass"], first["einsum"], first["waits_for"]) == ("M", 2, "SN", "GM")
    assert first["footprint"]["elements"] == 1024 * 1024 + 1024
    assert [t["tensor"] for t in first["footprint"]["tensors"]] == ["QK", "GM"]


def test_json_split_ranks_and_shape_override(capsys):
    code, out, _ = cli(capsys, "passes", str(SPECS / "attention/attention_1pass.einsum"), "--json",
                       "--shape", "M=512", "--shape", "M0=128")
    data = json.loads(out)
    assert code == 0 and data["passes"] == {"M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1}
    assert data["shapes"]["M1"] == 4
    (b,) = data["boundaries"]
    assert (b["rank"], b["einsum"], b["waits_for"]) == ("M0", "SLN", "RM")
    # within one tile: QK's M0 x P tile, and one tile's element of RM and PRM (not all M1 of them)
    assert b["footprint"]["elements"] == 128 * 1024 + 1024 + 1024
    assert [t["held"] for t in b["footprint"]["tensors"]] == ["QK[M1=m1, M0, P]", "RM[M1=m1, P]", "PRM[M1=m1, P]"]


def test_json_footprint_expression_parses_back(capsys):
    import sympy

    import cascade

    _, out, _ = cli(capsys, "passes", str(SPECS / "attention/mha_3pass.einsum"), "--json")
    data = json.loads(out)
    spec = cascade.load(SPECS / "attention/mha_3pass.einsum")
    symbols = {r: sympy.Symbol(r) for r in spec.shapes}  # rank names like E, N, S, Q are plain symbols
    for b, report_b in zip(data["boundaries"], spec.passes().boundaries):
        expr = sympy.sympify(b["footprint"]["expr"], locals=symbols)
        assert sympy.simplify(expr - report_b.footprint_expr) == 0
        assert expr.subs(spec.shapes) == b["footprint"]["elements"]


def test_bad_spec_exits_2_without_traceback(capsys, tmp_path):
    bad = tmp_path / "bad.einsum"
    bad.write_text("cascade bad\nshape M = 4\ninput X[M]\nY[m] = X[q]\n")
    code, out, err = cli(capsys, "passes", str(bad))
    assert code == 2 and out == ""
    assert "bad.einsum:4:" in err and "Traceback" not in err
    code, _, err = cli(capsys, "graph", str(bad))
    assert code == 2 and "bad.einsum:4:" in err and "Traceback" not in err


def test_missing_file_and_bad_shape_exit_2(capsys, tmp_path):
    code, _, err = cli(capsys, "passes", str(tmp_path / "nothing.einsum"))
    assert code == 2 and "Traceback" not in err
    code, _, err = cli(capsys, "passes", str(SPECS / "matmul.einsum"), "--shape", "Q=4")
    assert code == 2 and "no rank Q" in err


def test_bad_spec_end_to_end(tmp_path):
    bad = tmp_path / "bad.einsum"
    bad.write_text("cascade bad\nshape M = 4\ninput X[M]\nY[m] = X[m] :: avg(m)\n")
    done = subprocess.run([sys.executable, "-m", "cascade", "passes", str(bad)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "avg" in done.stderr


# ---------------------------------------------------------------- graph


def test_graph_dot_to_stdout(capsys):
    code, out, _ = cli(capsys, "graph", str(SPECS / "attention/attention_3pass.einsum"))
    assert code == 0 and out.startswith('digraph "attention_3pass" {') and "M: pass 3" in out


def test_graph_writes_dot_file(capsys, tmp_path):
    target = tmp_path / "x.dot"
    code, out, _ = cli(capsys, "graph", str(SPECS / "attention/attention_1pass.einsum"), "-o", str(target))
    assert code == 0 and f"wrote {target}" in out
    text = target.read_text()
    assert text.startswith('digraph "attention_1pass" {') and text.rstrip().endswith("}")
    assert '"einsum:SLN"' in text and "M0: pass 2" in text


def test_graph_unknown_format(capsys, tmp_path):
    code, _, err = cli(capsys, "graph", str(SPECS / "matmul.einsum"), "-o", str(tmp_path / "x.pdf"))
    assert code == 2 and "unknown output format '.pdf'" in err


def test_graph_svg_without_renderers_says_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no Graphviz `dot`
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # and matplotlib cannot be imported
    target = tmp_path / "x.svg"
    code, _, err = cli(capsys, "graph", str(SPECS / "matmul.einsum"), "-o", str(target))
    assert code == 2 and not target.exists() and "Traceback" not in err
    assert "Graphviz" in err and "matplotlib" in err and "pip install matplotlib" in err and "-o FILE.dot" in err


def fake_dot(folder: Path, body: str) -> None:
    """A stand-in for Graphviz's `dot` on PATH (a small Python script)."""
    script = folder / "dot"
    script.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    script.chmod(0o755)


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_graph_renders_with_graphviz_dot(capsys, tmp_path, monkeypatch, suffix):
    fake_dot(tmp_path, "data = sys.stdin.read()\n"
                       "sys.stdout.write(sys.argv[1] + ' ' + str(len(data)) + ' ' + data.splitlines()[0])")
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    target = tmp_path / f"graph{suffix}"
    code, out, _ = cli(capsys, "graph", str(SPECS / "softmax_3pass.einsum"), "-o", str(target))
    assert code == 0 and f"wrote {target}" in out
    assert target.read_text().startswith(f'-T{suffix[1:]} ') and 'digraph "softmax_3pass" {' in target.read_text()


def test_graph_reports_a_failing_dot(capsys, tmp_path, monkeypatch):
    fake_dot(tmp_path, "sys.stderr.write('syntax error in line 1')\nsys.exit(1)")
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = cli(capsys, "graph", str(SPECS / "matmul.einsum"), "-o", str(tmp_path / "x.svg"))
    assert code == 2 and "syntax error in line 1" in err and "Traceback" not in err


# ---------------------------------------------------------------- lazy imports


def imported_after(*argv: str) -> set[str]:
    code = ("import sys, contextlib, io\nfrom cascade.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main({list(argv)!r}) == 0\n"
            "print(' '.join(m for m in ('networkx', 'sympy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_check_and_passes_import_neither_networkx_nor_sympy():
    spec = str(SPECS / "attention/attention_1pass.einsum")
    assert imported_after("check", spec) == set()
    assert imported_after("passes", spec) == set()
    assert imported_after("passes", spec, "--json") == set()


# ---------------------------------------------------------------- golden update


def update_golden() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for golden, spec in sorted(GOLDEN_SPECS.items()):
        (GOLDEN / golden).write_text(readable_report(spec))
        print(f"wrote {GOLDEN / golden}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update-golden"]:
        sys.exit("usage: python tests/test_cli_passes.py --update-golden")
    update_golden()
