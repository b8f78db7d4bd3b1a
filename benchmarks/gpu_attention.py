"""Generated Triton 1-pass attention beside torch SDPA (flash, cuDNN) and compiled FlexAttention.

Run on a CUDA machine from the repository root (torch and triton installed):

    python benchmarks/gpu_attention.py [--quick] [--json] [--out DIR] [--rows 0,1,...] [--part main|variants]
    python benchmarks/gpu_attention.py --repredict DIR/gpu_attention.json --out DIR   # on any machine

Each row: batch B, heads H, sequence N (queries = keys), head size D, bf16 inputs, forward,
non-causal and causal; the scale is 1 everywhere (the bundled cascades have no 1/sqrt(D)).
Per implementation: median time over `triton.testing.do_bench` (events, after warm-up),
TFLOP/s = 4*B*H*N^2*D / time (causal: half the FLOPs), the h200 model's prediction for the
generated kernel, and the max error vs a float64 reference of the bf16 inputs on the first head and
the first 1024 queries (relative to that reference's max magnitude). The generated kernel is
`specs/attention/mha_1pass[_causal].einsum` with `mappings/mha_1pass/h200.yaml`, its tiles
(P0, M0) among (128, 64), (128, 128), (64, 64) and its launch options (warps, pipeline stages)
picked per row from a few candidates, each compiled once (more of them at N <= 1024, where a
program runs few key tiles); the row names the pick. FlexAttention is compiled with static
shapes (`dynamic=False`: one kernel per shape, as the issue's anchors were measured; the default
recompiled every shape after the first with a dynamic sequence length, 30-40% slower). Then the multi-kernel rows (2- and 3-pass),
the zoo's variants (`gpu_variants.py`) and the launch overhead: the median time of the generated
`run` of a one-kernel module on a problem too small to matter (RMSNorm, 16 x 64), whose source is
the h200 model's `launch_overhead_s`. `--repredict` recomputes every prediction of a results file
with the current model (the measured times untouched), e.g. after the model's target changed.
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
SHORT_TILES = [(64, 32), (128, 32)]  # also tried at N <= 1024, with SHORT_CONFIGS too
SHORT_CONFIGS = [(4, 4), (2, 3)]


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
    ap.add_argument("--part", choices=["all", "main", "variants"], default="all",
                    help="main: the issue's rows and the multi-kernel rows; variants: the zoo and the launch overhead")
    ap.add_argument("--repredict", help="a gpu_attention.json: recompute its predictions with the current model")
    args = ap.parse_args()
    if args.repredict:
        return repredict(Path(args.repredict), Path(args.out) if args.out else None)

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
            # static shapes: by default the second shape recompiles with dynamic N, whose kernel ran
            # 258-305 TFLOP/s where the static one runs 375-449 (benchmarks/gpu_flex_harness.py)
            flex = torch.compile(flex_attention, dynamic=False)
        except Exception as exc:  # pragma: no cover - depends on the torch build
            print(f"FlexAttention unavailable: {exc}", file=sys.stderr)
    kernels = {(c, t): generated(c, *t) for c in (False, True) for t in TILES + SHORT_TILES}
    device = torch.cuda.get_device_name()
    results = []
    if args.part == "variants":
        rows = []

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
            short = n <= 1024
            for tile in TILES + (SHORT_TILES if short else []):
                spec, mapping, module = kernels[(causal, tile)]
                for warps, stages in CONFIGS + (SHORT_CONFIGS if short else []):
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
    multipass = [] if args.quick or args.part == "variants" else _multipass(bench)
    variant_rows = []
    launch, kernel = _launch_overhead(bench)
    if args.part != "main":
        from gpu_variants import run_variants

        variant_rows = run_variants(bench, flex, predict)
    meta = {"device": device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "triton": __import__("triton").__version__, "launch_overhead_s": launch, "kernel_overhead_s": kernel}
    data = {"meta": meta, "rows": results, "multipass": multipass, "variants": variant_rows}
    table = render(data)
    print(table)
    if args.json:
        print(json.dumps(data, indent=2))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"gpu_attention{'' if args.part == 'all' else '_' + args.part}.json").write_text(
            json.dumps(data, indent=2))
        (out / f"gpu_attention{'' if args.part == 'all' else '_' + args.part}.md").write_text(table)
    return 0


def render(data) -> str:
    from gpu_variants import variants_table

    text = _table(data["rows"], data["meta"]) if data["rows"] else ""
    text += _multipass_table(data["multipass"]) + variants_table(data.get("variants", []))
    launch = data["meta"].get("launch_overhead_s")
    if launch:
        text += (f"\nLaunch overhead: {launch * 1e6:.1f} us per generated run() of a one-kernel module (RMSNorm, "
                 "D = 64, N = 16; wall clock per call over 1000 calls, median of 5)")
        if data["meta"].get("kernel_overhead_s"):
            text += f"; the same run timed as the rows are (do_bench): {data['meta']['kernel_overhead_s'] * 1e6:.1f} us"
        text += "\n"
    return text


def _launch_overhead(bench) -> tuple[float, float]:
    """The generated run() of one tiny kernel: its host time per call (shapes, allocation, the
    Triton launcher; wall clock over many calls) and its time as the rows are timed (do_bench
    events: the device's fixed cost of a kernel plus what of the host work is not hidden)."""
    import torch

    import cascade
    from cascade.codegen.loader import import_source

    spec = cascade.load(ROOT / "specs" / "norm" / "rmsnorm.einsum", {"D": 64, "N": 16})
    module = import_source(spec.compile(ROOT / "mappings" / "rmsnorm" / "h200.yaml", backend="triton"),
                           stem="launch_overhead")
    x = torch.randn(64, 16, device="cuda", dtype=torch.bfloat16)
    g = torch.randn(64, device="cuda", dtype=torch.bfloat16)
    events = bench(lambda: module.run(X=x, G=g))
    for _ in range(100):
        module.run(X=x, G=g)
    torch.cuda.synchronize()
    walls = []
    for _ in range(5):  # host time per call, the GPU never the bottleneck: wall clock over 1000 calls
        start = time.perf_counter()
        for _ in range(1000):
            module.run(X=x, G=g)
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - start) / 1000)
    sec = sorted(walls)[len(walls) // 2]
    print(f"launch overhead: {sec * 1e6:.1f} us per run() of one kernel (wall clock, median of 5 x 1000 calls); "
          f"do_bench events: {events * 1e6:.1f} us", flush=True)
    return sec, events


def repredict(path: Path, out: Path | None) -> int:
    """Every prediction of a results file recomputed with the current model (times untouched)."""
    import cascade
    from cascade.mapping.mapping_file import load_mapping

    data = json.loads(path.read_text())
    for row in data["rows"]:
        tile = dict(part.split("=") for part in row["impl"]["cascade"]["config"].split())
        name = "mha_1pass_causal" if row["causal"] else "mha_1pass"
        spec = cascade.load(ROOT / "specs" / "attention" / f"{name}.einsum")
        base = load_mapping(ROOT / "mappings" / "mha_1pass" / "h200.yaml")
        mapping = dataclasses.replace(base, partitioning={**base.partitioning, "P": (int(tile["P0"]),),
                                                          "M": (int(tile["M0"]),)})
        shapes = {"B": row["B"], "H": row["H"], "E": row["D"], "F": row["D"], "M": row["N"], "P": row["N"]}
        row["impl"]["cascade"]["predicted_seconds"] = predict(spec, mapping, shapes)
    for row in data["multipass"]:
        spec = cascade.load(ROOT / "specs" / "attention" / f"{row['cascade']}.einsum",
                            {"M": row["N"], "P": row["N"], "E": row["D"], "F": row["D"]})
        row["predicted_seconds"] = predict(spec, ROOT / row.get("mapping", f"mappings/{row['cascade']}/h200.yaml"), {})
    for row in data.get("variants", []):
        if "seconds" in row:
            row["predicted_seconds"] = predict(cascade.load(ROOT / row["spec"], row["shapes"]), ROOT / row["mapping"], {})
    table = render(data)
    print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / path.name).write_text(json.dumps(data, indent=2))
        (out / path.with_suffix(".md").name).write_text(table)
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
    for name, mapping_name in (("attention_2pass", "h200"), ("attention_3pass", "h200"),
                               ("attention_3pass", "h200_long")):
        spec = cascade.load(ROOT / "specs" / "attention" / f"{name}.einsum", {"M": n, "P": n, "E": d, "F": d})
        mapping = ROOT / "mappings" / name / f"{mapping_name}.yaml"
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
        out.append({"cascade": name, "mapping": str(mapping.relative_to(ROOT)), "N": n, "D": d,
                    "kernels": len(module.KERNELS), "seconds": best,
                    "predicted_seconds": pred, "max_error": err})
        print(f"{name} N={n}: {best * 1e3:.3f} ms, predicted {pred * 1e3:.3f} ms, err {err:.1e}", flush=True)
    return out


def _multipass_table(rows) -> str:
    if not rows:
        return ""
    lines = ["", "Several kernels, intermediates in device memory (one head, bf16 inputs, mappings */h200.yaml):", "",
             "| cascade | mapping | N, D | kernels | measured ms | pred ms | pred/meas | err |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cascade']} | {Path(r.get('mapping', 'h200')).stem} | {r['N']}, {r['D']} | "
                     f"{r['kernels']} | {r['seconds'] * 1e3:.3f} | "
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
