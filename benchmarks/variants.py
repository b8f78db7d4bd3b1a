"""The attention, norm and loss zoo (issue 12): for each bundled variant on the fusemax target at
N = 4K and 64K, its passes over the reduced rank, MACs, DRAM traffic beside the compulsory
floor, latency and bound; then on this CPU the generated executor (the variant's cpu.yaml
mapping) against naive NumPy (the independent implementations of tests/test_zoo.py).

    python benchmarks/variants.py [--json] [--sizes 4096 65536] [--cpu-n 1024] [--no-cpu]

Shapes: attention at B = 1 with H = 32 heads where the cascade has heads (GQA: groups of R = 4),
M = P = N (decode and FlashDecoding: P = 1, M = N); norms over D = 4096 features of N tokens;
cross-entropy over C = 32768 classes of N rows. Masks are costed: operations only at present
points (model/presence.py), and DRAM reads only of the key tiles a block of queries reaches
(mapping/skips.py, in every pass over M1 that may skip: 1-, 2- and 3-pass; the executor skips the
same tiles). A last table sets causal_1pass beside dense attention_1pass under the same fusemax
mapping, with the closed forms the model must give:
N = M = P, tiles M0 = P0 = T = 256, n = N / T, E = F = 64, fusemax charges exp 6 MACs; per
(key, query) point QK, SLN and SLNV cost E + 6 + F MACs, per (key tile, query) PRM, SPD and SPNV
cost 6 + 1 + F, and causal runs the T n (n + 1) / 2 (tile, query) pairs on or below the diagonal:

    MACs  causal (E + F + 6) N (N + 1) / 2 + (F + 7) T n (n + 1) / 2     dense (E + F + 6) N^2 + (F + 7) n N
    DRAM  causal 2 [(E + F) N + (E + F) T n (n + 1) / 2]     dense 2 [(E + F) N + (E + F) N n]  bytes
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

import cascade
from cascade.errors import CascadeError
from cascade.search.space import compulsory_bytes

ROOT = Path(__file__).resolve().parent.parent


def _zoo_module():
    """tests/test_zoo.py, loaded from its file: the zoo's list and its independent NumPy."""
    spec = importlib.util.spec_from_file_location("zoo_numpy", ROOT / "tests" / "test_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def shapes_for(spec, folder: str, n: int) -> dict[str, int]:
    have = spec.shapes
    derived = {outer for outer, _ in spec.semantics.splits.values()}
    out: dict[str, int] = {}
    if folder == "attention":
        out["M"] = n
        if have.get("P", 1) > 1:
            out["P"] = n
        if "H" in have and "H" not in derived:
            out["H"] = 32
    elif folder == "norm":
        out.update(N=n, D=4096)
    else:
        out.update(N=n, C=32768)
    return out


def reduced_rank_passes(report, folder: str) -> str:
    keys = {"attention": ("M", "M1", "M0"), "norm": ("D",), "loss": ("C",)}[folder]
    return " ".join(f"{r}:{n}" for r, n in report.passes.items() if r in keys)


def cost_rows(zoo, sizes: list[int], only: list[str] | None = None) -> list[dict]:
    rows = []
    for name, (folder, _, _) in sorted(zoo.ZOO.items(), key=lambda kv: (kv[1][0], kv[0])):
        if only and name not in only:
            continue
        path = ROOT / "specs" / folder / f"{name}.einsum"
        base = cascade.load(path)
        for n in sizes:
            spec = cascade.load(path, shapes=shapes_for(base, folder, n))
            row = {"variant": name, "N": n, "passes": reduced_rank_passes(spec.passes(), folder)}
            try:
                r = spec.estimate(str(ROOT / "mappings" / name / "fusemax.yaml"), "fusemax")
                macs = sum(u["ops"].get("mac", 0.0) for u in r.per_unit.values())
                floor = compulsory_bytes(spec, 2)
                row.update(macs=macs, dram_bytes=r.dram_bytes, floor_bytes=floor, latency_s=r.latency_s, bound=r.bound)
            except CascadeError as exc:
                row["refused"] = str(exc).splitlines()[0]
            rows.append(row)
    return rows


def causal_vs_dense(sizes: list[int]) -> list[dict]:
    """causal_1pass and attention_1pass under mappings/causal_1pass/fusemax.yaml, with the closed
    forms of the module docstring computed here from the shapes alone."""
    mapping = str(ROOT / "mappings" / "causal_1pass" / "fusemax.yaml")
    rows = []
    for n in sizes:
        got = {}
        for name in ("causal_1pass", "attention_1pass"):
            spec = cascade.load(ROOT / "specs" / "attention" / f"{name}.einsum", shapes={"M": n, "P": n, "M0": 256})
            r = spec.estimate(mapping, "fusemax")
            got[name] = (sum(u["ops"].get("mac", 0.0) for u in r.per_unit.values()), r.dram_bytes, r.latency_s)
        e = f = 64
        t = 256
        tiles = -(-n // t)
        formula = {"causal_macs": (e + f + 6) * n * (n + 1) // 2 + (f + 7) * t * tiles * (tiles + 1) // 2,
                   "dense_macs": (e + f + 6) * n * n + (f + 7) * tiles * n,
                   "causal_bytes": 2 * ((e + f) * n + (e + f) * t * tiles * (tiles + 1) // 2),
                   "dense_bytes": 2 * ((e + f) * n + (e + f) * n * tiles)}
        (cm, cb, cl), (dm, db, dl) = got["causal_1pass"], got["attention_1pass"]
        rows.append({"N": n, "causal_macs": cm, "dense_macs": dm, "mac_ratio": cm / dm, "causal_bytes": cb,
                     "dense_bytes": db, "byte_ratio": cb / db, "causal_latency_s": cl, "dense_latency_s": dl,
                     "formula": formula, "formula_holds": formula == {"causal_macs": cm, "dense_macs": dm,
                                                                        "causal_bytes": cb, "dense_bytes": db}})
    return rows


def _best(fn, repeats: int):
    """(the least wall time of `repeats` calls, the last result): the machine is shared."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cpu_rows(zoo, n: int, repeats: int = 3, only: list[str] | None = None) -> list[dict]:
    rows = []
    for name in sorted(zoo.ZOO):
        if only and name not in only:
            continue
        folder = zoo.ZOO[name][0]
        path = ROOT / "specs" / folder / f"{name}.einsum"
        spec = cascade.load(path, shapes=_cpu_shapes(cascade.load(path), folder, n))
        x = zoo._inputs(name, spec)
        module = spec.executor(str(ROOT / "mappings" / name / "cpu.yaml"))
        module.run(**x)  # warm up (imports, allocations)
        executor_s, got = _best(lambda: module.run(**x), repeats)
        numpy_s, want = _best(lambda: zoo.numpy_outputs(name, spec, x), repeats)
        err = max(float(np.max(np.abs(got[k] - v))) for k, v in want.items())
        rows.append({"variant": name, "executor_s": executor_s, "numpy_s": numpy_s, "max_abs_error": err})
    return rows


def _cpu_shapes(spec, folder: str, n: int) -> dict[str, int]:
    derived = {outer for outer, _ in spec.semantics.splits.values()}
    if folder == "attention":
        out = {"M": n, "E": 64, "F": 64}
        if spec.shapes.get("P", 1) > 1:
            out["P"] = n
        if "H" in spec.shapes and "H" not in derived:
            out["H"] = 8
        return out
    if folder == "norm":
        return {"N": n, "D": 1024}
    return {"N": n, "C": 4096}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 65536])
    ap.add_argument("--cpu-n", type=int, default=1024)
    ap.add_argument("--no-cpu", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="CPU timings: the best of this many calls")
    ap.add_argument("--only", nargs="+", help="these variants only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    zoo = _zoo_module()
    costs = cost_rows(zoo, args.sizes, args.only)
    cpu = [] if args.no_cpu else cpu_rows(zoo, args.cpu_n, args.repeats, args.only)
    versus = causal_vs_dense(args.sizes)
    if args.json:
        print(json.dumps({"fusemax": costs, "causal_vs_dense": versus, "cpu": cpu}, indent=2))
        return 0
    print("The zoo on fusemax (mappings/<variant>/fusemax.yaml); masks costed (present points, live key tiles)\n")
    print(f"{'variant':<22} {'N':>6} {'passes':<12} {'MACs':>11} {'DRAM':>11} {'floor':>11} {'latency':>11}  bound")
    for r in costs:
        if "refused" in r:
            print(f"{r['variant']:<22} {r['N']:>6} {r['passes']:<12} refused: {r['refused'][:60]}")
            continue
        print(f"{r['variant']:<22} {r['N']:>6} {r['passes']:<12} {r['macs']:>11.3e} {r['dram_bytes'] / 1e6:>9.1f}MB "
              f"{r['floor_bytes'] / 1e6:>9.1f}MB {r['latency_s'] * 1e3:>9.3f}ms  {r['bound']}")
    print("\nCausal vs dense 1-pass attention, both under mappings/causal_1pass/fusemax.yaml (closed forms: "
          "see the module docstring)\n")
    print(f"{'N':>6} {'MACs causal':>12} {'dense':>11} {'ratio':>7} {'DRAM causal':>12} {'dense':>10} {'ratio':>7}"
          f" {'latency ratio':>14}  formulas")
    for r in versus:
        print(f"{r['N']:>6} {r['causal_macs']:>12.4e} {r['dense_macs']:>11.4e} {r['mac_ratio']:>7.4f} "
              f"{r['causal_bytes'] / 1e6:>10.2f}MB {r['dense_bytes'] / 1e6:>8.2f}MB {r['byte_ratio']:>7.4f} "
              f"{r['causal_latency_s'] / r['dense_latency_s']:>14.4f}  {'hold' if r['formula_holds'] else 'DIFFER'}")
    if cpu:
        print(f"\nOn this CPU at N = {args.cpu_n} (cpu.yaml executor vs naive NumPy, float64, best of {args.repeats} calls after a warm-up)\n")
        print(f"{'variant':<22} {'executor':>10} {'NumPy':>10} {'ratio':>7} {'max error':>10}")
        for r in cpu:
            print(f"{r['variant']:<22} {r['executor_s']:>9.3f}s {r['numpy_s']:>9.3f}s "
                  f"{r['executor_s'] / max(r['numpy_s'], 1e-9):>6.2f}x {r['max_abs_error']:>10.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
