"""The `cascade` command line: the parser, dispatch, and the exit-code contract.

Exit 0 on success, 2 on a user error (message only, never a traceback), 1 on an internal
error. Each command lives in `cascade/commands/<name>.py` with a `register(subparsers)` that
adds its parser and sets `func`; `COMMANDS` lists them in the order `--help` shows.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from .errors import CascadeError, SpecError

COMMANDS = ("check", "show", "passes", "reduce", "graph", "run", "map", "compile", "estimate", "search", "sweep",
            "dse", "demo", "import-teaal")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cascade",
        description="Compile, analyse, run and cost cascades of Extended Einsums (.einsum files).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"cascade.commands.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CascadeError as exc:
        print(str(exc) if isinstance(exc, SpecError) else f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # an internal error: a bug in cascade, reported with its traceback
        traceback.print_exc()
        print("internal error in cascade (a bug): please report it with the traceback above", file=sys.stderr)
        return 1
