"""Wall and CPU time of `cascade reduce` on the bundled multi-pass specs, in fresh processes.

The issue's target is "reduce on one bundled spec runs in under 2 s". Each spec is reduced by
the CLI in a new Python process (imports, parse, proofs, print: what a user waits for), best of
`--repeats`; the baseline, measured in the same run on the same spec, is `cascade passes`
(the same start-up and parse, no rewrite), so the ratio shows what the rewrite itself adds.

    python benchmarks/reduce_speed.py [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ["attention/attention_3pass", "attention/attention_2pass", "attention/mha_3pass",
         "attention/causal_3pass", "norm/layernorm_3pass", "loss/cross_entropy_2pass"]


def timed(argv: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one CLI call in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cascade", *argv], capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, done.returncode


def best(argv: list[str], repeats: int) -> dict:
    runs = [timed(argv) for _ in range(repeats)]
    codes = {rc for _, _, rc in runs}
    return {"wall_s": min(w for w, _, _ in runs), "cpu_s": min(c for _, c, _ in runs), "exit": max(codes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in SPECS:
        spec = str(ROOT / "specs" / f"{name}.einsum")
        reduce = best(["reduce", spec], args.repeats)
        base = best(["passes", spec], args.repeats)
        rows.append({"spec": name, "reduce": reduce, "passes": base,
                     "wall_ratio": reduce["wall_s"] / base["wall_s"], "under_2s": reduce["wall_s"] < 2.0})
    if args.json:
        print(json.dumps({"load": os.getloadavg()[0], "rows": rows}, indent=2))
    else:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; best of {args.repeats}")
        print(f"{'spec':32} {'reduce wall':>11} {'cpu':>6} {'passes wall':>11} {'ratio':>6}  exit  <2 s")
        for r in rows:
            print(f"{r['spec']:32} {r['reduce']['wall_s']:10.2f}s {r['reduce']['cpu_s']:5.2f}s "
                  f"{r['passes']['wall_s']:10.2f}s {r['wall_ratio']:6.2f}  {r['reduce']['exit']:>4}  "
                  f"{'yes' if r['under_2s'] else 'NO'}")
    return 0 if all(r["reduce"]["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
