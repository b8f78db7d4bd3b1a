"""Evaluations per second of the lambdified cost model (the form a mapping search uses).

The 1-pass multi-head attention with the FuseMax mapping on the fusemax target is turned into
one NumPy function of the rank and tile shapes; it is then evaluated for many tile shapes at
once (M0 and P0 tiles, P1 rows per outer tile), and, as a baseline measured in the same run,
by substituting numbers into the sympy formulas one candidate at a time. The vectorised results
are checked against the numeric model (`Spec.estimate`) on a few candidates.

    python benchmarks/model_speed.py [--candidates N] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import cascade
    from cascade.model.symbolic import cost_formulas, lambdify_cost
    from cascade.model.target import load_target

    spec = cascade.load(ROOT / "specs/attention/mha_1pass.einsum",
                        dict(B=64, H=12, E=64, F=64, M=65536, P=65536))
    mapping = ROOT / "mappings/mha_1pass/fusemax.yaml"
    target = load_target("fusemax")
    t0 = time.perf_counter()
    formulas = cost_formulas(spec.bind(mapping), target)
    fn, names = lambdify_cost(formulas)
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    n = args.candidates
    values = {k: np.full(n, v) for k, v in formulas.values.items()}
    values["M0"] = 2 ** rng.integers(4, 11, n)  # key tiles 16..1024
    values["P0"] = 2 ** rng.integers(4, 11, n)  # query rows on the array 16..1024
    values["P1"] = 2 ** rng.integers(0, 8, n)  # inner tiles per outer query tile
    columns = [values[k] for k in names]
    t0 = time.perf_counter()
    latency, traffic = fn(*columns)
    vector_s = time.perf_counter() - t0

    subs_n = 200
    t0 = time.perf_counter()
    for i in range(subs_n):
        point = {formulas.symbols[k]: int(values[k][i]) for k in names}
        float(formulas.latency_s.subs(point))
    subs_s = time.perf_counter() - t0

    # the lambdified model agrees with the numeric model on a few candidates
    from dataclasses import replace

    from cascade.mapping.mapping_file import load_mapping

    base = load_mapping(mapping)
    checked = 0
    two_level = [i for i in range(n) if values["P1"][i] > 1][:5]  # the mapping's two-level P split
    for i in two_level:
        m0, p0, p1 = int(values["M0"][i]), int(values["P0"][i]), int(values["P1"][i])
        mp = replace(base, partitioning=dict(base.partitioning, M=(m0,), P=(p0 * p1, p0)))
        report = spec.estimate(mp, target)
        assert abs(report.latency_s - latency[i]) <= 1e-9 * report.latency_s, (report.latency_s, latency[i])
        assert abs(report.dram_bytes - traffic[i]) <= 1e-9 * report.dram_bytes
        checked += 1

    result = {"candidates": n, "build_s": build_s, "vectorised_s": vector_s,
              "evaluations_per_s": n / vector_s, "sympy_subs_per_s": subs_n / subs_s,
              "speedup_over_subs": (n / vector_s) / (subs_n / subs_s), "checked_against_numeric_model": checked}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("lambdified cost model: mha_1pass, FuseMax mapping, fusemax target, BERT at 64K")
    print(f"  building the formulas and lambdifying: {build_s:.2f} s")
    print(f"  {n:,} tile-shape candidates in {vector_s * 1e3:.1f} ms: {n / vector_s:,.0f} evaluations/s "
          f"(target >= 100,000/s)")
    print(f"  baseline, sympy subs one at a time: {subs_n / subs_s:,.0f} evaluations/s "
          f"-> lambdified is {result['speedup_over_subs']:,.0f}x faster")
    print(f"  agreement with the numeric model checked on {checked} candidates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
