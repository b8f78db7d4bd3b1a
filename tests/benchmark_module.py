"""Loading a script of benchmarks/ as a module in a test, its folder on sys.path while it is used
(the benchmarks import each other by file name)."""

from __future__ import annotations

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@contextmanager
def benchmark_module(name: str, module_name: str | None = None):
    """benchmarks/<name>.py executed as module `module_name` (default: `name`); benchmarks/ is on
    sys.path inside the `with` block only."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(module_name or name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))
