"""Fixtures of the hostile-input suite: every command run in-process under a time and memory guard.

`cli(*argv, seconds=..., megabytes=...)` runs `cascade.cli.main(argv)` and returns (exit code,
stdout, stderr); it fails the test when the call takes longer than `seconds` (an alarm interrupts
it), when Python-tracked allocations (NumPy's included) peak above `megabytes`, or when the exit
code is not 0 or 2 (1 is a bug) or a traceback reaches stderr.
"""

from __future__ import annotations

import contextlib
import signal
import time
import tracemalloc
from pathlib import Path

import pytest

from cascade.cli import main

ROOT = Path(__file__).resolve().parents[2]


class Overtime(Exception):
    pass


@contextlib.contextmanager
def guard(seconds: float, megabytes: float):
    """Interrupt after `seconds`; afterwards check the peak of traced allocations."""
    def alarm(signum, frame):
        raise Overtime(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= megabytes * 2**20, f"allocated {peak / 2**20:.0f} MiB, over the {megabytes} MiB guard"
    assert time.perf_counter() - start <= seconds


@pytest.fixture
def cli(capsys):
    def run(*argv: str, seconds: float = 20.0, megabytes: float = 300.0) -> tuple[int, str, str]:
        capsys.readouterr()
        with guard(seconds, megabytes):
            code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert code in (0, 2), f"exit {code}: {err[-2000:]}"
        assert "Traceback" not in err and "internal error" not in err, err[-2000:]
        return code, out, err

    return run


@pytest.fixture
def root() -> Path:
    return ROOT
