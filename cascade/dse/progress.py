"""Progress of a DSE run on stderr: points done, rate and ETA.

On a terminal one line is rewritten in place (`dse 120/600 points  35.2/s  ETA 0:13`); otherwise
(a log file, CI) a plain line is printed at most every `every_s` seconds and once at the end.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_eta(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self.start = time.monotonic()
        self.last = self.start
        self.done = 0
        self.first: int | None = None  # points already done when the run began (--resume)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = (self.done - (self.first or 0)) / elapsed
        eta = format_eta((self.total - self.done) / rate) if rate > 0 else "?"
        return f"dse {self.done}/{self.total} points  {rate:.1f}/s  ETA {eta}"

    def update(self, done: int) -> None:
        if self.first is None:
            self.first = done
        self.done = done
        now = time.monotonic()
        if self.tty:
            if now - self.last >= 0.1 or done >= self.total:
                self.stream.write("\r\033[K" + self.line())
                self.stream.flush()
                self.last = now
        elif now - self.last >= self.every_s:
            print(self.line(), file=self.stream, flush=True)
            self.last = now

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self.line() + "\n")
        else:
            print(self.line(), file=self.stream)
        self.stream.flush()
