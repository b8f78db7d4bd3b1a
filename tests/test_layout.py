"""The package's layout: stages in pipeline order, imports one way, no circles.

Every import in `cascade/` (top level, inside functions and under `TYPE_CHECKING` alike) is read
with `ast` and resolved to the module it names. A module may import from its own unit (a top-level
package or module of `cascade/`) or from a unit of a lower layer; units of one layer never import
each other. The module graph has no cycle. The checker is run on the real package and, to show it
can fail, on a small synthetic package with a planted upward import and a planted circle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cascade"

# lowest first; see the README's layout section
LAYERS: list[tuple[str, ...]] = [
    ("errors", "limits"),
    ("resources", "yaml_text", "npz_input"),
    ("lang",),
    ("analysis", "reference"),
    ("transform",),
    ("mapping",),
    ("codegen", "model"),
    ("search", "interop"),
    ("api", "plot"),
    ("demo", "dse"),
    ("commands",),
    ("cli",),
    ("__main__",),
]
ROOT_UNIT = "__init__"  # the package's own __init__: the public face, imported by nothing inside


def module_names(package: Path, name: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module and package of `package`."""
    found = {}
    for path in package.rglob("*.py"):
        parts = [name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, module: str, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module, line) for every import of the package's own modules in one file."""
    is_package = path.name == "__init__.py"
    here = module if is_package else module.rsplit(".", 1)[0]
    root = next(iter(modules)).split(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == root]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != root:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in modules else base, node.lineno))
    return found


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT_UNIT


def layout_violations(package: Path, name: str, layers: list[tuple[str, ...]]) -> list[str]:
    """Every import against the layer order, and every import circle, as 'file:line: why'."""
    layer = {unit: i for i, units in enumerate(layers) for unit in units}
    layer[ROOT_UNIT] = len(layers)
    modules = module_names(package, name)
    problems = []
    graph = nx.DiGraph()
    where: dict[tuple[str, str], str] = {}
    for module, path in sorted(modules.items()):
        source_unit = unit_of(module)
        rel = path.relative_to(package.parent)
        if source_unit not in layer:
            problems.append(f"{rel}:1: unit '{source_unit}' has no layer: add it to the layer table")
            continue
        for target, line in imports_of(path, module, modules):
            graph.add_edge(module, target)
            where.setdefault((module, target), f"{rel}:{line}")
            target_unit = unit_of(target)
            if target_unit == source_unit:
                continue
            if target_unit not in layer:
                problems.append(f"{rel}:{line}: imports {target}, whose unit '{target_unit}' has no layer")
            elif layer[target_unit] >= layer[source_unit]:
                how = "a unit of the same layer" if layer[target_unit] == layer[source_unit] else "a higher layer"
                problems.append(f"{rel}:{line}: '{source_unit}' imports {target} from {how} ('{target_unit}')")
    for cycle in nx.simple_cycles(graph):
        steps = [where[(a, b)] for a, b in zip(cycle, cycle[1:] + cycle[:1])]
        problems.append(f"{steps[0]}: import circle {' -> '.join(cycle + cycle[:1])} (at {', '.join(steps)})")
    return problems


def test_cascade_imports_run_one_way_without_circles():
    assert layout_violations(PACKAGE, "cascade", LAYERS) == []


def test_only_the_cli_imports_commands():
    modules = module_names(PACKAGE, "cascade")
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for module, path in modules.items() if unit_of(module) not in ("commands", "cli")
                 for target, line in imports_of(path, module, modules) if unit_of(target) == "commands"]
    assert offenders == []


def test_every_unit_has_a_layer_and_every_package_says_what_it_owns():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert units == {u for units in LAYERS for u in units}
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(ROOT)} has no docstring saying what the package owns"


def test_the_wheel_lists_every_package():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listing = re.search(r"^packages = \[(.*?)\]", text, re.S | re.M)
    assert listing, "pyproject.toml lists no packages under [tool.setuptools]"
    listed = set(re.findall(r'"([\w.]+)"', listing.group(1)))
    packages = {".".join(["cascade", *init.parent.relative_to(PACKAGE).parts]) for init in PACKAGE.rglob("__init__.py")}
    assert packages - listed == set()


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "pkg"
    for rel, text in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


SYNTHETIC_LAYERS = [("errors",), ("lang",), ("commands",)]


def test_checker_accepts_a_clean_synthetic_package(tmp_path):
    package = _plant(tmp_path, {
        "__init__.py": '"""x"""\n', "errors.py": "",
        "lang/__init__.py": '"""x"""\n', "lang/parse.py": "from ..errors import X\nfrom . import ir\n",
        "lang/ir.py": "", "commands/__init__.py": "", "commands/run.py": "from ..lang.parse import parse\n",
    })
    assert layout_violations(package, "pkg", SYNTHETIC_LAYERS) == []


@pytest.mark.parametrize("planted, expected", [
    ("def f():\n    from ..commands.run import main\n", "pkg/lang/parse.py:2: 'lang' imports pkg.commands.run from a higher layer"),
    ("import pkg.commands\n", "pkg/lang/parse.py:1: 'lang' imports pkg.commands from a higher layer"),
    ("from .. import api\n", "pkg/lang/parse.py:1: imports pkg.api, whose unit 'api' has no layer"),
    ("from .. import Thing\n", "pkg/lang/parse.py:1: 'lang' imports pkg from a higher layer ('__init__')"),
])
def test_checker_names_a_planted_upward_import(tmp_path, planted, expected):
    package = _plant(tmp_path, {
        "__init__.py": "", "errors.py": "", "api.py": "", "lang/__init__.py": "", "lang/parse.py": planted,
        "commands/__init__.py": "", "commands/run.py": "",
    })
    problems = layout_violations(package, "pkg", SYNTHETIC_LAYERS)
    assert any(p.startswith(expected) for p in problems), problems


def test_checker_names_a_planted_circle(tmp_path):
    package = _plant(tmp_path, {
        "__init__.py": "", "errors.py": "", "lang/__init__.py": "",
        "lang/a.py": "from . import b\n", "lang/b.py": "\n\nfrom .a import thing\n",
    })
    problems = layout_violations(package, "pkg", SYNTHETIC_LAYERS)
    assert len(problems) == 1 and "import circle" in problems[0]
    assert "pkg/lang/a.py:1" in problems[0] and "pkg/lang/b.py:3" in problems[0]
