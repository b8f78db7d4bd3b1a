"""Per-SM streaming bandwidth: what one program per SM reads from DRAM, tile by tile.

    python benchmarks/gpu_stream.py [--json] [--out DIR]      # on the GPU machine (torch + triton)

The h200 model (`cascade/model/gpu.py`) caps a kernel's DRAM bandwidth at min(HBM, programs in
flight x `dram.per_sm_bytes_per_s`). This measures that per-SM rate with a kernel shaped like the
generated streaming loops: each program walks its own contiguous rows of two bf16 tensors (a K and a
V cache) in tiles of R rows x 64 columns, loads both tiles, and folds them into an fp32 accumulator
(nothing else to compute), with the backend's usual num_warps / num_stages. Grids of 132 programs
(one per SM) and 64 programs (the decode row's grid) are timed (triton.testing.do_bench, median);
rate per program = bytes read / time / programs. The buffers (2 x 1 GiB) dwarf the 60 MB L2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--out", help="directory to write gpu_stream.json into")
    args = ap.parse_args()
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def stream(k_ptr, v_ptr, out_ptr, rows_per_program, R: tl.constexpr, D: tl.constexpr):
        pid = tl.program_id(0)
        base = pid.to(tl.int64) * rows_per_program * D
        r = tl.arange(0, R)[:, None]
        c = tl.arange(0, D)[None, :]
        acc = tl.zeros([R, D], dtype=tl.float32)
        for t in range(0, rows_per_program, R):
            off = base + (t + r) * D + c
            acc += tl.load(k_ptr + off).to(tl.float32) * tl.load(v_ptr + off).to(tl.float32)
        tl.store(out_ptr + pid, tl.sum(acc))

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    d, total_rows = 64, 1 << 23  # 2 tensors x 2^23 x 64 x 2 B = 2 GiB
    k = torch.randn(total_rows, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(total_rows, d, device="cuda", dtype=torch.bfloat16)
    rows = []
    for programs in (sms, 64):
        per = (total_rows // programs) // 128 * 128
        for tile, warps, stages in ((128, 4, 3), (64, 4, 3), (128, 4, 2), (128, 8, 3)):
            out = torch.empty(programs, device="cuda", dtype=torch.float32)

            def go():
                stream[(programs,)](k, v, out, per, R=tile, D=d, num_warps=warps, num_stages=stages)

            go()
            torch.cuda.synchronize()
            check = (k[:per].float() * v[:per].float()).sum().item()
            ms = triton.testing.do_bench(go, warmup=25, rep=200)
            moved = 2 * programs * per * d * 2
            row = {"programs": programs, "tile_rows": tile, "warps": warps, "stages": stages, "ms": ms,
                   "bytes": moved, "gb_per_s": moved / ms / 1e6,
                   "per_program_gb_per_s": moved / ms / 1e6 / programs,
                   "check_rel": abs(out[0].item() - check) / max(abs(check), 1.0)}
            rows.append(row)
            print(f"programs={programs:4d} R={tile:4d} warps={warps} stages={stages}: {ms:.3f} ms, "
                  f"{row['gb_per_s']:.0f} GB/s, {row['per_program_gb_per_s']:.1f} GB/s per program "
                  f"(sum check rel {row['check_rel']:.1e})", flush=True)
    data = {"device": torch.cuda.get_device_name(0), "sms": sms, "torch": torch.__version__,
            "triton": triton.__version__, "rows": rows}
    if args.json:
        print(json.dumps(data, indent=2))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_stream.json").write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
