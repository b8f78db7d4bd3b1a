"""Nothing in a spec is ever executed as Python.

Spec names are data: they are matched against the operator table and the declared tensors,
never handed to `eval`/`exec`. The tests feed specs written in Python's vocabulary and watch,
through an audit hook, that no code is compiled or executed and no process is started while
such a spec is parsed, checked and run; and they scan the package for `eval(`/`exec(` calls.
"""

from __future__ import annotations

import io
import itertools
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade import SpecError

PACKAGE = Path(cascade.__file__).resolve().parent
FORBIDDEN_EVENTS = ("exec", "compile", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen")

_watch = {"on": False, "events": []}


def _hook(event: str, args: tuple) -> None:
    if _watch["on"] and event.startswith(FORBIDDEN_EVENTS):
        _watch["events"].append((event, repr(args)[:200]))


sys.addaudithook(_hook)  # audit hooks cannot be removed; this one only records while watching


def watched(fn):
    """Run fn() and return (result or exception, the forbidden audit events it caused)."""
    _watch["events"] = []
    _watch["on"] = True
    try:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - returned for the caller to inspect
            result = exc
    finally:
        _watch["on"] = False
    return result, list(_watch["events"])


# Python-looking names used as tensors, ranks' variables and shapes: all legal identifiers.
PYTHONIC = """cascade exec
shape O = 3, S = 2
input os[O, S], system[S]
output eval[O]
eval[o] = os[o, s] * system[s] + sqrt(O)
"""

HOSTILE_CALLS = [
    ("eval", "eval(X[m])"),
    ("exec", "exec(X[m])"),
    ("open", "open(X[m])"),
    ("getattr", "getattr(X[m], X[m])"),
    ("system", "system(X[m])"),
    ("compile", "compile(X[m])"),
]

HOSTILE_SYNTAX = [
    "__import__(X[m])",
    "__import__('os').system('echo pwned')",
    "os.system(X[m])",
    "X[m].__class__",
    "eval('1+1')",
    "exp(X[m]) if True else 0",
    "lambda: X[m]",
    "[x for x in X[m]]",
]


def spec_with(expr: str) -> str:
    return f"shape M = 4\ninput X[M]\noutput Y[M]\nY[m] = {expr}\n"


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Import and build everything once, so the watched runs do no first-time imports."""
    spec = cascade.loads(PYTHONIC)
    spec.run(seed=0)
    spec.show()
    with pytest.raises(SpecError):
        cascade.loads(spec_with("eval(X[m])"))
    with pytest.raises(SpecError):
        cascade.loads(spec_with("__import__(X[m])"))


@pytest.mark.parametrize("name,expr", HOSTILE_CALLS, ids=[n for n, _ in HOSTILE_CALLS])
def test_python_builtins_are_unknown_map_operators(name, expr):
    result, events = watched(lambda: cascade.loads(spec_with(expr), file="hostile.einsum"))
    assert isinstance(result, SpecError)
    assert events == []
    (d,) = result.diagnostics
    assert d.message.startswith(f"unknown map operator '{name}'")
    assert "exp, log, sqrt, abs, max, min" in d.message
    assert (d.span.line, d.span.col) == (4, 8)


@pytest.mark.parametrize("expr", HOSTILE_SYNTAX)
def test_python_syntax_is_a_syntax_error(expr):
    result, events = watched(lambda: cascade.loads(spec_with(expr), file="hostile.einsum"))
    assert isinstance(result, SpecError), result
    assert events == []
    assert all(d.span.line == 4 for d in result.diagnostics)
    assert any("syntax error" in d.message for d in result.diagnostics)


def test_python_names_as_tensors_are_just_names():
    """A cascade whose tensors are called os, system and eval runs as plain arithmetic."""
    def load_and_run():
        spec = cascade.loads(PYTHONIC)
        os_, system = np.arange(6.0).reshape(3, 2), np.array([10.0, -1.0])
        # sqrt(O) is inside the Einsum, so it is summed over s too: S * sqrt(O)
        return spec, spec.run({"os": os_, "system": system}), os_ @ system + 2 * np.sqrt(3)

    (spec, out, expected), events = watched(load_and_run)
    assert events == [], events
    assert spec.name == "exec" and set(out) == {"eval"}
    np.testing.assert_allclose(out["eval"], expected)


def test_watch_sees_exec():
    """The audit hook really catches execution, so the empty lists above mean something."""
    _, events = watched(lambda: exec("1 + 1"))  # noqa: S102 - the point of the test
    assert any(e == "exec" or e == "compile" for e, _ in events)


def _calls(path: Path, names: set[str]) -> list[str]:
    """`name(` calls in a Python file's code (comments and strings ignored)."""
    found = []
    toks = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    for a, b in itertools.pairwise(toks):
        if a.type == tokenize.NAME and a.string in names and b.type == tokenize.OP and b.string == "(":
            found.append(f"{path.name}:{a.start[0]}: {a.string}(")
    return found


def test_package_has_no_eval_or_exec_calls():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10
    offenders = [hit for p in sources for hit in _calls(p, {"eval", "exec", "__import__"})]
    assert offenders == []


def test_the_scan_finds_calls(tmp_path):
    """The scanner itself works: it flags a call and ignores the word in strings and comments."""
    sample = tmp_path / "sample.py"
    sample.write_text('x = eval("1")  # eval(\ns = "exec(code)"\n')
    assert _calls(sample, {"eval", "exec"}) == ["sample.py:1: eval("]
