"""`cascade demo`: the headline story on the bundled attention cascades.

For each of the three FuseMax cascades: check it, evaluate it with the reference evaluator, and
compare with textbook softmax attention written directly in NumPy. Later stages (passes,
executors, costs) add their columns here.
"""

from __future__ import annotations

import json
import time

import numpy as np

from .api import load

DEMO_SPECS = ("attention_3pass", "attention_2pass", "attention_1pass")


def textbook_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """softmax over keys of K^T Q, then V: AV[f, p] for Q[e, p], K[e, m], V[f, m]."""
    scores = k.T @ q
    scores = scores - scores.max(axis=0, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=0, keepdims=True)
    return v @ weights


def run_demo(as_json: bool = False) -> int:
    from .commands.common import bundled_path

    rows = []
    for name in DEMO_SPECS:
        spec = load(bundled_path("attention", f"{name}.einsum"))
        inputs = spec.random_inputs(seed=0)
        start = time.perf_counter()
        out = spec.run(inputs)["AV"]
        seconds = time.perf_counter() - start
        expect = textbook_attention(inputs["Q"], inputs["K"], inputs["V"])
        error = float(np.max(np.abs(out - expect)) / np.max(np.abs(expect)))
        rows.append({"cascade": name, "einsums": len(spec.cascade.einsums), "shapes": spec.shapes,
                     "max_rel_error": error, "seconds": seconds, "ok": error < 1e-9})
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        first = rows[0]["shapes"]
        print("Three attention cascades (FuseMax, MICRO 2024), evaluated by the reference evaluator")
        print(f"and compared with textbook softmax(K^T Q) V in NumPy; E={first['E']} F={first['F']} "
              f"M={first['M']} P={first['P']}, float64.\n")
        print(f"{'cascade':<18}{'Einsums':>8}{'max rel. error':>16}{'time (s)':>10}  result")
        for r in rows:
            print(f"{r['cascade']:<18}{r['einsums']:>8}{r['max_rel_error']:>16.2e}{r['seconds']:>10.3f}  "
                  f"{'matches' if r['ok'] else 'MISMATCH'}")
    return 0 if all(r["ok"] for r in rows) else 1
