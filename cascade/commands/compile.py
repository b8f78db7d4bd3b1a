"""`cascade compile SPEC [-m MAPPING] [--backend numpy|triton] -o OUT.py`: write a generated executor module."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CascadeError
from .common import add_shape_option, load_spec


def register(sub) -> None:
    p = sub.add_parser("compile", help="write a self-contained executor module, NumPy or Triton (run(**inputs) -> dict)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-m", "--mapping", metavar="MAPPING", help="mapping file (default: no partitioning, no fusion)")
    p.add_argument("--backend", choices=("numpy", "triton"), default="numpy",
                   help="numpy (default) or triton: one GPU kernel per fusion group, run(**torch_tensors)")
    p.add_argument("-o", "--output", metavar="OUT.py", required=True, help="where to write the module")
    add_shape_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.shape)
    source = spec.compile(args.mapping, backend=args.backend)
    out = Path(args.output)
    if out.suffix != ".py":
        raise CascadeError(f"-o {args.output}: the executor is a Python module; name it something.py")
    try:
        out.write_text(source)
    except OSError as exc:
        raise CascadeError(f"{args.output}: cannot write: {exc.strerror}") from None
    print(f"wrote {out} ({len(source.splitlines())} lines): import it and call run(**inputs)")
    return 0
