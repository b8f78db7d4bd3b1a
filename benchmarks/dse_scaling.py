"""`cascade dse` throughput: points per second with 1 and 2 Dask workers against a plain loop.

Two studies, each run three ways on the same points: a plain in-process loop over the same
worker functions (`build_plan`, `evaluate_with_plan`, `evaluate_direct`), then `run_dse` on a
LocalCluster of 1 and of 2 single-threaded worker processes (clusters started and warmed before
the clock starts; a timed run includes writing the CSV). The best of `--reps` interleaved runs
of each counts.

- estimate: the 1-pass attention cascade (tiled mapping, M = P = 512) with exp's cost varied: not
  a formula argument, so every point is a full `Spec.estimate` (~0.1 s of work per point);
  this is where workers scale.
- formula: matmul with the default mapping over a grid of clock x bandwidth x array size; one
  cost plan, then ~10 us of NumPy per point: this measures Dask's own cost per task.

Dask's per-point overhead is (1-worker time - loop time) / points, and, less exposed to how a busy
machine shares its CPUs among processes, the 1-worker time not spent inside points (each row's
`seconds`) per point. On a shared 2-core machine the figures move with other processes' load
(the load average is printed).

    python benchmarks/dse_scaling.py [--points N] [--reps K] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# one BLAS/OpenMP thread in this process, as Dask's nanny gives each worker: the loop and the
# workers then do the same work the same way (and a busy 2-core machine is not oversubscribed)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent

ESTIMATE = """\
name: estimate
target: fusemax
workloads:
  - {{name: att, spec: attention/attention_1pass.einsum, shapes: {{M: 512, P: 512}},
     mapping: attention_1pass/tiled.yaml}}
vary:
  exp_cost: {{target: op_costs.exp.mac, range: {{from: 1, to: {n}, step: 1}}}}
"""

FORMULA = """\
name: formula
target: fusemax
workloads:
  - {{name: mm, spec: matmul.einsum, shapes: {{K: 512, M: 512, N: 512}}}}
vary:
  clock: {{target: clock_hz, range: {{from: 2.0e+8, to: 2.0e+9, step: {step}}}}}
  bw: {{target: dram.bandwidth_bytes_per_s, values: [1.0e+11, 2.0e+11, 4.0e+11, 8.0e+11]}}
  pe: {{target: [units.array2d.shape, units.array1d.shape], values: [32, 64, 128, 256, 512]}}
"""


def plain_loop(config) -> float:
    """Seconds for every point of `config` in this process, one after another."""
    from cascade.dse.evaluate import build_plan, evaluate_direct, evaluate_with_plan
    from cascade.dse.points import enumerate_points
    from cascade.dse.runner import job_for

    start = time.perf_counter()
    plans = {}
    for point in enumerate_points(config):
        job, request = job_for(config, point)
        if request is None:
            evaluate_direct(job)
        else:
            if request.key not in plans:
                plans[request.key] = build_plan(request)
            evaluate_with_plan(plans[request.key], job)
    return time.perf_counter() - start


def timed_run(config, client, path: str) -> tuple[float, float]:
    """(wall seconds, seconds the workers spent inside the points, from the rows' `seconds`)."""
    from cascade.dse.runner import run_dse
    from cascade.dse.store import read_results

    start = time.perf_counter()
    summary = run_dse(config, path, client)
    seconds = time.perf_counter() - start
    assert summary.written == summary.points, summary
    return seconds, sum(r["seconds"] for r in read_results(path)[1])


def measure(name: str, text: str, folder: str, clients: dict, reps: int) -> dict:
    """Best of `reps` for the loop, 1 worker and 2 workers, the three interleaved so that a change
    of the machine's load hits them alike; every way warmed by one untimed run first."""
    from cascade.dse.config import parse_config
    from cascade.dse.points import enumerate_points

    path = Path(folder) / f"{name}.yaml"
    path.write_text(text)
    config = parse_config(text, str(path))
    n = len(enumerate_points(config))
    plain_loop(config)
    for workers, client in clients.items():
        timed_run(config, client, os.path.join(folder, f"{name}-warm-{workers}.csv"))
    best = {"loop": float("inf"), 1: float("inf"), 2: float("inf")}
    outside = float("inf")  # 1 worker: wall time not spent inside a point (scheduling, transfer, CSV)
    for rep in range(reps):
        best["loop"] = min(best["loop"], plain_loop(config))
        for workers, client in clients.items():
            wall, inside = timed_run(config, client, os.path.join(folder, f"{name}-{rep}-{workers}.csv"))
            best[workers] = min(best[workers], wall)
            if workers == 1:
                outside = min(outside, wall - inside)
    loop, one, two = best["loop"], best[1], best[2]
    return {"study": name, "points": n, "loop_s": loop, "one_worker_s": one, "two_workers_s": two,
            "loop_points_per_s": n / loop, "one_worker_points_per_s": n / one, "two_workers_points_per_s": n / two,
            "speedup_2_over_1": one / two, "dask_overhead_ms_per_point": (one - loop) / n * 1e3,
            "outside_points_ms_per_point": outside / n * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=24, help="points of the estimate study (default 24)")
    parser.add_argument("--reps", type=int, default=3, help="timed runs of each way; the best counts (default 3)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        clients = {}
        for workers in (1, 2):
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=":0", silence_logs=logging.CRITICAL))
            clients[workers] = stack.enter_context(Client(cluster))
        rows = [measure("estimate", ESTIMATE.format(n=args.points), folder, clients, args.reps),
                measure("formula", FORMULA.format(step=6.0e7), folder, clients, args.reps)]
    load_after = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after,
                          "studies": rows}, indent=2))
        return 0
    print(f"cascade dse throughput on {os.cpu_count()} CPUs (load average {load_before:.1f} before, "
          f"{load_after:.1f} after)\n")
    print(f"{'study':<10}{'points':>7}{'loop pts/s':>12}{'1 worker':>10}{'2 workers':>11}{'speedup':>9}"
          f"{'Dask ms/pt':>12}{'outside ms/pt':>15}")
    for r in rows:
        print(f"{r['study']:<10}{r['points']:>7}{r['loop_points_per_s']:>12.1f}{r['one_worker_points_per_s']:>10.1f}"
              f"{r['two_workers_points_per_s']:>11.1f}{r['speedup_2_over_1']:>8.2f}x"
              f"{r['dask_overhead_ms_per_point']:>12.2f}{r['outside_points_ms_per_point']:>15.2f}")
    print("\nspeedup: 2 workers over 1; Dask ms/pt: (1-worker time - plain loop time) per point; outside ms/pt:"
          "\n1-worker time not spent inside a point (the rows' own seconds), per point: Dask's cost alone, even"
          "\nwhen a busy machine gives the worker process a different share of the CPUs than the loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
