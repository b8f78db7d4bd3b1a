"""Helpers shared by the subcommands: loading a spec with `--shape`, JSON output."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_shape_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", action="append", metavar="R=N", default=[],
                   help="override a rank's shape (repeatable), e.g. --shape M=4096")


def add_json_option(p: argparse.ArgumentParser, what: str = "the report") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def load_spec(path: str, shape_items: list[str], needs_einsums: str | None = None):
    """The checked spec with `--shape` overrides; with `needs_einsums` (what the command does),
    a cascade without Einsums is refused: 'x.einsum: no Einsums: nothing to <needs_einsums>'."""
    from ..api import load
    from ..errors import CascadeError
    from ..lang.shapes import parse_shape_overrides

    spec = load(path, parse_shape_overrides(shape_items))
    if needs_einsums and not spec.cascade.statements:
        raise CascadeError(f"{path}: the cascade has no Einsums: nothing to {needs_einsums}; write at least one "
                           "statement such as 'Y[m] = X[m]'")
    return spec


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, allow_nan=True))


def diagnostic_json(d) -> dict[str, Any]:
    if d.span is None:
        return {"file": None, "line": None, "col": None, "message": d.message}
    return {"file": d.span.file, "line": d.span.line, "col": d.span.col, "message": d.message}
