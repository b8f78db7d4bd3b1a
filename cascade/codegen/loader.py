"""Loading generated executors: source -> a module object, from memory.

The generated source is compiled by the ordinary import machinery from a string held in memory
(an `importlib` source loader whose data is that string), never written to or read back from a
shared folder: nothing another user can plant on disk is ever imported. The module gets a
synthetic file name, registered with `linecache`, so tracebacks and `inspect` still show its lines.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import linecache
from types import ModuleType


class _MemoryLoader(importlib.abc.SourceLoader):
    """A source loader whose one 'file' is a string in memory (no bytecode cache is written)."""

    def __init__(self, filename: str, source: str):
        self.filename, self.source = filename, source

    def get_filename(self, fullname: str) -> str:
        return self.filename

    def get_data(self, path: str) -> bytes:
        if path != self.filename:
            raise OSError(f"{path}: only the generated source is held in memory")
        return self.source.encode("utf-8")

    def path_stats(self, path: str) -> dict:
        raise OSError("generated source has no file on disk")  # so no bytecode is looked up or written


def import_source(source: str, stem: str = "cascade_executor") -> ModuleType:
    """Compile and import generated source as a fresh module, entirely from memory."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    name = f"{_identifier(stem)}_{digest}"
    filename = f"<cascade-generated {name}>"  # a label, not a path: nothing is looked up on disk
    loader = _MemoryLoader(filename, source)
    spec = importlib.util.spec_from_loader(name, loader, origin=filename)
    assert spec is not None
    spec.has_location = True  # so the module's __file__ is the label, as tracebacks show it
    module = importlib.util.module_from_spec(spec)
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    loader.exec_module(module)
    return module


def _identifier(stem: str) -> str:
    """A module-name-safe form of the stem (cascade names are identifiers already; be sure)."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in stem)[:64] or "executor"
