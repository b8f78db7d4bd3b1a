"""Bundled resources: the grammar, the bundled specs, mappings and targets, from a source checkout
or from the installed package data. Every layer may import this module; it imports only `errors`.

In a checkout the files sit beside the package (`grammar/`, `specs/`, `mappings/`); in a wheel they
are the data packages `cascade.grammar`, `cascade.specs` and `cascade.mappings` (pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

from .errors import CascadeError

_PACKAGE = Path(__file__).resolve().parent


def _bundled(folder: str, parts: tuple[str, ...], what: str) -> Path:
    for root in (_PACKAGE.parent / folder, _PACKAGE / folder):
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise CascadeError(f"bundled {what} {'/'.join(parts)} not found (is the package installed with its data?)")


def bundled_path(*parts: str) -> Path:
    """A file or folder under the bundled `specs/` folder, e.g. `bundled_path("attention", "mha_1pass.einsum")`."""
    return _bundled("specs", parts, "spec")


def bundled_mapping(folder: str, name: str) -> Path:
    """A bundled mapping file, `mappings/<folder>/<name>.yaml`."""
    return _bundled("mappings", (folder, f"{name}.yaml"), "mapping")


def grammar_text() -> str:
    """The text of `cascade.lark`."""
    return _bundled("grammar", ("cascade.lark",), "grammar").read_text(encoding="utf-8")
