"""What every part of the TeAAL import shares (`cascade.interop.teaal` is the entry point).

The result (`TeaalImport`) and error (`TeaalImportError`) types, the default rank shape, the
syntax of a rank name, and `ImportLog`: the file being imported and the report it collects, one
line per section or feature skipped or changed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ...errors import CascadeError

DEFAULT_SHAPE = 8
RANK = re.compile(r"[A-Z][A-Z0-9_]*\Z")


class TeaalImportError(CascadeError):
    """A TeAAL specification that cannot be imported: one line naming the file and the reason."""


class TeaalImport(NamedTuple):
    einsum: str  # the .einsum text (passes `cascade check`)
    mapping: str  # the mapping YAML text (passes `parse_mapping`)
    report: tuple[str, ...]  # one line per section or feature skipped or changed


class ImportLog:
    """The TeAAL file being imported, and the report lines collected while importing it."""

    def __init__(self, file: str):
        self.file = file
        self.report: list[str] = []

    def fail(self, message: str) -> TeaalImportError:
        return TeaalImportError(f"{self.file}: {message}")

    def note(self, line: str) -> None:
        self.report.append(" ".join(line.split()))  # one line, whatever the YAML held
