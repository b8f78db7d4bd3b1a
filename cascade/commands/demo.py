"""`cascade demo`: the headline story on bundled specs (see `cascade.demo`)."""

from __future__ import annotations

import argparse

from .common import add_json_option


def register(sub) -> None:
    p = sub.add_parser("demo", help="the headline story on the bundled attention cascades, in seconds")
    add_json_option(p, "the results")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(as_json=args.json)
