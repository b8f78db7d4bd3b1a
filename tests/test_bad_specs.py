"""The bad-spec corpus: every file under tests/bad_specs/ must be rejected exactly as it says.

Each file starts with one or more lines `# expect: LINE:COL: FRAGMENT`: the checker must report
exactly that many diagnostics, one at each `file:LINE:COL` whose message contains FRAGMENT,
each followed by the caret excerpt (the source line, then a caret under COL). `cascade check`
must exit 2 and never print a traceback. Most files run in-process through `cascade.cli.main`
(fast); a handful run as `python -m cascade check` in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import cascade
from cascade.cli import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BAD = HERE / "bad_specs"
FILES = sorted(BAD.glob("*.einsum"))
EXPECT_RE = re.compile(r"# expect: (\d+):(\d+): (.+)")
SUBPROCESS = {"syntax_unclosed_bracket", "unknown_tensor", "missing_shape", "dependency_cycle", "not_utf8"}


@dataclass(frozen=True)
class Expect:
    line: int
    col: int
    fragment: str


def expectations(path: Path) -> list[Expect]:
    found = []
    for raw in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        m = EXPECT_RE.fullmatch(raw.rstrip())
        if not m:
            break
        found.append(Expect(int(m[1]), int(m[2]), m[3]))
    return found


def source_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", errors="replace").splitlines()


def assert_reported(path: Path, code: int, out: str, err: str) -> None:
    text = out + err
    assert code == 2, f"exit {code}, expected 2\n{text}"
    assert "Traceback" not in text and "internal error" not in text, text
    assert out == "", "errors belong on stderr"
    expects = expectations(path)
    lines = err.splitlines()
    headers = [k for k, ln in enumerate(lines) if ln.startswith(f"{path}:")]
    assert len(headers) == len(expects), f"expected {len(expects)} diagnostics, got {len(headers)}:\n{err}"
    src = source_lines(path)
    for e in expects:
        prefix = f"{path}:{e.line}:{e.col}: "
        at = [k for k in headers if lines[k].startswith(prefix) and e.fragment in lines[k]]
        assert at, f"no diagnostic {prefix}...{e.fragment!r} in:\n{err}"
        k = at[0]
        if e.line <= len(src) and "UTF-8" not in e.fragment:  # caret excerpt: source line, then caret
            assert lines[k + 1] == "    " + src[e.line - 1].rstrip(), err
            assert lines[k + 2].startswith("    " + " " * (e.col - 1) + "^"), err
            assert set(lines[k + 2].strip()) == {"^"}, err


def test_corpus_is_large_and_annotated():
    assert len(FILES) >= 30
    for path in FILES:
        assert expectations(path), f"{path.name} has no '# expect: LINE:COL: message' first line"


@pytest.mark.parametrize("path", [p for p in FILES if p.stem not in SUBPROCESS], ids=lambda p: p.stem)
def test_bad_spec_in_process(path, capsys):
    code = main(["check", str(path)])
    captured = capsys.readouterr()
    assert_reported(path, code, captured.out, captured.err)


@pytest.mark.parametrize("path", [BAD / f"{n}.einsum" for n in sorted(SUBPROCESS)], ids=sorted(SUBPROCESS))
def test_bad_spec_subprocess(path):
    proc = subprocess.run([sys.executable, "-m", "cascade", "check", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert_reported(path, proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_api_raises_spec_error_with_positions(path):
    """The Python API raises one SpecError whose diagnostics carry the same places."""
    with pytest.raises(cascade.SpecError) as info:
        cascade.load(path)
    places = {(d.span.line, d.span.col) for d in info.value.diagnostics if d.span}
    assert {(e.line, e.col) for e in expectations(path)} <= places


def test_collect_all_reports_every_independent_error(capsys):
    path = BAD / "several_errors.einsum"
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    reported = [int(m[1]) for m in re.finditer(rf"^{re.escape(str(path))}:(\d+):\d+: ", err, re.MULTILINE)]
    assert reported == sorted(reported), "diagnostics are reported in source order"
    assert len(set(reported)) == 4 == len(expectations(path))


def test_collect_all_across_files(capsys):
    good = ROOT / "specs" / "matmul.einsum"
    bad1, bad2 = BAD / "unknown_tensor.einsum", BAD / "reduce_kept_rank.einsum"
    assert main(["check", str(bad1), str(good), str(bad2)]) == 2
    captured = capsys.readouterr()
    assert f"ok  {good}" in captured.out
    assert f"{bad1}:" in captured.err and f"{bad2}:" in captured.err


def test_json_gives_structured_errors(capsys):
    path = BAD / "several_errors.einsum"
    assert main(["check", "--json", str(path)]) == 2
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 1 and results[0]["ok"] is False and results[0]["file"] == str(path)
    errors = results[0]["errors"]
    got = [(e["file"], e["line"], e["col"]) for e in errors]
    assert got == [(str(path), e.line, e.col) for e in expectations(path)]
    for e, want in zip(errors, expectations(path)):
        assert want.fragment in e["message"] and "\n" not in e["message"]


def test_json_syntax_errors(capsys):
    path = BAD / "several_syntax_errors.einsum"
    assert main(["check", "--json", str(path)]) == 2
    errors = json.loads(capsys.readouterr().out)[0]["errors"]
    assert [(e["line"], e["col"]) for e in errors] == [(e.line, e.col) for e in expectations(path)]
    assert all(e["message"].startswith("syntax error") for e in errors)


def test_missing_file_and_bad_shape_override(capsys, tmp_path):
    assert main(["check", str(tmp_path / "absent.einsum")]) == 2
    assert "cannot read spec" in capsys.readouterr().err
    spec = str(ROOT / "specs" / "matmul.einsum")
    assert main(["check", spec, "--shape", "Q=4"]) == 2
    assert "the cascade has no rank Q" in capsys.readouterr().err
    assert main(["check", spec, "--shape", "M=0"]) == 2
    assert "RANK=N with N a positive integer" in capsys.readouterr().err


def test_missing_shape_is_fixed_by_an_override(capsys):
    path = BAD / "missing_shape.einsum"
    assert main(["check", str(path), "--shape", "P=3"]) == 0
    assert "P=3" in capsys.readouterr().out


def test_file_stem_that_is_not_a_name_is_accepted(tmp_path, capsys):
    """Without a 'cascade' line the name comes from the file; 'my-spec' must not be an error."""
    spec = tmp_path / "2-my spec.einsum"
    spec.write_text("shape M = 4\ninput X[M]\noutput Y[M]\nY[m] = X[m]\n")
    assert main(["check", str(spec)]) == 0
    assert "cascade cascade_2_my_spec" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted((ROOT / "specs").rglob("*.einsum")), ids=lambda p: p.stem)
def test_bundled_specs_check(path, capsys):
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"ok  {path}") and captured.err == ""


def test_byte_order_mark_is_not_a_syntax_error(tmp_path, capsys):
    spec = tmp_path / "bom.einsum"
    spec.write_bytes(b"\xef\xbb\xbfshape M = 4\ninput X[M]\noutput Y[M]\nY[m] = X[m]\n")
    assert main(["check", str(spec)]) == 0, capsys.readouterr().err


def test_long_expressions_below_the_nesting_limit_are_accepted():
    """The nesting limit (syntax_too_deeply_nested) is far above anything a person writes."""
    terms = " + ".join(f"exp(X[m, p] * {k})" for k in range(150))
    spec = cascade.loads(f"shape M = 3, P = 2\ninput X[M, P]\noutput Y[P]\nY[p] = {terms}\n")
    assert len(spec.cascade.einsums) == 1
