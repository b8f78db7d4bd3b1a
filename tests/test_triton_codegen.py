"""The Triton generator without a GPU: golden text of the generated modules for the bundled
pairs, exit-2 errors for what the backend cannot run, the tile-skipping rule, and the h200 GPU
model's counts against closed forms. Needs neither torch nor triton (the source is only written)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cascade
from cascade.analysis.absent_step import skip_is_identity

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [
    ("attention/attention_1pass.einsum", "attention_1pass/h200.yaml"),
    ("attention/mha_1pass.einsum", "mha_1pass/h200.yaml"),
    ("attention/mha_1pass_causal.einsum", "mha_1pass/h200.yaml"),
    ("attention/attention_2pass.einsum", "attention_2pass/h200.yaml"),
    ("attention/attention_3pass.einsum", "attention_3pass/h200.yaml"),
    ("softmax_3pass.einsum", "softmax_3pass/h200.yaml"),
    ("attention/attention_3pass.einsum", "attention_3pass/h200_long.yaml"),
    # the zoo's variants
    ("attention/gqa_1pass.einsum", "gqa_1pass/h200.yaml"),
    ("attention/mqa_1pass.einsum", "mqa_1pass/h200.yaml"),
    ("attention/decode_1pass.einsum", "decode_1pass/h200.yaml"),
    ("attention/flashdecoding.einsum", "flashdecoding/h200.yaml"),
    ("attention/softcap_1pass.einsum", "softcap_1pass/h200.yaml"),
    ("attention/alibi_1pass.einsum", "alibi_1pass/h200.yaml"),
    ("attention/sigmoid_attention.einsum", "sigmoid_attention/h200.yaml"),
    ("attention/sliding_window_1pass.einsum", "sliding_window_1pass/h200.yaml"),
    ("norm/layernorm_2pass.einsum", "layernorm_2pass/h200.yaml"),
    ("norm/layernorm_3pass.einsum", "layernorm_3pass/h200.yaml"),
    ("norm/rmsnorm.einsum", "rmsnorm/h200.yaml"),
]


def _source(spec_rel: str, mapping_rel: str, shapes=None) -> str:
    """The module for a bundled pair, named by paths relative to the repository (as in the golden files)."""
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        spec = cascade.load(f"specs/{spec_rel}", shapes)
        return spec.compile(f"mappings/{mapping_rel}", backend="triton")
    finally:
        os.chdir(old)


@pytest.mark.parametrize("spec_rel,mapping_rel", PAIRS)
def test_generated_module_golden(spec_rel, mapping_rel, golden, monkeypatch, request):
    """Same module as the golden file: as text where this Python's `ast.unparse` spells it the same,
    else as the same syntax tree (unparse's spelling differs between Python versions)."""
    monkeypatch.chdir(ROOT)  # labels in the module's docstring are the paths as given
    text = _source(spec_rel, mapping_rel)
    relative = f"triton/{Path(spec_rel).stem}__{Path(mapping_rel).stem}.py.txt"
    path = ROOT / "tests" / "golden" / relative
    if not request.config.getoption("--update-golden") and path.exists() and path.read_text() != text:
        assert ast.dump(ast.parse(text)) == ast.dump(ast.parse(path.read_text())), (
            f"generated module differs from tests/golden/{relative}; if intended, rerun with --update-golden")
        return
    golden(relative, text)


def test_one_kernel_per_fusion_group():
    assert _source(*PAIRS[0]).count("@triton.jit") == 1
    assert _source(*PAIRS[4]).count("@triton.jit") == 6  # 3-pass: every Einsum its own kernel


def test_causal_loop_runs_live_tiles_and_unmasks_full_ones():
    text = _source(*PAIRS[2])
    assert text.count("for i_M1 in range(") == 2  # full (no mask), masked: no filter bounds the tiles from below
    full = text.split("range(seg_a, seg_b)")[1].split("for i_M1")[0]
    assert "present" not in full and "tl.dot" in full


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cascade", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})


def test_blocks_of_more_than_two_ranks_are_an_exit_2_error_naming_the_einsum(tmp_path):
    mapping = tmp_path / "m.yaml"  # B and H left whole: blocks over B, H, P0, M0, E
    mapping.write_text("partitioning:\n  M: [uniform_shape(64)]\n  P: [uniform_shape(64)]\n"
                       "fusion:\n  - [QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV]\n")
    r = _cli("compile", "specs/attention/mha_1pass.einsum", "-m", str(mapping), "--backend", "triton",
             "-o", str(tmp_path / "k.py"))
    assert r.returncode == 2, r.stderr
    assert "RM: the Triton backend cannot run this" in r.stderr and "block ranks" in r.stderr
    assert "Traceback" not in r.stderr


def _kernels(text: str) -> list[str]:
    return ["@triton.jit\ndef kernel" + k.split("\n\n\n")[0] for k in text.split("@triton.jit\ndef kernel")[1:]]


def test_split_parts_go_to_the_grid_or_become_blocks():
    """GQA's fixed split H = G * R: both parts on the grid (one program per query head) and Q read
    at G * R + R's coordinate; FlashDecoding: the key splits M1 on the first kernel's grid, a block
    over all of M1 in the combine kernel."""
    gqa = _kernels(_source("attention/gqa_1pass.einsum", "gqa_1pass/h200.yaml"))[0]
    assert "b_G = t_G * 1" in gqa and "b_R = t_R * 1" in gqa
    assert f"b_G * {cascade.load(ROOT / 'specs/attention/gqa_1pass.einsum').shapes['R']} + b_R" in gqa
    first, combine = _kernels(_source("attention/flashdecoding.einsum", "flashdecoding/h200.yaml"))
    assert "b_M1 = t_M1 * 1" in first and "for " not in first
    assert "o_M1 = tl.arange(0, BLOCK_M1)" in combine and "tl.max(" in combine and "for " not in combine


def test_reduction_over_a_partitioned_rank_accumulates_across_the_loop():
    sig = _kernels(_source("attention/sigmoid_attention.einsum", "sigmoid_attention/h200.yaml"))[0]
    before, after = sig.split("    for i_M1 in range(0, g_M):\n")
    loop = after.split("\n    if ")[0]  # the loop body: up to the first statement back at the kernel's level
    assert "acc_AV = tl.full([BLOCK_P0, BLOCK_F], 0.0, tl.float32)" in before
    assert "acc_AV = acc_AV + " in loop and "tl.store" not in loop and "tl.store(p_AV" in after
    long = _kernels(_source("attention/attention_3pass.einsum", "attention_3pass/h200_long.yaml"))
    gm = next(k for k in long if "acc_GM" in k)
    assert "acc_GM = tl.maximum(acc_GM, " in gm and "float('-inf')" in gm


def test_reduction_across_two_loop_levels_is_an_exit_2_error(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("partitioning:\n  M: [uniform_shape(256), uniform_shape(64)]\n  P: [uniform_shape(16)]\n")
    r = _cli("compile", "specs/attention/attention_3pass.einsum", "-m", str(mapping), "--backend", "triton",
             "-o", str(tmp_path / "k.py"))
    assert r.returncode == 2 and "GM" in r.stderr and "one loop level only" in r.stderr
    assert "Traceback" not in r.stderr


def test_pow_with_a_computed_base_is_an_exit_2_error_naming_the_einsum(tmp_path):
    spec = tmp_path / "p.einsum"
    spec.write_text("cascade p\nshape M = 64, P = 32\ninput X[M, P]\noutput Y[M, P]\n\n"
                    "Y[m, p] = pow(X[m, p], 0.5)\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("partitioning:\n  P: [uniform_shape(16)]\n")
    r = _cli("compile", str(spec), "-m", str(mapping), "--backend", "triton", "-o", str(tmp_path / "k.py"))
    assert r.returncode == 2 and "Y: the Triton backend cannot run this" in r.stderr and "pow" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_backend_triton_without_torch_or_device_is_exit_2():
    r = _cli("run", "specs/attention/attention_1pass.einsum", "-m", "mappings/attention_1pass/h200.yaml",
             "--backend", "triton", "--check")
    try:
        import torch

        has_device = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
    except ImportError:
        has_device = False
    if has_device:
        pytest.skip("a device is present: the run is checked in test_triton_numerics.py")
    assert r.returncode == 2 and "--backend triton needs" in r.stderr


def _skip(spec, at_init=False, guarded=False):
    mc = spec.bind(ROOT / "mappings/mha_1pass/h200.yaml")
    sem = mc.semantics
    loop = [k for k, s in enumerate(sem.statements) if not s.is_init and "m1" in s.variables]
    qk = next(k for k, s in enumerate(sem.statements) if s.name == "QK")
    return skip_is_identity(sem, loop, {qk: True}, {t for t, st in mc.storage.items() if st.dram}, at_init, guarded)


def test_leading_empty_tiles_are_skipped_under_the_absent_rule():
    """Before any tile ran, RM = -inf holds nothing seen; over a tile with every key masked it stays
    -inf and exp(RM - RM) is exp(-inf - 0) = 0 (the absent subtrahend reads as 0, README's union
    rule, which the kernel's guard applies), so the step changes nothing: a sliding window's leading
    tiles are skipped, and a program with no live tile runs none (its output is absent: 0)."""
    causal = cascade.loads((ROOT / "specs/attention/mha_1pass_causal.einsum").read_text())
    assert _skip(causal) and _skip(causal, at_init=True, guarded=True)
    assert not _skip(causal, at_init=True)  # unguarded, -inf - -inf would be NaN: a change
    text = _source(*PAIRS[2])
    assert "seg_lo = 0" in text and "tl.where(" not in text.split("seg_hi =")[1].split("\n")[0]
    assert "tl.where(r_RM_next == float('-inf'), 0.0, r_RM_next)" in text  # the guard that makes it so
    assert "tl.where(r_RD[:, None] == 0.0, 0.0, r_RNV / r_RD[:, None])" in text  # absent sum: 0, not 0/0
    window = _source("attention/sliding_window_1pass.einsum", "sliding_window_1pass/h200.yaml")
    assert "seg_lo = tl.maximum(0, " in window and "n_W" in window.split("seg_lo =")[1].split("\n")[0]


def test_fast_exp_only_for_low_precision_inputs():
    """exp(QK - RM) is one multiply-add and exp2 under FAST_EXP (bf16/fp16 inputs), exact tl.exp
    for fp32; the running max's own rescaling exp(RM - RM') (one value per row) stays tl.exp."""
    text = _source(*PAIRS[1])
    sln = next(line for line in text.splitlines() if "v_SLN" in line and "=" in line)
    assert "tl.math.exp2(" in sln and "if FAST_EXP else tl.exp(" in sln
    prm = next(line for line in text.splitlines() if "v_PRM" in line and "=" in line)
    assert "exp2" not in prm
    assert "return dtype != torch.float32" in text and "tl.int64 if max(t.numel()" in text


def test_skipping_an_empty_tile_is_proved_a_no_op_for_attention_only():
    causal = (ROOT / "specs/attention/mha_1pass_causal.einsum").read_text()
    assert _skip(cascade.loads(causal))
    # a denominator that counts every tile: skipping would change it, so it is refused
    counting = causal.replace("RD[b, h, m1+1, p]       = SPD[b, h, m1, p] + SLD[b, h, m1, p]",
                              "RD[b, h, m1+1, p]       = SPD[b, h, m1, p] + SLD[b, h, m1, p] + 1")
    assert counting != causal
    assert not _skip(cascade.loads(counting))
    spec = cascade.loads(counting)
    text = spec.compile(ROOT / "mappings/mha_1pass/h200.yaml", backend="triton")
    assert "seg_lo = 0" in text and "seg_hi = n_M1" in text  # every tile runs


def test_h200_model_counts_match_closed_forms():
    from cascade.model.gpu import live_fraction

    b, h, n, d = 2, 3, 1024, 64
    shapes = {"B": b, "H": h, "M": n, "P": n, "E": d, "F": d}
    dense = cascade.load(ROOT / "specs/attention/mha_1pass.einsum", shapes)
    report = dense.estimate(ROOT / "mappings/mha_1pass/h200.yaml", "h200")
    assert report.per_unit["tensor_core"]["ops"]["flop"] == 4 * b * h * n * n * d
    assert report.per_unit["special"]["ops"]["ops"] >= b * h * n * n  # one exp per score
    assert report.dram_bytes == 2 * 4 * b * h * n * d  # bf16 Q, K, V read and AV written, once each
    causal = cascade.load(ROOT / "specs/attention/mha_1pass_causal.einsum", shapes)
    mc = causal.bind(ROOT / "mappings/mha_1pass/h200.yaml")
    # query tile i (128 rows) sees key tiles m1 (64 keys) with 64*m1 <= 128*i + 127: 2i + 2 of 16
    want = sum(2 * i + 2 for i in range(n // 128)) / ((n // 128) * (n // 64))
    assert live_fraction(mc, list(mc.groups[0].statements), "M1") == pytest.approx(want)
    slow = causal.estimate(ROOT / "mappings/mha_1pass/h200.yaml", "h200")
    assert slow.groups[0]["compute_s"] < report.groups[0]["compute_s"] * 0.6


def test_h200_model_grid_waves_and_launches():
    """Programs by the backend's grid rule, the busy share of the last wave, and K kernels issued
    by the host one per launch overhead: closed forms from the target's numbers."""
    from cascade.model.gpu import load_gpu_target

    tgt = load_gpu_target(ROOT / "specs/targets/h200.yaml")
    decode = cascade.load(ROOT / "specs/attention/decode_1pass.einsum", {"H": 64, "M": 32768})
    g = decode.estimate(ROOT / "mappings/decode_1pass/h200.yaml", "h200").groups[0]
    assert g["programs"] == 64 and g["busy"] == pytest.approx(64 / tgt.sms)
    # 64 programs stream at 64 x the measured per-SM rate, well under HBM: K and V of 64 heads
    # (2 x 64 x 32768 x 64 bf16) plus Q and AV (2 x 64 x 64 bf16)
    assert g["dram_bytes"] == 2 * 64 * 32768 * 64 * 2 + 2 * 64 * 64 * 2
    assert g["dram_bytes_per_s"] == pytest.approx(64 * tgt.dram_per_sm_bytes_per_s)
    assert g["dram_bytes_per_s"] < tgt.dram_bytes_per_s
    assert g["memory_s"] == pytest.approx(g["dram_bytes"] / (64 * tgt.dram_per_sm_bytes_per_s))
    assert g["bound"] == "memory"
    assert g["device_s"] == pytest.approx(max(g["compute_s"] * tgt.sms / 64, g["memory_s"]) + tgt.kernel_overhead_s)
    gqa = cascade.load(ROOT / "specs/attention/gqa_1pass.einsum", {"H": 32, "R": 4, "M": 4096, "P": 4096})
    assert gqa.estimate(ROOT / "mappings/gqa_1pass/h200.yaml", "h200").groups[0]["programs"] == 32 * 4096 // 128
    tiny = cascade.load(ROOT / "specs/attention/attention_3pass.einsum", {"M": 64, "P": 64})
    r = tiny.estimate(ROOT / "mappings/attention_3pass/h200.yaml", "h200")
    assert len(r.groups) == 6 and r.bound == "launch"
    assert r.latency_s == pytest.approx(5 * tgt.launch_overhead_s + r.groups[-1]["device_s"])


def test_h200_dram_bandwidth_is_capped_by_programs_times_the_per_sm_rate():
    """min(HBM, programs x per-SM rate); a target without the per-SM rate keeps the wave rule
    (busy share of HBM)."""
    import dataclasses

    from cascade.model.gpu import dram_bandwidth, load_gpu_target

    tgt = load_gpu_target(ROOT / "specs/targets/h200.yaml")
    per, hbm = tgt.dram_per_sm_bytes_per_s, tgt.dram_bytes_per_s
    assert 0 < per < hbm / tgt.sms  # one program alone cannot pull its SM's share of HBM
    assert dram_bandwidth(tgt, 1, 1 / tgt.sms) == per
    assert dram_bandwidth(tgt, 10**6, 1.0) == hbm
    plain = dataclasses.replace(tgt, dram_per_sm_bytes_per_s=0.0)
    assert dram_bandwidth(plain, 64, 64 / tgt.sms) == pytest.approx(hbm * 64 / tgt.sms)


def test_estimate_h200_cli_json():
    r = _cli("estimate", "specs/attention/mha_1pass.einsum", "-m", "mappings/mha_1pass/h200.yaml", "-t", "h200",
             "--json")
    assert r.returncode == 0, r.stderr
    import json

    data = json.loads(r.stdout)
    assert data["target"] == "h200" and data["latency_s"] > 0
