"""Benchmark: the generated 1-pass attention executor against naive NumPy attention (and torch).

    python benchmarks/executor.py            # N = 1024, 4096, 16384; float32 and float64 (~1.5-2.5 min)
    python benchmarks/executor.py --quick    # a smoke run at small N
    python benchmarks/executor.py --json     # the same measurements as JSON

Compared, for AV[F, P] = V[F, M] . softmax_m(K[E, M]^T Q[E, P]) with M = P = N, d = E = F = 64:

- `executor[<mapping>]`: the NumPy module cascade generates for specs/attention/attention_1pass.einsum
  under each mapping (default: mappings/attention_1pass/tiled.yaml and cpu_large.yaml); it keeps
  only tile-sized pieces of the score matrix alive.
- `naive`: NumPy with the whole N x N score matrix, written here; in place after the first
  product, so it holds one score matrix (the least a full-matrix implementation needs).
- `torch`: torch.nn.functional.scaled_dot_product_attention on CPU (scale=1), when torch is
  importable; never a dependency of the project.

Every (implementation, N, dtype) runs in its own fresh subprocess, which warms up on a tiny
input and then measures peak memory over one call: the increase of the peak resident set size
(Linux VmHWM, reset through /proc/self/clear_refs, minus VmRSS just before the call, after
malloc_trim; the inputs are already resident, so the figure is what the call itself allocates:
scores, tiles, output). It saves that call's output, so that the parent can report the max abs
difference from `naive` at the same dtype, and stays alive: once the subprocesses of one (N, dtype)
have measured their memory, the parent asks them in turn for one timed call each, `--reps` rounds,
and keeps the best time of each (interleaving spreads changes of the machine's load over all).

BLAS threads are pinned with `--threads` (default 1: on a shared 2-core machine a multi-threaded
OpenBLAS waits for a helper thread whenever another process holds the other core, which makes many
small products, the executor's tiles, erratic; `--threads 0` keeps the environment).
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from the subprocesses' environment (with a note):
forcing e.g. the Haswell kernel on an AVX-512 machine costs about a third of the GEMM speed.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "attention" / "attention_1pass.einsum"
MAPPINGS = [ROOT / "mappings" / "attention_1pass" / "tiled.yaml",
            ROOT / "mappings" / "attention_1pass" / "cpu_large.yaml"]
SIZES, QUICK_SIZES = (1024, 4096, 16384), (256, 1024)
DTYPES = ("float32", "float64")
D = 64                                        # E = F = d
REPS = {1024: 7, 4096: 5, 16384: 3}            # timed calls per measurement (best is kept)
MEMORY_LIMIT_MIB, MEMORY_AT = 400, 16384       # the targets
RATIO_LIMIT, RATIO_AT = 1.3, 4096
DROPPED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # force an OpenBLAS kernel / cache size
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Case:
    impl: str                 # "executor", "naive" or "torch"
    n: int
    dtype: str
    mapping: str = ""         # executor only
    threads: int = 1
    out: str = ""             # where the worker saves its output (.npy)

    @property
    def label(self) -> str:
        return f"executor[{Path(self.mapping).stem}]" if self.impl == "executor" else self.impl


@dataclass(frozen=True)
class Result:
    label: str
    n: int
    dtype: str
    best_s: float
    median_s: float
    times_s: list[float]
    peak_mib: float
    ratio: float | None = None      # best_s / naive best_s
    max_err: float | None = None    # max |AV - AV_naive|


# ---------------------------------------------------------------- the worker (one subprocess)


def naive_attention(Q, K, V):
    """softmax over keys m of K^T Q, then V times it; the whole M x P score matrix lives at once."""
    import numpy as np

    S = K.T @ Q                    # S[m, p]
    S -= S.max(axis=0)
    np.exp(S, out=S)
    S /= S.sum(axis=0)
    return V @ S                   # AV[f, p]


def make_inputs(n: int, dtype: str):
    """Q, K, V in the spec's storage order; Q and K scaled by d^-1/4 so K^T Q has unit variance."""
    import numpy as np

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((D, n)) for _ in range(3))
    scale = D ** -0.25
    return (q * scale).astype(dtype), (k * scale).astype(dtype), v.astype(dtype)


def make_call(case: Case):
    """(prepare, call): prepare turns numpy Q, K, V into the implementation's own inputs (not
    measured); call(*prepared) returns AV[F, P] as a numpy array."""
    if case.impl == "naive":
        return (lambda *qkv: qkv), naive_attention
    if case.impl == "executor":
        import cascade

        module = cascade.load(SPEC).with_shapes(M=case.n, P=case.n).executor(case.mapping)
        return (lambda *qkv: qkv), lambda Q, K, V: module.run(Q=Q, K=K, V=V)["AV"]
    import numpy as np
    import torch
    import torch.nn.functional as F

    if case.threads > 0:
        torch.set_num_threads(case.threads)

    def prepare(*qkv):  # torch wants [batch, heads, sequence, d]
        return tuple(torch.from_numpy(np.ascontiguousarray(x.T))[None, None] for x in qkv)

    def call(q, k, v):
        with torch.inference_mode():
            return F.scaled_dot_product_attention(q, k, v, scale=1.0)[0, 0].numpy().T
    return prepare, call


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_increase_mib(fn) -> tuple[object, float]:
    """Call fn() once; the peak resident set size during the call minus the size just before.

    Freed memory that malloc still holds (and keeps resident) is given back first, so that the
    call cannot reuse it unseen."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)               # glibc
    except AttributeError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                   # resets VmHWM to the current VmRSS
    before = _status_kib("VmRSS")
    value = fn()
    return value, (_status_kib("VmHWM") - before) / 1024


def blas_info() -> str:
    """Which BLAS NumPy uses and with how many threads (threadpoolctl if present, else ctypes)."""
    import numpy as np

    try:
        from threadpoolctl import threadpool_info
        return "; ".join(f"{p['internal_api']} {p.get('version')} {p.get('architecture', '')}, "
                         f"{p['num_threads']} threads" for p in threadpool_info())
    except ImportError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        text = f"{blas.get('name')} {blas.get('version')}"
    except (TypeError, KeyError):  # older NumPy: no dict form
        text = "unknown BLAS"
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    for path in libs:
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                threads = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                config = getattr(lib, f"{prefix}openblas_get_config{suffix}", None)
                if threads is not None and config is not None:
                    config.restype = ctypes.c_char_p
                    return f"{text}: {config().decode().strip()}, {threads()} threads"
    return text


def serve(case: Case) -> None:
    """The worker: set up, measure memory over one call, save the output, report on stdout; then
    time one call for each `time` line read from stdin."""
    import numpy as np

    np.seterr(all="ignore")
    prepare, call = make_call(case)
    call(*prepare(*make_inputs(256, case.dtype)))      # warm-up: imports, BLAS buffers, first tiles
    inputs = prepare(*make_inputs(case.n, case.dtype))
    out, peak = peak_increase_mib(lambda: call(*inputs))
    np.save(case.out, np.asarray(out))
    del out
    print(json.dumps({"peak_mib": peak, "blas": blas_info()}), flush=True)
    for line in sys.stdin:
        if line.strip() != "time":
            break
        gc.collect()
        start = time.perf_counter()
        call(*inputs)
        print(time.perf_counter() - start, flush=True)


# ---------------------------------------------------------------- the driver


def worker_env(threads: int) -> tuple[dict[str, str], list[str]]:
    env, notes = dict(os.environ), []
    for name in DROPPED_ENV:
        if name in env:
            notes.append(f"unset {name}={env.pop(name)} in the measuring subprocesses")
    if threads > 0:
        env.update({name: str(threads) for name in THREAD_ENV})
    return env, notes


class Worker:
    """One fresh subprocess per (implementation, N, dtype), kept alive so timings interleave."""

    def __init__(self, case: Case, env: dict[str, str], errors: Path):
        self.case, self.errors = case, errors
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(asdict(case))],
                                     env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=errors.open("w"))
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.report = json.loads(self.reply())    # returns once memory is measured
        self.times: list[float] = []

    def reply(self) -> str:
        line = self.stdout.readline()
        if not line:
            self.proc.wait()
            raise SystemExit(f"{self.case.label} N={self.case.n} {self.case.dtype} failed:\n"
                             f"{self.errors.read_text()}")
        return line

    def time_one_call(self) -> None:
        self.stdin.write("time\n")
        self.stdin.flush()
        self.times.append(float(self.reply()))

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=60)

    def result(self) -> Result:
        times = sorted(self.times)
        return Result(self.case.label, self.case.n, self.case.dtype, times[0], times[len(times) // 2],
                      self.times, self.report["peak_mib"])


def measure(cases: list[Case], reps: int, env: dict[str, str], tmp: Path) -> list[Worker]:
    """Start the workers one after another (each measures its memory while the others sleep), then
    time them in `reps` interleaved rounds, so that a change in the machine's load hits them all."""
    workers: list[Worker] = []
    try:
        for case in cases:
            workers.append(Worker(case, env, tmp / f"{Path(case.out).stem}.err"))
        for r in range(reps):
            for w in workers[r % len(workers):] + workers[:r % len(workers)]:
                w.time_one_call()
    finally:
        for w in workers:
            w.close()
    return workers


def compare(results: list[Result], outputs: dict[tuple[str, int, str], str]) -> list[Result]:
    """Fill in each row's time ratio and max error against naive at the same N and dtype."""
    import dataclasses

    import numpy as np

    naive = {(r.n, r.dtype): r for r in results if r.label == "naive"}
    done = []
    for r in results:
        base = naive[(r.n, r.dtype)]
        want = np.load(outputs[("naive", r.n, r.dtype)])
        got = np.load(outputs[(r.label, r.n, r.dtype)])
        err = float(np.max(np.abs(got.astype(np.float64) - want)))
        done.append(dataclasses.replace(r, ratio=r.best_s / base.best_s, max_err=err))
    return done


def check_targets(results: list[Result]) -> list[dict[str, Any]]:
    """The issue's two targets, per executor mapping; `met` is None when the size was not run."""
    targets = []
    for label in dict.fromkeys(r.label for r in results if r.label.startswith("executor")):
        mem = {r.dtype: r.peak_mib for r in results if r.label == label and r.n == MEMORY_AT}
        rat = {r.dtype: r.ratio for r in results if r.label == label and r.n == RATIO_AT and r.ratio is not None}
        targets.append({"target": f"peak memory at N={MEMORY_AT} < {MEMORY_LIMIT_MIB} MiB", "impl": label,
                        "values": mem, "met": all(v < MEMORY_LIMIT_MIB for v in mem.values()) if mem else None})
        targets.append({"target": f"time at N={RATIO_AT} <= {RATIO_LIMIT}x naive", "impl": label,
                        "values": rat, "met": all(v <= RATIO_LIMIT for v in rat.values()) if rat else None})
    return targets


def format_table(results: list[Result]) -> str:
    head = f"{'N':>6}  {'dtype':<8} {'implementation':<20} {'best [s]':>9} {'median [s]':>11} " \
           f"{'x naive':>8} {'peak [MiB]':>11} {'max |err|':>10}"
    lines = [head, "-" * len(head)]
    for r in results:
        err = "-" if r.label == "naive" else f"{r.max_err:.1e}"
        lines.append(f"{r.n:>6}  {r.dtype:<8} {r.label:<20} {r.best_s:>9.4f} {r.median_s:>11.4f} "
                     f"{r.ratio:>7.2f}x {r.peak_mib:>11.1f} {err:>10}")
    return "\n".join(lines)


def format_targets(targets: list[dict[str, Any]]) -> str:
    lines = []
    for t in targets:
        unit = " MiB" if "memory" in t["target"] else "x"
        values = ", ".join(f"{k} {v:.2f}{unit}" for k, v in t["values"].items()) or "not measured"
        verdict = {True: "MET", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"  {t['target']:<32} {t['impl']:<22} {values:<34} {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"N = {QUICK_SIZES}, 2 timed calls: a smoke run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"values of N (default {SIZES})")
    parser.add_argument("--mapping", action="append", help="executor mapping(s) (default: tiled, cpu_large)")
    parser.add_argument("--reps", type=int, help=f"timed calls per measurement (default by N: {REPS})")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads (0: leave the environment)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch baseline")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        serve(Case(**json.loads(args.worker)))
        return

    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    mappings = [str(Path(m).resolve()) for m in (args.mapping or MAPPINGS)]
    impls = [("executor", m) for m in mappings] + [("naive", "")]
    notes = []
    if args.no_torch:
        notes.append("torch baseline skipped (--no-torch)")
    elif importlib.util.find_spec("torch") is None:
        notes.append("torch is not importable: the scaled_dot_product_attention baseline is skipped")
    else:
        impls.append(("torch", ""))
    env, env_notes = worker_env(args.threads)
    notes += env_notes
    load_before, started = os.getloadavg()[0], time.perf_counter()
    results, blas = [], ""
    with tempfile.TemporaryDirectory(prefix="cascade-bench-") as tmp:
        outputs = {}
        for n in sizes:
            for dtype in DTYPES:
                cases = [Case(impl, n, dtype, mapping, args.threads,
                              str(Path(tmp) / f"{impl}-{Path(mapping).stem}-{n}-{dtype}.npy")) for impl, mapping in impls]
                if not args.json:
                    print(f"  measuring N={n} {dtype} ...", file=sys.stderr, flush=True)
                reps = args.reps or (2 if args.quick else REPS.get(n, 3))
                for w in measure(cases, reps, env, Path(tmp)):
                    results.append(w.result())
                    outputs[(w.case.label, n, dtype)] = w.case.out
                    blas = w.report["blas"]
        results = compare(results, outputs)
    targets = check_targets(results)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "blas": blas,
               "threads": args.threads or "environment", "load_average_before": load_before,
               "load_average_after": os.getloadavg()[0], "total_s": time.perf_counter() - started,
               "memory": "peak RSS increase over one call (VmHWM after - VmRSS before), fresh subprocess"}
    if args.json:
        print(json.dumps({"machine": machine, "notes": notes, "results": [asdict(r) for r in results],
                          "targets": targets}, indent=2))
        return
    print(f"attention AV = V softmax(K^T Q), d = {D}, M = P = N; {SPEC.relative_to(ROOT)}")
    print(f"python {machine['python']}, {machine['cpus']} CPUs, BLAS: {blas}")
    print(f"threads: {machine['threads']}; load average {load_before:.2f} before, "
          f"{machine['load_average_after']:.2f} after; total {machine['total_s']:.0f} s")
    print(f"memory: {machine['memory']}; time: best of the timed calls")
    for note in notes:
        print(f"note: {note}")
    print()
    print(format_table(results))
    print()
    print("targets (issue 4):")
    print(format_targets(targets))


if __name__ == "__main__":
    main()
