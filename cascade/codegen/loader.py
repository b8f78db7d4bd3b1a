"""Loading and running generated executors: source -> a real module imported from a file.

The generated source is written to a `.py` file and imported with the ordinary import
machinery; nothing is ever evaluated from a string.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path
from types import ModuleType


def import_source(source: str, stem: str = "cascade_executor") -> ModuleType:
    """Write generated source to a private cache file and import it as a module."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"cascade-executors-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}_{digest}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        tmp.replace(path)
    return import_path(path, f"{stem}_{digest}")


def import_path(path: str | Path, module_name: str | None = None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name or Path(path).stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
