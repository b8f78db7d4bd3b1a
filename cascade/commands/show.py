"""`cascade show SPEC`: the normalised cascade text, which parses back to the same IR."""

from __future__ import annotations

import argparse

from .common import add_json_option, add_shape_option, emit_json, load_spec


def register(sub) -> None:
    p = sub.add_parser("show", help="print the normalised cascade (parses back to the same IR)")
    p.add_argument("spec", metavar="SPEC")
    add_shape_option(p)
    add_json_option(p, "the text and the resolved shapes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.shape)
    text = spec.show()
    if args.json:
        emit_json({"cascade": spec.name, "text": text, "shapes": spec.shapes})
    else:
        print(text, end="")
    return 0
