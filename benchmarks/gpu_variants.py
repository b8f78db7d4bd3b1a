"""The zoo's variants as generated Triton kernels on a GPU, beside FlexAttention or torch where they
can express the same function (imported by `gpu_attention.py`, which runs and prints them).

Each row: a bundled cascade with its `mappings/<cascade>/h200.yaml`, bf16 inputs at the timed
shape, the generated module's median time (`triton.testing.do_bench`; the best of a few launch
options), the h200 model's prediction, the peer's time where one computes the same function
(compiled FlexAttention with a score or mask modifier, or torch's layer_norm / rms_norm), the max
|cascade - peer| relative to the peer's max magnitude, and the max error against the reference
evaluator (float64 NumPy) on the same module at a smaller *check* shape (the reference holds every
intermediate in memory, too much at the timed shape); a check shape keeps what the module fixes at
compile time (GQA's R, the window W).

Layouts: each input is a view of a contiguous torch tensor whose last axis is the head dimension D
(E, F) for attention, or D for the norms, which is how the peers take it; the generated module
reads the strides it is given.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Variant:
    name: str  # the cascade (specs/<group>/<name>.einsum) and mapping (mappings/<name>/h200.yaml)
    group: str
    shapes: dict[str, int]  # timed
    check: dict[str, int]  # reference check
    flops: float  # counted work: 4 * heads * queries * keys * D (live points only), 0: memory-bound
    peer: str  # what the peer is, or why there is none
    note: str = ""
    bytes_moved: float = 0.0  # for memory-bound rows: bf16 bytes read and written once
    extra: dict = field(default_factory=dict)


def variants() -> list[Variant]:
    n, d = 4096, 64
    causal = n * (n + 1) / 2
    window = 1024
    windowed = sum(min(p + 1, window) for p in range(16384))
    return [
        Variant("gqa_1pass", "attention", {"H": 32, "R": 4, "M": n, "P": n, "E": d, "F": d},
                {"H": 8, "R": 4, "M": 300, "P": 200, "E": d, "F": d}, 4 * 32 * n * n * d,
                "flex (enable_gqa)", "32 query heads in 8 groups of 4"),
        Variant("mqa_1pass", "attention", {"H": 32, "M": n, "P": n, "E": d, "F": d},
                {"H": 3, "M": 300, "P": 200, "E": d, "F": d}, 4 * 32 * n * n * d, "flex (enable_gqa, 1 KV head)"),
        Variant("alibi_1pass", "attention", {"H": 32, "M": n, "P": n, "E": d, "F": d},
                {"H": 3, "M": 300, "P": 200, "E": d, "F": d}, 4 * 32 * causal * d, "flex (score_mod + causal mask)",
                "causal; slopes 2^(-8(h+1)/H)"),
        Variant("softcap_1pass", "attention", {"M": 16384, "P": 16384, "E": d, "F": d},
                {"M": 300, "P": 200, "E": d, "F": d}, 4 * 16384 * 16384 * d, "flex (score_mod 50 tanh(s/50))",
                "one head"),
        Variant("sliding_window_1pass", "attention", {"M": 16384, "P": 16384, "W": window, "E": d, "F": d},
                {"M": 1500, "P": 1400, "W": window, "E": d, "F": d}, 4 * windowed * d, "flex (mask_mod window)",
                f"one head, window {window}"),
        Variant("sigmoid_attention", "attention", {"M": 16384, "P": 16384, "E": d, "F": d},
                {"M": 300, "P": 200, "E": d, "F": d}, 4 * 16384 * 16384 * d,
                "none: FlexAttention always normalises by a softmax", "one head"),
        Variant("decode_1pass", "attention", {"H": 64, "M": 32768, "P": 1, "E": d, "F": d},
                {"H": 3, "M": 1000, "E": d, "F": d}, 0, "flex (one query)", "64 heads, 32K cache; 64 programs",
                bytes_moved=2 * 64 * 32768 * d * 2),
        Variant("flashdecoding", "attention", {"H": 64, "M": 32768, "P": 1, "E": d, "F": d},
                {"H": 3, "M": 1000, "E": d, "F": d}, 0, "flex (one query)", "the same, split-K: 2 kernels",
                bytes_moved=2 * 64 * 32768 * d * 2),
        Variant("layernorm_2pass", "norm", {"D": 1024, "N": 65536}, {"D": 300, "N": 37}, 0,
                "torch layer_norm", "sums of x and x^2 in one pass", bytes_moved=2 * 2 * 1024 * 65536),
        Variant("layernorm_3pass", "norm", {"D": 1024, "N": 65536}, {"D": 300, "N": 37}, 0,
                "torch layer_norm", "textbook form", bytes_moved=2 * 2 * 1024 * 65536),
        Variant("rmsnorm", "norm", {"D": 1024, "N": 65536}, {"D": 300, "N": 37}, 0,
                "torch rms_norm", bytes_moved=2 * 2 * 1024 * 65536),
    ]


CONFIGS = [(4, 2), (4, 3), (8, 2), (8, 3)]
DEVICE, DTYPE = "cuda", None  # DTYPE None: bfloat16 (a CPU check of the layouts sets both)


def _inputs(v: Variant, torch, gen):
    """bf16 inputs for the timed shape: {name: view in the cascade's rank order}, and the peer's tensors."""
    s = v.shapes

    def randn(*shape):
        return torch.randn(*shape, device=DEVICE, dtype=DTYPE or torch.bfloat16, generator=gen)

    name = v.name
    if name == "gqa_1pass":
        h, g, m, p, d = s["H"], s["H"] // s["R"], s["M"], s["P"], s["E"]
        q, k, vv = randn(h, p, d), randn(g, m, d), randn(g, m, d)
        return {"Q": q.permute(2, 0, 1), "K": k.permute(2, 0, 1), "V": vv.permute(2, 0, 1)}, (q, k, vv)
    if name == "mqa_1pass":
        h, m, p, d = s["H"], s["M"], s["P"], s["E"]
        q, k, vv = randn(h, p, d), randn(1, m, d), randn(1, m, d)
        return {"Q": q.permute(2, 0, 1), "K": k[0].T, "V": vv[0].T}, (q, k, vv)
    if name in ("alibi_1pass", "decode_1pass", "flashdecoding"):
        h, m, p, d = s["H"], s["M"], s.get("P", 1), s["E"]
        q, k, vv = randn(h, p, d), randn(h, m, d), randn(h, m, d)
        return {"Q": q.transpose(1, 2), "K": k.transpose(1, 2), "V": vv.transpose(1, 2)}, (q, k, vv)
    if v.group == "attention":  # one head: Q[E, P], K[E, M], V[F, M]
        m, p, d = s["M"], s["P"], s["E"]
        q, k, vv = randn(1, p, d), randn(1, m, d), randn(1, m, d)
        return {"Q": q[0].T, "K": k[0].T, "V": vv[0].T}, (q, k, vv)
    dd, n = s["D"], s["N"]
    x, g, b = randn(n, dd), randn(dd), randn(dd)
    ins = {"X": x.T, "G": g}
    if name.startswith("layernorm"):
        ins["B"] = b
    return ins, (x, g, b)


def _peer(v: Variant, peer_tensors, flex, torch):
    """A function computing the same output with the peer, laid out as the cascade's, or None."""
    import torch.nn.functional as F

    name = v.name
    if v.group == "norm":
        x, g, b = peer_tensors
        if name == "rmsnorm":
            return lambda: F.rms_norm(x, (x.shape[1],), g, eps=1e-6).T
        return lambda: F.layer_norm(x, (x.shape[1],), g, b, eps=1e-5).T
    if flex is None or name == "sigmoid_attention":
        return None
    from torch.nn.attention.flex_attention import create_block_mask

    q, k, vv = (t[None] for t in peer_tensors)  # [1, heads, len, D]
    n_q, n_k = q.shape[2], k.shape[2]
    kwargs = {"scale": 1.0}
    if k.shape[1] != q.shape[1]:
        kwargs["enable_gqa"] = True
    if name == "softcap_1pass":
        kwargs["score_mod"] = lambda score, b_, h_, qi, ki: 50.0 * torch.tanh(score / 50.0)
    if name == "alibi_1pass":
        heads = q.shape[1]
        slopes = torch.exp2(-8.0 * (torch.arange(heads, device="cuda", dtype=torch.float32) + 1) / heads)
        kwargs["score_mod"] = lambda score, b_, h_, qi, ki: score - slopes[h_] * (qi - ki)
        kwargs["block_mask"] = create_block_mask(lambda b_, h_, qi, ki: qi >= ki, None, None, n_q, n_k, device="cuda")
    if name == "sliding_window_1pass":
        w = v.shapes["W"]
        kwargs["block_mask"] = create_block_mask(lambda b_, h_, qi, ki: (ki <= qi) & (qi < ki + w), None, None,
                                                 n_q, n_k, device="cuda")
    if name in ("gqa_1pass", "mqa_1pass", "alibi_1pass", "decode_1pass", "flashdecoding"):
        return lambda: flex(q, k, vv, **kwargs)[0].permute(2, 0, 1)  # [F, H, P]
    return lambda: flex(q, k, vv, **kwargs)[0, 0].T  # [F, P]


def _layout(v: Variant, out):
    """The generated module's output in the peer's layout ([F, H, P] for multi-head, else as is)."""
    if v.name in ("alibi_1pass", "decode_1pass", "flashdecoding"):
        return out.permute(1, 0, 2)  # AV[H, F, P] -> [F, H, P]
    return out


def reference_error(v: Variant, module, torch) -> float:
    import numpy as np

    import cascade

    spec = cascade.load(ROOT / "specs" / v.group / f"{v.name}.einsum", v.check)
    inputs = spec.random_inputs(7)
    tensors = {k: torch.tensor(x).to(torch.bfloat16).cuda() for k, x in inputs.items()}
    want = spec.run({k: t.double().cpu().numpy() for k, t in tensors.items()})
    got = module.run(**tensors)
    return max(float(np.abs(got[k].double().cpu().numpy() - w).max() / np.abs(w).max()) for k, w in want.items())


def run_variants(bench, flex, predict) -> list[dict]:
    import torch

    import cascade
    from cascade.codegen.loader import import_source

    rows = []
    for v in variants():
        spec_path = ROOT / "specs" / v.group / f"{v.name}.einsum"
        mapping = ROOT / "mappings" / v.name / "h200.yaml"
        row = {"cascade": v.name, "spec": str(spec_path.relative_to(ROOT)), "mapping": str(mapping.relative_to(ROOT)),
               "shapes": v.shapes, "peer": v.peer, "note": v.note, "flops": v.flops, "bytes": v.bytes_moved}
        try:
            spec = cascade.load(spec_path, v.shapes)
            module = import_source(spec.compile(mapping, backend="triton"), stem=f"{v.name}_variant")
            gen = torch.Generator(device="cuda").manual_seed(17)
            inputs, peer_tensors = _inputs(v, torch, gen)
            best = None
            for warps, stages in CONFIGS:
                module.configure(num_warps=warps, num_stages=stages)
                try:
                    sec = bench(lambda: module.run(**inputs))
                except Exception as exc:
                    print(f"  {v.name} w{warps} s{stages}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                if best is None or sec < best[0]:
                    best = (sec, warps, stages)
            if best is None:
                rows.append({**row, "failed": "no launch option ran"})
                continue
            sec, warps, stages = best
            module.configure(num_warps=warps, num_stages=stages)
            out = _layout(v, next(iter(module.run(**inputs).values())))
            row.update({"seconds": sec, "config": f"warps={warps} stages={stages}", "kernels": len(module.KERNELS),
                        "predicted_seconds": predict(spec, mapping, {}),
                        "max_error": reference_error(v, module, torch)})
            fn = _peer(v, peer_tensors, flex, torch)
            if fn is not None:
                try:
                    ref = fn()
                    row["peer_seconds"] = bench(fn)
                    row["vs_peer"] = float((out.double() - ref.double()).abs().max() / ref.double().abs().max())
                except Exception as exc:
                    row["peer_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        except Exception as exc:  # one variant failing must not lose the others' rows
            row["failed"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        rows.append(row)
        print(variant_line(row), flush=True)
        torch.cuda.empty_cache()
    return rows


def variant_line(r) -> str:
    if "seconds" not in r:
        return f"{r['cascade']}: FAILED {r.get('failed')}"
    peer = f"peer {r['peer_seconds'] * 1e3:.3f} ms" if "peer_seconds" in r else f"peer: {r.get('peer_error', r['peer'])}"
    return (f"{r['cascade']} {r['shapes']}: {r['seconds'] * 1e3:.3f} ms ({r['config']}), {peer}, "
            f"err {r['max_error']:.1e}")


def variants_table(rows) -> str:
    if not rows:
        return ""
    lines = ["", "Variants (bf16 inputs, fp32 accumulation, mappings/<cascade>/h200.yaml; rate: TFLOP/s of the live "
             "points for attention, GB/s of bf16 inputs read and outputs written once for memory-bound rows; err: "
             "vs the float64 reference at a check shape; vs peer: max |cascade - peer| / max |peer|):", "",
             "| cascade | timed shape | kernels | measured ms | rate | pred ms | pred/meas | peer | peer ms | "
             "cascade/peer speed | vs peer | err | config |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = ", ".join(f"{k}={x}" for k, x in r["shapes"].items())
        if "seconds" not in r:
            lines.append(f"| {r['cascade']} | {shape} | - | failed: {r.get('failed')} | | | | | | | | | |")
            continue
        sec = r["seconds"]
        rate = f"{r['flops'] / sec / 1e12:.0f} TF/s" if r["flops"] else f"{r['bytes'] / sec / 1e9:.0f} GB/s"
        pred = r.get("predicted_seconds")
        peer_ms = f"{r['peer_seconds'] * 1e3:.3f}" if "peer_seconds" in r else "-"
        speed = f"{r['peer_seconds'] / sec:.2f}" if "peer_seconds" in r else "-"
        vs = f"{r['vs_peer']:.1e}" if "vs_peer" in r else "-"
        peer = r["peer"] + (f" ({r['peer_error']})" if "peer_error" in r else "")
        lines.append(f"| {r['cascade']} | {shape} | {r['kernels']} | {sec * 1e3:.3f} | {rate} | "
                     f"{'-' if pred is None else f'{pred * 1e3:.3f}'} | "
                     f"{'-' if pred is None else f'{pred / sec:.2f}'} | {peer} | {peer_ms} | {speed} | {vs} | "
                     f"{r['max_error']:.1e} | {r['config']} |")
    return "\n".join(lines) + "\n"
