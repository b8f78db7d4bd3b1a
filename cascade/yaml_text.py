"""Reading the project's YAML inputs (mappings, targets, TeAAL specs): file -> text -> data.

One place owns how such a file is read (a missing, unreadable or non-UTF-8 file is the caller's
own error naming the file) and the safe loader with how a YAML syntax error is reported:
`file:line:col: not valid YAML: <problem>`; never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_input(path: str | Path, what: str, error: type[Exception]) -> str:
    """The UTF-8 text of an input file; failing that, `error('path: cannot read <what>: why')`."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: cannot read {what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_yaml(text: str, file: str, error: type[Exception]) -> Any:
    """`yaml.safe_load(text)`; a syntax error becomes `error('file:line:col: not valid YAML: ...')`."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise error(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
