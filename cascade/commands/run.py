"""`cascade run SPEC`: evaluate a cascade and summarise each output (shape, dtype, values).

Without `-m` the reference evaluator runs; with `-m MAPPING` the generated executor does, and
`--check` compares it with the reference, `--trace` counts its DRAM reads and writes. Inputs
come from `--inputs IN.npz` by tensor name; any not given are seeded random (`--seed`).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from ..errors import InputError
from .common import add_json_option, add_shape_option, emit_json, load_spec


def register(sub) -> None:
    p = sub.add_parser("run", help="evaluate a cascade (reference evaluator) and summarise its outputs")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-m", "--mapping", metavar="MAPPING", help="run the generated executor for this mapping")
    p.add_argument("--check", action="store_true", help="compare the executor with the reference evaluator")
    p.add_argument("--trace", action="store_true", help="count elements read from / written to DRAM per tensor")
    p.add_argument("-t", "--target", metavar="TARGET",
                   help="with --trace: also count what spills from this target's buffer (a file or bundled name)")
    p.add_argument("--dtype", choices=("float64", "float32", "bfloat16"), default="float64",
                   help="dtype of random inputs (bfloat16: --backend triton only)")
    p.add_argument("--backend", choices=("numpy", "triton"), default="numpy",
                   help="executor for -m: numpy (default) or triton (GPU kernels; needs torch, triton, CUDA)")
    p.add_argument("--inputs", metavar="IN.npz", help="input arrays by tensor name (others: seeded random)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    p.add_argument("--save", metavar="OUT.npz", help="write the outputs to an .npz file")
    add_shape_option(p)
    add_json_option(p, "the summary")
    p.set_defaults(func=run)


def read_inputs(path: str | None, spec: Any) -> dict[str, Any]:
    """Input arrays by tensor name from an .npz archive, each checked against the spec's shape
    (and its size and dtype) before its data is read."""
    from ..lang.shapes import tensor_shape
    from ..npz_input import read_npz

    if not path:
        return {}
    expected = {d.name: tensor_shape(spec.semantics, d.name, spec.shapes) for d in spec.cascade.inputs}
    labels = {d.name: ", ".join(f"{r}={n}" for r, n in zip(d.ranks, expected[d.name])) for d in spec.cascade.inputs}
    return read_npz(path, expected, InputError, labels)


def check_output_path(path: str, option: str) -> None:
    """Before any work: an output path must name a file, and one that is (or will be) a regular
    file: an empty name saves nothing, and a FIFO or device would block or swallow the output."""
    import os
    import stat

    if not path.strip():
        raise InputError(f"{option} {path!r}: give a file name, e.g. {option} out.npz")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # does not exist yet (or cannot be seen): writing it reports any real problem
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise InputError(f"{option} {path}: {kind}: give the path of a file to write")


def save_outputs(path: str, outputs: dict[str, Any]) -> None:
    """An .npz archive (what numpy.savez writes) at exactly `path`, one member per output.

    Written member by member rather than with `numpy.savez(path, **outputs)`, which appends
    `.npz` to the path and mistakes tensors named `file` or `allow_pickle` for its own arguments."""
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, arr in outputs.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
    except OSError as exc:
        raise InputError(f"{path}: cannot write outputs: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    spec = load_spec(args.spec, args.shape)
    if args.target and not args.trace:
        raise InputError("-t TARGET counts spilled traffic in the trace: give it with --trace")
    if (args.check or args.trace) and not args.mapping:
        raise InputError("--check and --trace apply to a generated executor: give a mapping with -m MAPPING")
    if args.backend == "triton" and (not args.mapping or args.trace):
        raise InputError("--backend triton runs a generated executor: give -m MAPPING (and no --trace)")
    if args.dtype == "bfloat16" and args.backend != "triton":
        raise InputError("--dtype bfloat16 is for --backend triton (NumPy has no bfloat16)")
    if args.save is not None:
        check_output_path(args.save, "--save")
    spec.check_sizes([d.name for d in spec.cascade.inputs + spec.cascade.outputs] if args.mapping else None)
    given = read_inputs(args.inputs, spec)
    np_dtype = np.float32 if args.dtype == "bfloat16" else getattr(np, args.dtype)
    inputs = {**{k: v for k, v in spec.random_inputs(args.seed, np_dtype).items()
                 if k not in given}, **given}
    trace = None
    tolerance = None
    if args.backend == "triton":
        from ..codegen.loader import import_source
        from ..codegen.triton_run import TOLERANCE, require_torch, run_triton

        require_torch()
        module = import_source(spec.compile(args.mapping, backend="triton"), stem=f"{spec.name}_triton")
        outputs, inputs, seconds = run_triton(module, inputs, args.dtype)
        tolerance = TOLERANCE[args.dtype]
        evaluator = f"Triton executor for {args.mapping} ({args.dtype} inputs)"
    elif args.mapping:
        module = spec.executor(args.mapping, args.target)
        start = time.perf_counter()
        try:
            outputs, trace = module.run_traced(**inputs) if args.trace else (module.run(**inputs), None)
        except ValueError as exc:  # the executor's own input checks
            raise InputError(str(exc)) from None
        evaluator = f"executor for {args.mapping}"
    else:
        start = time.perf_counter()
        outputs = spec.run(inputs, seed=args.seed)
        evaluator = "reference evaluator"
    if args.backend != "triton":
        seconds = time.perf_counter() - start
    check = None
    if args.check:
        reference = spec.run(inputs)
        check = {name: max_errors(outputs[name], reference[name], tolerance) for name in reference}
    if args.save is not None:
        save_outputs(args.save, outputs)
    summary = {name: summarise(arr) for name, arr in outputs.items()}
    if args.json:
        emit_json({"cascade": spec.name, "evaluator": ("triton" if args.backend == "triton" else "executor") if args.mapping else "reference",
                   "mapping": args.mapping, "shapes": spec.shapes, "seed": args.seed, "inputs_file": args.inputs,
                   "seconds": seconds, "outputs": {name: strict_json(s) for name, s in summary.items()},
                   "saved": args.save, "check": check, "trace": trace})
        return 0 if check is None or all(c["ok"] for c in check.values()) else 1
    print(f"cascade {spec.name}: {evaluator}, {seconds:.3f} s")
    print("shapes: " + ", ".join(f"{r}={n}" for r, n in spec.shapes.items()))
    for name, s in summary.items():
        ranks = ", ".join(spec.semantics.tensors[name].ranks)
        print(f"  {name}[{ranks}]  shape {tuple(s['shape'])}  {s['dtype']}  "
              f"min {s['min']:.6g}  max {s['max']:.6g}  mean {s['mean']:.6g}"
              + (f"  (of the finite values; {s['nonfinite']} non-finite)" if s["nonfinite"] else ""))
        print(f"    first values: {', '.join(f'{v:.6g}' for v in s['first'])}")
    if trace is not None:
        print("DRAM traffic (elements):")
        for name in sorted(set(trace["reads"]) | set(trace["writes"])):
            print(f"  {name:<10} read {trace['reads'].get(name, 0):>14,.0f}   written {trace['writes'].get(name, 0):>14,.0f}")
    if check is not None:
        for name, c in check.items():
            verdict = "matches the reference" if c["ok"] else "DIFFERS from the reference"
            print(f"check {name}: max abs error {c['max_abs']:.3g}, max rel error {c['max_rel']:.3g}: {verdict}")
    if args.save is not None:
        print(f"saved outputs to {args.save}")
    return 0 if check is None or all(c["ok"] for c in check.values()) else 1


def max_errors(got, want, relative: float | None = None) -> dict:
    """Errors over the finite points; NaN or an infinity counts as equal where both sides have the
    same one at the same place, and as a difference where they do not. With `relative`, ok means
    max |got - want| <= relative * max |want| (the Triton backend's bound per input dtype), else
    NumPy's allclose at 1e-9 (float64) or 1e-4."""
    import numpy as np

    tol = 1e-9 if np.asarray(got).dtype == np.float64 else 1e-4
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    finite = np.isfinite(got) & np.isfinite(want)
    same_special = (np.isnan(got) & np.isnan(want)) | (~finite & (got == want))
    mismatched = int(np.count_nonzero(~finite & ~same_special))
    diff = np.abs(got[finite] - want[finite])
    scale = max(float(np.max(np.abs(want[finite]))) if diff.size else 0.0, 1e-300)
    if relative is not None:
        close = diff.size == 0 or float(diff.max()) <= relative * scale
    else:
        close = bool(np.allclose(got[finite], want[finite], rtol=tol, atol=tol * scale))
    ok = mismatched == 0 and bool(close)
    out = {"max_abs": float(diff.max()) if diff.size else 0.0,
           "max_rel": float(diff.max() / scale) if diff.size else 0.0, "ok": ok}
    if mismatched:
        out["max_abs"] = out["max_rel"] = float("inf")
        out["nonfinite_mismatches"] = mismatched
    return out


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


def strict_json(value: Any) -> Any:
    """Standard JSON has no NaN or infinities: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict_json(v) for v in value]
    return value
