"""Generated Triton 1-pass attention beside torch SDPA (flash, cuDNN) and compiled FlexAttention.

Run on a CUDA machine from the repository root (torch and triton installed):

    python benchmarks/gpu_attention.py [--quick] [--json] [--out DIR] [--rows 0,1,...]

Each row: batch B, heads H, sequence N (queries = keys), head size D, bf16 inputs, forward,
non-causal and causal; the scale is 1 everywhere (the bundled cascades have no 1/sqrt(D)).
Per implementation: median time over `triton.testing.do_bench` (events, after warm-up),
TFLOP/s = 4*B*H*N^2*D / time (causal: half the FLOPs), the h200 model's prediction for the
generated kernel, and the max error vs a float64 reference of the bf16 inputs on the first head and
the first 1024 queries (relative to that reference's max magnitude). The generated kernel is
`specs/attention/mha_1pass[_causal].einsum` with `mappings/mha_1pass/h200.yaml`, its tiles
(P0, M0) among (128, 64), (128, 128), (64, 64) and its launch options (warps, pipeline stages)
picked per row from a few candidates, each compiled once; the row names the pick.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = [(64, 12, 1024, 64), (64, 12, 4096, 64), (8, 12, 16384, 64), (1, 12, 65536, 64), (16, 16, 4096, 128)]
QUICK_ROWS = [(4, 4, 1024, 64), (2, 4, 2048, 128)]
CONFIGS = [(4, 2), (4, 3), (8, 2), (8, 3)]
TILES = [(128, 64), (128, 128), (64, 64)]  # (P0 query rows, M0 keys) per program and loop step


def reference_error(out_bhpd, q, k, v, causal: bool) -> float:
    """Max |out - ref| / max |ref| on head (0, 0), first 1024 queries; ref in float64."""
    import torch

    n = min(q.shape[2], 1024)
    qq, kk, vv = q[0, 0, :n].double(), k[0, 0].double(), v[0, 0].double()
    s = qq @ kk.T
    if causal:
        mask = torch.arange(kk.shape[0], device=q.device)[None, :] > torch.arange(n, device=q.device)[:, None]
        s = s.masked_fill(mask, float("-inf"))
    ref = torch.softmax(s, dim=-1) @ vv
    got = out_bhpd[0, 0, :n].double()
    return float((got - ref).abs().max() / ref.abs().max())


def generated(causal: bool, query_tile: int, key_tile: int):
    import cascade
    from cascade.codegen.loader import import_source
    from cascade.mapping.mapping_file import load_mapping

    name = "mha_1pass_causal" if causal else "mha_1pass"
    spec = cascade.load(ROOT / "specs" / "attention" / f"{name}.einsum")
    base = load_mapping(ROOT / "mappings" / "mha_1pass" / "h200.yaml")
    mapping = dataclasses.replace(base, partitioning={**base.partitioning, "P": (query_tile,), "M": (key_tile,)})
    module = import_source(spec.compile(mapping, backend="triton"), stem=f"{name}_{query_tile}_{key_tile}_triton")
    return spec, mapping, module


def predict(spec, mapping, shapes) -> float | None:
    try:
        report = spec.with_shapes(**shapes).estimate(mapping, "h200")
    except Exception as exc:  # the model is reported, never allowed to stop the measurement
        print(f"  (no prediction: {exc})", file=sys.stderr)
        return None
    return float(report.latency_s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small rows (smoke run)")
    ap.add_argument("--rows", help="indices of the issue's rows to run, e.g. 0,4")
    ap.add_argument("--no-flex", action="store_true", help="skip compiled FlexAttention")
    ap.add_argument("--json", action="store_true", help="print the table as JSON")
    ap.add_argument("--out", help="directory to write gpu_attention.json and .md into")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from triton.testing import do_bench

    if not torch.cuda.is_available():
        print("gpu_attention.py needs a CUDA device", file=sys.stderr)
        return 2
    rows = QUICK_ROWS if args.quick else ROWS
    if args.rows:
        rows = [ROWS[int(i)] for i in args.rows.split(",")]
    flex = None
    if not args.no_flex:
        try:
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention

            torch._dynamo.config.recompile_limit = 64  # one compile per shape and mask: keep them all
            flex = torch.compile(flex_attention)
        except Exception as exc:  # pragma: no cover - depends on the torch build
            print(f"FlexAttention unavailable: {exc}", file=sys.stderr)
    kernels = {(c, t): generated(c, *t) for c in (False, True) for t in TILES}
    device = torch.cuda.get_device_name()
    results = []

    def bench(fn) -> float:
        fn()
        torch.cuda.synchronize()
        return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e-3

    for b, h, n, d in rows:
        gen = torch.Generator(device="cuda").manual_seed(b * 7 + n + d)
        q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(3))
        for causal in (False, True):
            flops = 4 * b * h * n * n * d / (2 if causal else 1)
            row = {"B": b, "H": h, "N": n, "D": d, "causal": causal, "impl": {}}

            def record(label, seconds, out, extra=None):
                entry = {"seconds": seconds, "tflops": flops / seconds / 1e12,
                         "max_error": reference_error(out, q, k, v, causal)}
                entry.update(extra or {})
                row["impl"][label] = entry

            # the generated kernel: Q[B,H,E,P], K[B,H,E,M], V[B,H,F,M] are views of (B,H,N,D) tensors
            inputs = {"Q": q.transpose(2, 3), "K": k.transpose(2, 3), "V": v.transpose(2, 3)}
            best = None
            for tile in TILES:
                spec, mapping, module = kernels[(causal, tile)]
                for warps, stages in CONFIGS:
                    module.configure(num_warps=warps, num_stages=stages)
                    try:
                        sec = bench(lambda: module.run(**inputs))
                    except Exception as exc:  # a config that does not fit (shared memory) is skipped
                        print(f"  skip P0, M0 = {tile} w{warps} s{stages}: {type(exc).__name__}", file=sys.stderr)
                        continue
                    if best is None or sec < best[0]:
                        best = (sec, tile, warps, stages)
            sec, tile, warps, stages = best
            spec, mapping, module = kernels[(causal, tile)]
            module.configure(num_warps=warps, num_stages=stages)
            out = module.run(**inputs)["AV"].transpose(2, 3)
            pred = predict(spec, mapping, {"B": b, "H": h, "E": d, "F": d, "M": n, "P": n})
            record("cascade", sec, out, {"config": f"P0={tile[0]} M0={tile[1]} warps={warps} stages={stages}",
                                         "predicted_seconds": pred})
            del out
            for label, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                                   ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
                try:
                    with sdpa_kernel(backend):
                        fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=1.0)  # noqa: E731
                        sec = bench(fn)
                        record(label, sec, fn())
                except Exception as exc:
                    print(f"  {label} unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
            if flex is not None:
                try:
                    mask = None
                    if causal:
                        mask = create_block_mask(lambda b_, h_, qi, ki: qi >= ki, None, None, n, n, device="cuda")
                    fn = lambda: flex(q, k, v, block_mask=mask, scale=1.0)  # noqa: E731
                    sec = bench(fn)
                    record("flex", sec, fn())
                except Exception as exc:
                    print(f"  flex unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
            results.append(row)
            print(_line(row), flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    if args.out:  # the main table first, in case the multi-kernel part fails
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_attention_main.json").write_text(json.dumps({"rows": results}, indent=2))
    multipass = [] if args.quick else _multipass(bench)
    meta = {"device": device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "triton": __import__("triton").__version__}
    table = _table(results, meta) + _multipass_table(multipass)
    print(table)
    if args.json:
        print(json.dumps({"meta": meta, "rows": results, "multipass": multipass}, indent=2))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_attention.json").write_text(json.dumps({"meta": meta, "rows": results, "multipass": multipass},
                                                          indent=2))
        (out / "gpu_attention.md").write_text(table)
    return 0


def _multipass(bench, n: int = 1024, d: int = 64) -> list[dict]:
    """The 2- and 3-pass cascades (single head) as several kernels, intermediates in device memory."""
    import torch

    import cascade
    from cascade.codegen.loader import import_source

    out = []
    gen = torch.Generator(device="cuda").manual_seed(11)
    q, k, v = (torch.randn(d, n, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(3))
    s = k.double().T @ q.double()  # [m, p]
    ref = v.double() @ torch.softmax(s, dim=0)  # [f, p]
    for name in ("attention_2pass", "attention_3pass"):
        spec = cascade.load(ROOT / "specs" / "attention" / f"{name}.einsum", {"M": n, "P": n, "E": d, "F": d})
        mapping = ROOT / "mappings" / name / "h200.yaml"
        module = import_source(spec.compile(mapping, backend="triton"), stem=f"{name}_bench")
        best = None
        for warps in (4, 8):
            module.configure(num_warps=warps, num_stages=1)
            try:
                sec = bench(lambda: module.run(Q=q, K=k, V=v))
            except Exception as exc:  # a block that does not fit (shared memory): reported, skipped
                print(f"  {name} warps={warps}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            best = sec if best is None or sec < best else best
        if best is None:
            continue
        got = module.run(Q=q, K=k, V=v)["AV"].double()
        err = float((got - ref).abs().max() / ref.abs().max())
        pred = float(spec.estimate(mapping, "h200").latency_s)
        out.append({"cascade": name, "N": n, "D": d, "kernels": len(module.KERNELS), "seconds": best,
                    "predicted_seconds": pred, "max_error": err})
        print(f"{name} N={n}: {best * 1e3:.3f} ms, predicted {pred * 1e3:.3f} ms, err {err:.1e}", flush=True)
    return out


def _multipass_table(rows) -> str:
    if not rows:
        return ""
    lines = ["", "Several kernels, intermediates in device memory (one head, bf16 inputs, mappings */h200.yaml):", "",
             "| cascade | N, D | kernels | measured ms | pred ms | pred/meas | err |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cascade']} | {r['N']}, {r['D']} | {r['kernels']} | {r['seconds'] * 1e3:.3f} | "
                     f"{r['predicted_seconds'] * 1e3:.3f} | {r['predicted_seconds'] / r['seconds']:.2f} | "
                     f"{r['max_error']:.1e} |")
    return "\n".join(lines) + "\n"


def _line(row) -> str:
    parts = [f"B={row['B']} H={row['H']} N={row['N']} D={row['D']}{' causal' if row['causal'] else ''}:"]
    for label, e in row["impl"].items():
        parts.append(f"{label} {e['seconds'] * 1e3:.3f} ms {e['tflops']:.0f} TF/s err {e['max_error']:.1e}")
    return "  ".join(parts)


def _table(results, meta) -> str:
    labels = ["cascade", "sdpa_flash", "sdpa_cudnn", "flex"]
    lines = [f"# 1-pass attention on {meta['device']} ({meta['date']}, torch {meta['torch']}, triton {meta['triton']})",
             "", "bf16 inputs, fp32 accumulation, forward, scale 1; TFLOP/s = 4*B*H*N^2*D / time (causal: half);",
             "err = max |out - ref| / max |ref| vs float64 on head (0,0), first 1024 queries; "
             "pred = h200 model's time for the generated kernel.", "",
             "| B, H, N, D | causal | cascade ms | cascade TF/s | pred ms | pred/meas | flash TF/s | cuDNN TF/s | "
             "flex TF/s | cascade/flex | cascade/flash | cascade err | cascade config |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        imp = r["impl"]
        c = imp.get("cascade", {})
        tf = {k: imp[k]["tflops"] if k in imp else None for k in labels}
        pred = c.get("predicted_seconds")

        def f(x, fmt="{:.0f}"):
            return "-" if x is None else fmt.format(x)

        lines.append(
            f"| {r['B']}, {r['H']}, {r['N']}, {r['D']} | {'yes' if r['causal'] else 'no'} | "
            f"{c['seconds'] * 1e3:.3f} | {tf['cascade']:.0f} | {f(pred and pred * 1e3, '{:.3f}')} | "
            f"{f(pred and pred / c['seconds'], '{:.2f}')} | {f(tf['sdpa_flash'])} | {f(tf['sdpa_cudnn'])} | "
            f"{f(tf['flex'])} | {f(tf['flex'] and tf['cascade'] / tf['flex'], '{:.2f}')} | "
            f"{f(tf['sdpa_flash'] and tf['cascade'] / tf['sdpa_flash'], '{:.2f}')} | {c['max_error']:.1e} | "
            f"{c['config']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
