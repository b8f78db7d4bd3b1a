"""The `cascade` command line: argument parsing, dispatch, and the exit-code contract.

Exit 0 on success, 2 on a user error (message only, never a traceback), 1 on an internal
error. Each command is a small function from parsed arguments to printed output; `--json`
gives the machine-readable form of every report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .errors import CascadeError, SpecError


def _add_shape(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", action="append", metavar="R=N", default=[],
                   help="override a rank's shape (repeatable), e.g. --shape M=4096")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cascade",
        description="Compile, analyse, run and cost cascades of Extended Einsums (.einsum files).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check", help="parse and validate specs; report every error as file:line:col")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    _add_shape(p)
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("show", help="print the normalised cascade (parses back to the same IR)")
    p.add_argument("spec", metavar="SPEC")
    _add_shape(p)
    p.add_argument("--json", action="store_true", help="the text and the resolved shapes as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("run", help="evaluate a cascade (reference evaluator) and summarise its outputs")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--inputs", metavar="IN.npz", help="input arrays by tensor name (others: seeded random)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    p.add_argument("--save", metavar="OUT.npz", help="write the outputs to an .npz file")
    _add_shape(p)
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the headline story on the bundled attention cascades, in seconds")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CascadeError as exc:
        print(f"error: {exc}" if not isinstance(exc, SpecError) else str(exc), file=sys.stderr)
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


def _load(path: str, shape_items: list[str]):
    from .api import load
    from .shapes import parse_shape_overrides

    return load(path, parse_shape_overrides(shape_items))


def _emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, allow_nan=True))


# ------------------------------------------------------------------ check / show


def cmd_check(args: argparse.Namespace) -> int:
    results = []
    status = 0
    for path in args.specs:
        try:
            spec = _load(path, args.shape)
        except SpecError as exc:
            status = 2
            results.append({"file": path, "ok": False, "errors": [_diag_json(d) for d in exc.diagnostics]})
            if not args.json:
                print(str(exc), file=sys.stderr)
            continue
        n_einsums = len(spec.cascade.einsums)
        ranks = ", ".join(f"{r}={n}" for r, n in spec.shapes.items())
        results.append({"file": path, "ok": True, "cascade": spec.name, "einsums": n_einsums, "shapes": spec.shapes})
        if not args.json:
            print(f"ok  {path}: cascade {spec.name}, {n_einsums} Einsums, {ranks}")
    if args.json:
        _emit_json(results)
    return status


def _diag_json(d) -> dict[str, Any]:
    if d.span is None:
        return {"file": None, "line": None, "col": None, "message": d.message}
    return {"file": d.span.file, "line": d.span.line, "col": d.span.col, "message": d.message}


def cmd_show(args: argparse.Namespace) -> int:
    spec = _load(args.spec, args.shape)
    text = spec.show()
    if args.json:
        _emit_json({"cascade": spec.name, "text": text, "shapes": spec.shapes})
    else:
        print(text, end="")
    return 0


# ------------------------------------------------------------------ run


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .errors import InputError

    spec = _load(args.spec, args.shape)
    given: dict[str, Any] = {}
    if args.inputs:
        try:
            with np.load(args.inputs) as data:
                given = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"{args.inputs}: cannot read inputs: {exc}") from None
    start = time.perf_counter()
    outputs = spec.run(given, seed=args.seed)
    seconds = time.perf_counter() - start
    if args.save:
        try:
            np.savez(args.save, **outputs)
        except OSError as exc:
            raise InputError(f"{args.save}: cannot write outputs: {exc.strerror}") from None
    summary = {name: summarise(arr) for name, arr in outputs.items()}
    if args.json:
        _emit_json({"cascade": spec.name, "evaluator": "reference", "shapes": spec.shapes,
                    "seed": None if args.inputs and len(given) == len(spec.cascade.inputs) else args.seed,
                    "seconds": seconds, "outputs": summary, "saved": args.save})
        return 0
    print(f"cascade {spec.name}: reference evaluator, {seconds:.3f} s")
    print("shapes: " + ", ".join(f"{r}={n}" for r, n in spec.shapes.items()))
    for name, s in summary.items():
        ranks = ", ".join(spec.semantics.tensors[name].ranks)
        print(f"  {name}[{ranks}]  shape {tuple(s['shape'])}  {s['dtype']}  "
              f"min {s['min']:.6g}  max {s['max']:.6g}  mean {s['mean']:.6g}")
        print(f"    first values: {', '.join(f'{v:.6g}' for v in s['first'])}")
    if args.save:
        print(f"saved outputs to {args.save}")
    return 0


def summarise(arr) -> dict[str, Any]:
    import numpy as np

    flat = np.asarray(arr).ravel()
    finite = flat[np.isfinite(flat)]
    pick = finite if finite.size else flat
    return {
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "min": float(pick.min()) if pick.size else float("nan"),
        "max": float(pick.max()) if pick.size else float("nan"),
        "mean": float(pick.mean()) if pick.size else float("nan"),
        "nonfinite": int(flat.size - finite.size),
        "first": [float(v) for v in flat[:5]],
    }


# ------------------------------------------------------------------ demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(as_json=args.json)


def bundled_path(*parts: str) -> Path:
    """A file under the bundled `specs/` folder (source checkout or installed package)."""
    here = Path(__file__).resolve().parent
    for root in (here.parent / "specs", here / "specs"):
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise CascadeError(f"bundled spec {'/'.join(parts)} not found (is the package installed with its data?)")
