"""The error hierarchy: every user-facing failure is a CascadeError.

`SpecError` carries one or more `Diagnostic`s (file, line, column, message, caret excerpt) so
the checker can report every problem of a file at once. `MappingError` and `TargetError` are
for the mapping and target files; `InternalError` marks a broken invariant (a bug, exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A region of source text: 1-based line and column of its first and last character."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem at one place, rendered as `file:line:col: message` plus a caret excerpt."""

    span: Span | None
    message: str
    source_line: str = ""

    def render(self) -> str:
        if self.span is None:
            return self.message
        text = f"{self.span}: {self.message}"
        if self.source_line:
            width = 1
            if self.span.end_line == self.span.line and self.span.end_col > self.span.col:
                width = self.span.end_col - self.span.col
            prefix = self.source_line[: self.span.col - 1]
            indent = "".join(ch if ch == "\t" else " " for ch in prefix)  # tabs line up as in the source
            caret = indent + "^" * width
            text += f"\n    {self.source_line.rstrip()}\n    {caret}"
        return text


class CascadeError(Exception):
    """Base of every error the user can cause; the CLI prints it and exits 2."""


class SpecError(CascadeError):
    """One or more problems in a `.einsum` specification."""

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]


class MappingError(CascadeError):
    """A mapping file that cannot be applied: names the file, the key and the fix."""


class TargetError(CascadeError):
    """A target (hardware) file that is malformed or inconsistent."""


class InternalError(Exception):
    """A broken invariant inside cascade itself (a bug, not the user's fault)."""


class InputError(CascadeError):
    """Input arrays that do not fit the cascade (missing, extra, or wrongly shaped)."""


def source_lines(text: str) -> list[str]:
    """The lines of a source text as line numbers count them: split at '\\n' only (and a '\\r'
    before it dropped), so a form feed, '\\x85' or U+2028 inside a line never shifts the numbers
    that `str.splitlines` would."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
