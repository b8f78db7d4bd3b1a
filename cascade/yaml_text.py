"""YAML text -> Python data for the project's YAML inputs (mappings, targets, TeAAL specs).

One place owns the safe loader and how a YAML syntax error is reported: `file:line:col: not
valid YAML: <problem>`, raised as the caller's own error class, never a traceback.
"""

from __future__ import annotations

from typing import Any


def load_yaml(text: str, file: str, error: type[Exception]) -> Any:
    """`yaml.safe_load(text)`; a syntax error becomes `error('file:line:col: not valid YAML: ...')`."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise error(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
