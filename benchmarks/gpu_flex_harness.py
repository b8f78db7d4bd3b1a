"""A/B of the FlexAttention baseline: `torch.compile(flex_attention)` as gpu_attention.py made it
before 2026-11-30 (default `dynamic`; the first shape compiles static, every later shape
recompiles with a dynamic sequence length) against `dynamic=False` (one static kernel per shape).
Each mode runs in its own process (dynamo's cache is per process), the shapes in the same order
as gpu_attention.py (1K first), causal masks built once outside the timed region.

    python benchmarks/gpu_flex_harness.py [--out DIR]     # on a CUDA machine, ~2 minutes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SHAPES = [(64, 12, 1024, 64), (64, 12, 4096, 64), (8, 12, 16384, 64)]


def measure(mode: str) -> list[dict]:
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    from triton.testing import do_bench

    torch._dynamo.config.recompile_limit = 64
    flex = torch.compile(flex_attention, dynamic=False) if mode == "static" else torch.compile(flex_attention)
    rows = []
    for b, h, n, d in SHAPES:
        gen = torch.Generator(device="cuda").manual_seed(1)
        q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(3))
        for causal in (False, True):
            mask = create_block_mask(lambda b_, h_, qi, ki: qi >= ki, None, None, n, n, device="cuda") if causal else None
            fn = lambda: flex(q, k, v, block_mask=mask, scale=1.0)  # noqa: E731
            fn()
            torch.cuda.synchronize()
            ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
            tflops = 4 * b * h * n * n * d / (2 if causal else 1) / ms / 1e9
            rows.append({"mode": mode, "B": b, "H": h, "N": n, "D": d, "causal": causal, "ms": ms, "tflops": tflops})
            print(f"flex {mode} B={b} H={h} N={n} D={d} causal={causal}: {ms:.3f} ms {tflops:.0f} TF/s", flush=True)
        del q, k, v
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["dynamic", "static"], help="(internal) one mode in this process")
    ap.add_argument("--out", help="directory to write gpu_flex_harness.json into")
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode)))
        return 0
    rows = []
    for mode in ("dynamic", "static"):
        done = subprocess.run([sys.executable, __file__, "--mode", mode], capture_output=True, text=True, check=True)
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    lines = ["| B, H, N, D | causal | default (recompiled dynamic) TF/s | dynamic=False TF/s |", "|---|---|---|---|"]
    for dyn, sta in zip([r for r in rows if r["mode"] == "dynamic"], [r for r in rows if r["mode"] == "static"]):
        lines.append(f"| {dyn['B']}, {dyn['H']}, {dyn['N']}, {dyn['D']} | {'yes' if dyn['causal'] else 'no'} | "
                     f"{dyn['tflops']:.0f} | {sta['tflops']:.0f} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_flex_harness.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
