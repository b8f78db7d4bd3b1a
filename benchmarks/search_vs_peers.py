"""Mapping search beside its peers (ZigZag, Stream): issue 14's table regenerated with our side.

The workloads of issue 14, on `specs/targets/peer_256.yaml` (its setup: one 256x256 array, a
16 MiB buffer, 400 GiB/s): GEMM 1024^3, GEMM 4096x64x4096 (M x K x N), GEMM 4096^3 (buffer
bound; traffic and latency objectives), and one attention head at N = 4096 (attention_1pass).
For each: our best traffic over the compulsory floor, its latency, the seconds until that best
was found (time-to-best, from the start of the search call) and the whole search's seconds,
beside the peers' traffic and seconds read from `benchmarks/data/peers_search.csv` (ZigZag 3.9.1
with LOMA and Stream 2.1.1, run for issue 14 on the same setup; this script does not run them),
and the ratio of our time-to-best to ZigZag's fastest time. The machine's load average (1 min)
is printed beside each row: the figures are wall times on a shared machine.

Our times are those of a warm process: before the table, one small search (GEMM 256^3 on the
same target) loads what the first search of a process loads (sympy, its lambdify printers:
about 1-2 s on a 2-core machine, printed as the warm-up); `--cold` leaves it out, so that the
first row pays for it.

    python benchmarks/search_vs_peers.py [--budget S] [--only NAME ...] [--cold] [--json]

Rerunning the peers (not automated here): install `zigzag-dse==3.9.1` and `stream-dse==2.1.1`
in a virtual environment of their own, describe the same accelerator (256x256 PEs, 16 MiB
global buffer, 400 GiB/s DRAM, 16-bit words) and each workload as their ONNX or YAML layer
input, run ZigZag with the LOMA loop-order search and Stream with its defaults (as issue 14 did), and
record the DRAM traffic of the best mapping and the wall time in the CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "specs" / "targets" / "peer_256.yaml"
PEERS = Path(__file__).resolve().parent / "data" / "peers_search.csv"
# name -> (spec, shapes, objectives)
WORKLOADS = {
    "gemm_1024": ("matmul.einsum", {"M": 1024, "K": 1024, "N": 1024}, ("traffic",)),
    "gemm_4096x64x4096": ("matmul.einsum", {"M": 4096, "K": 64, "N": 4096}, ("traffic",)),
    "gemm_4096": ("matmul.einsum", {"M": 4096, "K": 4096, "N": 4096}, ("traffic", "latency")),
    "attention_4096": ("attention/attention_1pass.einsum", {"M": 4096, "P": 4096}, ("traffic",)),
}


def peers() -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    with open(PEERS, newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["workload"], {})[row["tool"]] = row
    return out


def ours(name: str, objective: str, budget: float) -> dict:
    import cascade
    from cascade.search import search

    spec_file, shapes, _ = WORKLOADS[name]
    spec = cascade.load(ROOT / "specs" / spec_file, shapes)
    start = time.perf_counter()
    result = search(spec, TARGET, objective, budget, top=1)
    seconds = time.perf_counter() - start
    best = result.best[0] if result.best else None
    return {"workload": name, "objective": objective,
            "traffic_over_floor": best.dram_bytes / result.compulsory_bytes if best else None,
            "latency_s": best.latency_s if best else None, "seconds_to_best": result.seconds_to_best,
            "seconds": seconds, "optimal": result.complete, "gap": result.gap(),
            "families": f"{result.families_scored}+{result.families_pruned} pruned/{result.families_total}",
            "mapping": best.describe() if best else None}


def warm_up(budget: float) -> float:
    """Seconds of one small search (GEMM 256^3 on the target), the first of the process."""
    import cascade
    from cascade.search import search

    spec = cascade.load(ROOT / "specs" / "matmul.einsum", {"M": 256, "K": 256, "N": 256})
    start = time.perf_counter()
    search(spec, TARGET, "traffic", budget, top=1)
    return time.perf_counter() - start


def _f(v, fmt: str) -> str:
    return "-" if v in (None, "") else format(float(v), fmt)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=300.0, help="search budget per run (s)")
    ap.add_argument("--only", nargs="*", choices=sorted(WORKLOADS), help="run only these workloads")
    ap.add_argument("--cold", action="store_true", help="no warm-up search: the first row pays the imports")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    table = peers()
    warm = None if args.cold else warm_up(args.budget)
    rows = []
    for name in args.only or WORKLOADS:
        for objective in WORKLOADS[name][2]:
            row = ours(name, objective, args.budget)
            row["load_average"] = os.getloadavg()[0]
            row["warm_up_s"] = warm
            zz, stream = table.get(name, {}).get("zigzag", {}), table.get(name, {}).get("stream", {})
            row["zigzag"] = {k: zz.get(k) for k in ("traffic_over_floor", "seconds_fastest", "seconds_slowest")}
            row["stream"] = {k: stream.get(k) for k in ("traffic_over_floor", "seconds_fastest", "seconds_slowest")}
            fastest = zz.get("seconds_fastest")
            row["ratio_to_zigzag"] = (row["seconds_to_best"] / float(fastest)
                                      if fastest and row["seconds_to_best"] is not None else None)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"issue 14's workloads on {TARGET.name} (peers from {PEERS.name}: ZigZag 3.9.1 LOMA, Stream 2.1.1)")
    print("warm-up search (imports): " + ("none (--cold)" if warm is None else f"{warm:.2f} s") +
          f"; {os.cpu_count()} cores")
    print(f"{'workload':<18} {'objective':<8} | {'ours x floor':>12} {'latency ms':>10} {'to best s':>9} {'total s':>8}"
          f" {'proved':>6} | {'ZigZag x':>8} {'ZZ s':>9} | {'Stream x':>8} {'St s':>5} | {'ours/ZZ time':>12} {'load':>5}")
    for r in rows:
        zz, st = r["zigzag"], r["stream"]
        zz_s = f"{_f(zz['seconds_fastest'], '.1f')}-{_f(zz['seconds_slowest'], '.1f')}" if zz["seconds_fastest"] else "-"
        print(f"{r['workload']:<18} {r['objective']:<8} | {_f(r['traffic_over_floor'], '.3f'):>12}"
              f" {_f(r['latency_s'] and r['latency_s'] * 1e3, '.4f'):>10} {_f(r['seconds_to_best'], '.2f'):>9}"
              f" {r['seconds']:8.2f} {'yes' if r['optimal'] else 'no':>6} | {_f(zz['traffic_over_floor'], '.2f'):>8}"
              f" {zz_s:>9} | {_f(st['traffic_over_floor'], '.2f'):>8} {_f(st['seconds_fastest'], '.1f'):>5} |"
              f" {_f(r['ratio_to_zigzag'], '.2f'):>12} {r['load_average']:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
