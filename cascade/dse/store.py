"""The results file of a DSE: CSV, one row per finished point, appended as each point finishes.

Why CSV and not Parquet: a row is appended with one `write` and a flush, so the file is valid
after every point and after Ctrl-C or a crash (a torn last line, if the process dies inside a
write, is cut off on `--resume`), and it needs nothing beyond the standard library; Parquet
can only be appended in row groups and is unreadable until its footer is written, and pyarrow
would add a ~40 MB wheel to the install. Every row carries the config's hash: `--resume` refuses
a file written by another config, and skips the points already in it.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from ..errors import CascadeError

LEAD = ("key", "config_hash", "workload")
TAIL = ("status", "how", "mapping", "message", "seconds")


def columns_for(parameters: list[str], metrics: tuple[str, ...]) -> list[str]:
    return [*LEAD, *parameters, TAIL[0], TAIL[1], *metrics, *TAIL[2:]]


class ResultsStore:
    """An open results file: `done` holds the keys already in it; `append(row)` adds one point."""

    def __init__(self, path: str | Path, columns: list[str], config_hash: str, resume: bool) -> None:
        self.path = Path(path)
        self.columns = columns
        self.config_hash = config_hash
        self.done: set[str] = set()
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and not resume:
            raise CascadeError(f"{self.path}: already exists: add --resume to continue it, or choose another -o")
        if exists:
            self._check_and_repair()
        elif not self.path.resolve().parent.is_dir():
            raise CascadeError(f"-o {self.path}: its folder does not exist")
        try:
            self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (held open: one row per point)
        except OSError as exc:
            raise CascadeError(f"{self.path}: cannot write: {exc.strerror}") from None
        if not exists:
            self._write(columns)

    def _check_and_repair(self) -> None:
        raw = self.path.read_bytes()
        if not raw.endswith(b"\n"):  # the process died inside a write: drop the torn line
            cut = raw.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            raw = raw[:cut]
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
        if not rows or rows[0] != self.columns:
            raise CascadeError(f"{self.path}:1:1: its columns are not this config's ({', '.join(self.columns[:6])}, "
                               "...): it holds another study; choose another -o")
        at = self.columns.index("config_hash")
        for line, row in enumerate(rows[1:], 2):
            if len(row) != len(self.columns) or row[at] != self.config_hash:
                raise CascadeError(f"{self.path}:{line}:1: written by another config (hash {row[at] if len(row) > at else '?'}"
                                   f", this one is {self.config_hash}): --resume continues only the same study; "
                                   "choose another -o")
            self.done.add(row[0])

    def _write(self, cells: list[Any]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(["" if c is None else c for c in cells])
        self._fh.write(buf.getvalue())  # one write per row: a row is in the file whole or not at all
        self._fh.flush()

    def append(self, row: dict[str, Any]) -> None:
        self._write([row.get(c) for c in self.columns])
        self.done.add(row["key"])

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def read_results(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of a results file; numbers as ints or floats, empty cells as None."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CascadeError(f"{p}: cannot read the results: {getattr(exc, 'strerror', None) or exc}") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or rows[0][: len(LEAD)] != list(LEAD):
        raise CascadeError(f"{p}:1:1: not a cascade dse results file (its first columns should be {', '.join(LEAD)})")
    columns = rows[0]
    out = []
    for line, cells in enumerate(rows[1:], 2):
        if len(cells) != len(columns):
            raise CascadeError(f"{p}:{line}:1: {len(cells)} cells where the header has {len(columns)}")
        out.append({c: _cell(c, v) for c, v in zip(columns, cells)})
    return columns, out


def _cell(column: str, value: str) -> Any:
    if value == "":
        return None
    if column in LEAD or column in TAIL[:2] or column in TAIL[2:4]:
        return value
    for kind in (int, float):  # a parameter written as 512 reads back as 512, 1e+11 as a float
        try:
            return kind(value)
        except ValueError:
            pass
    return value
