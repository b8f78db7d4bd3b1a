"""A/B of kernel changes for 1-pass attention on the GPU, before they went into the generator.

One hand-written Triton kernel shaped as the generated `mha_1pass[_causal]` kernel (full key tiles,
then the diagonal tiles with the mask), with a flag per candidate change:

- I32: tile indices in int32 (the generator used int64: 64-bit address arithmetic in every block);
- MASK_SCORES: the diagonal tile masks the scores once (-inf) instead of each use (max, sum, P V);
- EXP2: exp(s - m) as exp2(s log2e - m log2e), one fused multiply-add per score;
- DIAG_FIRST / DIAG_NOPIPE / ONE_LOOP: the diagonal tiles first, unpipelined, or one masked loop.

    python benchmarks/gpu_causal_ab.py OUT.json      # on a CUDA machine, ~2 minutes

Measured 2026-11-30 on the H200 (`results/gpu_causal_ab_h200_2026-11-30.json`): EXP2 and I32 carry
the gain (4K causal 334 -> 408 TF/s at the best launch config, dense 382 -> 441); the generator
took those two. This file is a measurement aid, not the generator.
"""
import sys, itertools, json
import torch, triton, triton.language as tl
from triton.testing import do_bench

LOG2E = 1.4426950408889634

@triton.jit
def tile(i_M1, x_Q, base_K, base_V, o_E, o_F, o_P0, r_RM, r_RD, r_RNV, s_K_2, s_K_3, s_V_2, s_V_3,
         BLOCK_M0: tl.constexpr, MASKED: tl.constexpr, MASK_SCORES: tl.constexpr, EXP2: tl.constexpr):
    o_M0 = i_M1 * BLOCK_M0 + tl.arange(0, BLOCK_M0)
    x_K = tl.load(base_K + o_E[:, None] * s_K_2 + o_M0[None, :] * s_K_3)
    qk = tl.dot(x_Q, x_K, out_dtype=tl.float32)
    if MASKED:
        present = o_M0[None, :] <= o_P0[:, None]
        if MASK_SCORES:
            qk = tl.where(present, qk, float('-inf'))
            lm = tl.max(qk, axis=1)
        else:
            lm = tl.max(tl.where(present, qk, float('-inf')), axis=1)
    else:
        lm = tl.max(qk, axis=1)
    rm_next = tl.maximum(r_RM, lm)
    if MASKED and MASK_SCORES:
        safe = tl.where(rm_next == float('-inf'), 0.0, rm_next)
    else:
        safe = rm_next
    if EXP2:
        sln = tl.math.exp2(qk * 1.4426950408889634 - (safe * 1.4426950408889634)[:, None])
        prm = tl.math.exp2((r_RM - safe) * 1.4426950408889634)
    else:
        sln = tl.exp(qk - safe[:, None])
        prm = tl.exp(r_RM - safe)
    if MASKED and not MASK_SCORES:
        sln_d = tl.where(present, sln, 0.0)
    else:
        sln_d = sln
    r_RD = prm * r_RD + tl.sum(sln_d, axis=1)
    x_V = tl.load(base_V + o_F[None, :] * s_V_2 + o_M0[:, None] * s_V_3)
    r_RNV = prm[:, None] * r_RNV + tl.dot(sln_d.to(x_V.dtype), x_V, out_dtype=tl.float32)
    r_RM = rm_next
    return r_RM, r_RD, r_RNV


@triton.jit
def attn(p_Q, p_K, p_V, p_AV, n_M1, s_Q_0, s_Q_1, s_Q_2, s_Q_3, s_K_0, s_K_1, s_K_2, s_K_3,
         s_V_0, s_V_1, s_V_2, s_V_3, s_AV_0, s_AV_1, s_AV_2, s_AV_3, g_P, g_H, g_B,
         BLOCK_P0: tl.constexpr, BLOCK_M0: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr,
         CAUSAL: tl.constexpr, I32: tl.constexpr, MASK_SCORES: tl.constexpr, EXP2: tl.constexpr,
         DIAG_FIRST: tl.constexpr, DIAG_NOPIPE: tl.constexpr = False, ONE_LOOP: tl.constexpr = False):
    pid = tl.program_id(0)
    if I32:
        t_P = g_P - 1 - pid % g_P
        pid = pid // g_P
        t_H = pid % g_H
        t_B = pid // g_H
    else:
        t_P = (g_P - 1 - pid % g_P).to(tl.int64)
        pid = pid // g_P
        t_H = (pid % g_H).to(tl.int64)
        t_B = (pid // g_H).to(tl.int64)
    b_P = t_P * BLOCK_P0
    r_RM = float('-inf') + tl.zeros([BLOCK_P0], tl.float32)
    r_RD = tl.zeros([BLOCK_P0], tl.float32)
    r_RNV = tl.zeros([BLOCK_P0, BLOCK_F], tl.float32)
    o_E = tl.arange(0, BLOCK_E)
    o_F = tl.arange(0, BLOCK_F)
    o_P0 = b_P + tl.arange(0, BLOCK_P0)
    base_Q = p_Q + t_B.to(tl.int64) * s_Q_0 + t_H.to(tl.int64) * s_Q_1
    base_K = p_K + t_B.to(tl.int64) * s_K_0 + t_H.to(tl.int64) * s_K_1
    base_V = p_V + t_B.to(tl.int64) * s_V_0 + t_H.to(tl.int64) * s_V_1
    x_Q = tl.load(base_Q + o_E[None, :] * s_Q_2 + o_P0[:, None] * s_Q_3)
    if CAUSAL:
        n_full = (b_P + 1) // BLOCK_M0  # tiles whose every key <= every query of the block
        n_live = tl.minimum(n_M1, (b_P + BLOCK_P0 - 1) // BLOCK_M0 + 1)
    else:
        n_full = n_M1
        n_live = n_M1
    if DIAG_FIRST:
        lo0, hi0, lo1, hi1 = n_full, n_live, 0, n_full
    else:
        lo0, hi0, lo1, hi1 = 0, n_full, n_full, n_live
    if ONE_LOOP:
        for i_M1 in range(0, n_live):
            r_RM, r_RD, r_RNV = tile(i_M1, x_Q, base_K, base_V, o_E, o_F, o_P0, r_RM, r_RD, r_RNV, s_K_2, s_K_3, s_V_2, s_V_3, BLOCK_M0, CAUSAL, MASK_SCORES, EXP2)
    elif DIAG_NOPIPE:
        for i_M1 in range(0, n_full):
            r_RM, r_RD, r_RNV = tile(i_M1, x_Q, base_K, base_V, o_E, o_F, o_P0, r_RM, r_RD, r_RNV, s_K_2, s_K_3, s_V_2, s_V_3, BLOCK_M0, False, MASK_SCORES, EXP2)
        for i_M1 in tl.range(n_full, n_live, num_stages=1):
            r_RM, r_RD, r_RNV = tile(i_M1, x_Q, base_K, base_V, o_E, o_F, o_P0, r_RM, r_RD, r_RNV, s_K_2, s_K_3, s_V_2, s_V_3, BLOCK_M0, True, MASK_SCORES, EXP2)
    elif DIAG_FIRST:
        for i_M1 in range(n_full, n_live):
            r_RM, r_RD, r_RNV = tile(i_M1, x_Q, base_K, base_V, o_E, o_F, o_P0, r_RM, r_RD, r_RNV, s_K_2, s_K_3, s_V_2, s_V_3, BLOCK_M0, True, MASK_SCORES, EXP2)
        for i_M1 in range(0, n_full):
            r_RM, r_RD, r_RNV = tile(i_M1, x_Q, base_K, base_V, o_E, o_F, o_P0, r_RM, r_RD, r_RNV, s_K_2, s_K_3, s_V_2, s_V_3, BLOCK_M0, False, MASK_SCORES, EXP2)
    else:
        for i_M1 in range(0, n_full):
            r_RM, r_RD, r_RNV = tile(i_M1, x_Q, base_K, base_V, o_E, o_F, o_P0, r_RM, r_RD, r_RNV, s_K_2, s_K_3, s_V_2, s_V_3, BLOCK_M0, False, MASK_SCORES, EXP2)
        for i_M1 in range(n_full, n_live):
            r_RM, r_RD, r_RNV = tile(i_M1, x_Q, base_K, base_V, o_E, o_F, o_P0, r_RM, r_RD, r_RNV, s_K_2, s_K_3, s_V_2, s_V_3, BLOCK_M0, True, MASK_SCORES, EXP2)
    av = r_RNV / r_RD[:, None]
    tl.store(p_AV + t_B.to(tl.int64) * s_AV_0 + t_H.to(tl.int64) * s_AV_1 + o_F[None, :] * s_AV_2 + o_P0[:, None] * s_AV_3,
             av.to(p_AV.dtype.element_ty))


def run(q, k, v, out, causal, p0, m0, warps, stages, **flags):
    B, H, N, D = q.shape
    Q, K, V, AV = q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3), out
    g = N // p0
    attn[(B * H * g,)](Q, K, V, AV, N // m0, *Q.stride(), *K.stride(), *V.stride(), *AV.stride(), g, H, B,
                       BLOCK_P0=p0, BLOCK_M0=m0, BLOCK_E=D, BLOCK_F=D, CAUSAL=causal, num_warps=warps,
                       num_stages=stages, **flags)


def main():
    results = []
    combos = {
        "base": dict(I32=False, MASK_SCORES=False, EXP2=False, DIAG_FIRST=False),
        "i32": dict(I32=True, MASK_SCORES=False, EXP2=False, DIAG_FIRST=False),
        "mask": dict(I32=False, MASK_SCORES=True, EXP2=False, DIAG_FIRST=False),
        "exp2": dict(I32=False, MASK_SCORES=False, EXP2=True, DIAG_FIRST=False),
        "all": dict(I32=True, MASK_SCORES=True, EXP2=True, DIAG_FIRST=False),
        "all_diagfirst": dict(I32=True, MASK_SCORES=True, EXP2=True, DIAG_FIRST=True),
        "all_nopipe": dict(I32=True, MASK_SCORES=True, EXP2=True, DIAG_FIRST=False, DIAG_NOPIPE=True),
        "all_oneloop": dict(I32=True, MASK_SCORES=True, EXP2=True, DIAG_FIRST=False, ONE_LOOP=True),
    }
    configs = [(128, 64, 4, 3), (128, 128, 8, 3), (128, 64, 8, 3)]
    for (B, H, N, D, causal) in [(64, 12, 4096, 64, True), (64, 12, 4096, 64, False), (64, 12, 1024, 64, True), (8, 12, 16384, 64, True)]:
        g = torch.Generator(device="cuda").manual_seed(1)
        q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3))
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=1.0)
        out = torch.empty(B, H, D, N, device="cuda", dtype=torch.bfloat16)
        flops = 4 * B * H * N * N * D / (2 if causal else 1)
        for name, flags in combos.items():
            for cfg in configs:
                try:
                    fn = lambda: run(q, k, v, out, causal, *cfg, **flags)
                    fn(); torch.cuda.synchronize()
                    err = float((out.transpose(2, 3).float() - ref.float()).abs().max())
                    ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
                except Exception as exc:
                    print(f"{N} {causal} {name} {cfg}: {type(exc).__name__} {str(exc)[:100]}", flush=True)
                    continue
                tf = flops / ms / 1e9
                results.append(dict(N=N, causal=causal, variant=name, cfg=cfg, ms=ms, tflops=tf, err=err))
                print(f"N={N} causal={causal} {name:14s} {cfg}: {ms:.3f} ms {tf:.0f} TF/s err {err:.1e}", flush=True)
        del q, k, v, out
        torch.cuda.empty_cache()
    json.dump(results, open(sys.argv[1], "w"), indent=1)


if __name__ == "__main__":
    main()
