"""`cascade check SPEC...`: parse and validate; every error as file:line:col, exit 2 if any."""

from __future__ import annotations

import argparse
import sys

from ..errors import SpecError
from .common import add_json_option, add_shape_option, diagnostic_json, emit_json, load_spec


def register(sub) -> None:
    p = sub.add_parser("check", help="parse and validate specs; report every error as file:line:col")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    add_shape_option(p)
    add_json_option(p, "one result per spec")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = []
    status = 0
    for path in args.specs:
        try:
            spec = load_spec(path, args.shape)
        except SpecError as exc:
            status = 2
            results.append({"file": path, "ok": False, "errors": [diagnostic_json(d) for d in exc.diagnostics]})
            if not args.json:
                print(str(exc), file=sys.stderr)
            continue
        n_einsums = len(spec.cascade.einsums)
        ranks = ", ".join(f"{r}={n}" for r, n in spec.shapes.items())
        results.append({"file": path, "ok": True, "cascade": spec.name, "einsums": n_einsums, "shapes": spec.shapes})
        if not args.json:
            print(f"ok  {path}: cascade {spec.name}, {n_einsums} Einsums, {ranks}")
    if args.json:
        emit_json(results)
    return status
