"""The generated Triton executors against the reference evaluator (float64 NumPy).

Runs where torch and triton are installed and either a CUDA device is present or Triton's CPU
interpreter is asked for (TRITON_INTERPRET=1 before Python starts); skips cleanly elsewhere.
On a GPU machine: `python -m pytest tests/test_triton_numerics.py` (README "GPU executors").

Tolerances: fp32 inputs, exact-fp32 dots ("ieee"): relative error (max |out - ref| / max |ref|)
under 1e-5. bf16 inputs (CUDA only; the interpreter has no bfloat16): the reference gets the same
bf16-rounded inputs; the kernel multiplies the probabilities by V in bf16 (as FlashAttention
does) and writes bf16, each a relative rounding of 2^-8, so the bound is 2e-2.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import cascade
from oracles import masked_attention

torch = pytest.importorskip("torch", reason="the Triton backend needs torch (pip install -e '.[gpu]')")
pytest.importorskip("triton", reason="the Triton backend needs triton (pip install -e '.[gpu]')")

CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
pytestmark = pytest.mark.skipif(not (CUDA or INTERPRET),
                                reason="no CUDA device and TRITON_INTERPRET=1 not set")
DEVICE = "cuda" if CUDA else "cpu"

CASES = [  # spec, mapping, shapes (ragged ones included)
    ("attention/attention_1pass.einsum", "attention_1pass/h200.yaml", {"M": 300, "P": 200}),
    ("attention/attention_1pass.einsum", "attention_1pass/h200.yaml", {"M": 256, "P": 256}),
    ("attention/mha_1pass.einsum", "mha_1pass/h200.yaml", {"B": 2, "H": 3, "M": 200, "P": 130, "E": 40}),
    ("attention/mha_1pass_causal.einsum", "mha_1pass/h200.yaml", {"B": 2, "H": 2, "M": 200, "P": 200}),
    ("attention/mha_1pass_causal.einsum", "mha_1pass/h200.yaml", {"B": 1, "H": 2, "M": 333, "P": 250}),
    ("attention/attention_2pass.einsum", "attention_2pass/h200.yaml", {"M": 300, "P": 70}),
    ("attention/attention_3pass.einsum", "attention_3pass/h200.yaml", {"M": 300, "P": 70}),
    ("softmax_3pass.einsum", "softmax_3pass/h200.yaml", {"M": 1000, "P": 70}),
    ("attention/attention_3pass.einsum", "attention_3pass/h200_long.yaml", {"M": 300, "P": 70}),  # accumulation loops
]
# the zoo's variants (mappings/<variant>/h200.yaml), ragged shapes: fixed splits on the grid (GQA),
# P = 1 (decode), two kernels (FlashDecoding), tanh, rank values and pow (ALiBi), sigmoid with an
# accumulation loop, a two-sided window, normalisation rows
VARIANTS = [
    ("attention/gqa_1pass.einsum", "gqa_1pass/h200.yaml", {"H": 6, "R": 3, "M": 150, "P": 130, "E": 32, "F": 48}),
    ("attention/mqa_1pass.einsum", "mqa_1pass/h200.yaml", {"H": 3, "M": 130, "P": 70, "E": 32, "F": 32}),
    ("attention/decode_1pass.einsum", "decode_1pass/h200.yaml", {"H": 3, "M": 300, "E": 32, "F": 32}),
    ("attention/flashdecoding.einsum", "flashdecoding/h200.yaml", {"H": 3, "M": 300, "E": 32, "F": 32}),
    ("attention/softcap_1pass.einsum", "softcap_1pass/h200.yaml", {"M": 150, "P": 70, "E": 32, "F": 32}),
    ("attention/alibi_1pass.einsum", "alibi_1pass/h200.yaml", {"H": 2, "M": 150, "P": 140, "E": 32, "F": 32}),
    ("attention/sigmoid_attention.einsum", "sigmoid_attention/h200.yaml", {"M": 150, "P": 70, "E": 32, "F": 32}),
    ("attention/sliding_window_1pass.einsum", "sliding_window_1pass/h200.yaml",
     {"M": 300, "P": 290, "W": 70, "E": 32, "F": 32}),
    ("norm/layernorm_2pass.einsum", "layernorm_2pass/h200.yaml", {"D": 100, "N": 37}),
    ("norm/layernorm_3pass.einsum", "layernorm_3pass/h200.yaml", {"D": 100, "N": 37}),
    ("norm/rmsnorm.einsum", "rmsnorm/h200.yaml", {"D": 100, "N": 37}),
]
# CPU-sized tiles (256 x 256 fp32 blocks need more shared memory than a GPU has): interpreter only
BIG_TILES = [
    ("attention/attention_1pass.einsum", "attention_1pass/tiled.yaml", {"M": 1000, "P": 300, "E": 40}),
    ("attention/mha_1pass.einsum", "mha_1pass/fusemax.yaml", {"B": 1, "H": 2, "M": 300, "P": 100}),
]


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def _check(spec_rel, mapping_rel, shapes, dtype, tol, seed):
    from cascade.codegen.loader import import_source

    root = _root()
    spec = cascade.load(root / "specs" / spec_rel, shapes)
    mapping = root / "mappings" / mapping_rel
    module = import_source(spec.compile(mapping, backend="triton"), stem="triton_numerics")
    inputs = spec.random_inputs(seed)
    tensors = {k: torch.tensor(v).to(dtype).to(DEVICE) for k, v in inputs.items()}
    rounded = {k: t.double().cpu().numpy() for k, t in tensors.items()}
    reference = spec.run(rounded)
    outputs = module.run(**tensors)
    for name, want in reference.items():
        got = outputs[name].double().cpu().numpy()
        assert got.shape == want.shape
        assert np.isfinite(got).all()
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < tol, f"{name}: relative error {err:.2e} >= {tol:.0e}"


@pytest.mark.parametrize("spec_rel,mapping_rel,shapes", CASES)
def test_fp32_matches_reference(spec_rel, mapping_rel, shapes):
    _check(spec_rel, mapping_rel, shapes, torch.float32, 1e-5, seed=3)


@pytest.mark.skipif(CUDA, reason="CPU-sized tiles exceed a GPU's shared memory (an exit-2 error there)")
@pytest.mark.parametrize("spec_rel,mapping_rel,shapes", BIG_TILES)
def test_fp32_cpu_tiles_under_the_interpreter(spec_rel, mapping_rel, shapes):
    _check(spec_rel, mapping_rel, shapes, torch.float32, 1e-5, seed=6)


@pytest.mark.skipif(not CUDA, reason="bfloat16 needs a CUDA device (Triton's interpreter has none)")
@pytest.mark.parametrize("spec_rel,mapping_rel,shapes", CASES)
def test_bf16_matches_reference(spec_rel, mapping_rel, shapes):
    _check(spec_rel, mapping_rel, shapes, torch.bfloat16, 2e-2, seed=4)


@pytest.mark.skipif(not CUDA, reason="timing-free check of a large shape: CUDA only")
def test_large_bf16_matches_reference():
    _check("attention/mha_1pass.einsum", "mha_1pass/h200.yaml", {"B": 1, "H": 2, "M": 4096 + 17, "P": 1500},
           torch.bfloat16, 2e-2, seed=5)


@pytest.mark.parametrize("spec_rel,mapping_rel,shapes", VARIANTS)
def test_variants_fp32_match_reference(spec_rel, mapping_rel, shapes):
    _check(spec_rel, mapping_rel, shapes, torch.float32, 1e-5, seed=4)


@pytest.mark.skipif(not CUDA, reason="bfloat16 needs a CUDA device (Triton's interpreter has none)")
@pytest.mark.parametrize("spec_rel,mapping_rel,shapes", VARIANTS)
def test_variants_bf16_match_reference(spec_rel, mapping_rel, shapes):
    _check(spec_rel, mapping_rel, shapes, torch.bfloat16, 2e-2, seed=5)


def test_inputs_that_contradict_a_compiled_split_are_refused():
    """A module compiled for GQA's R = 4 given K and V of a grouping with R = 2: a clear ValueError
    (exit 2 from `cascade run`), not a wrong answer."""
    from cascade.codegen.loader import import_source

    root = _root()
    spec = cascade.load(root / "specs/attention/gqa_1pass.einsum", {"H": 8, "R": 4, "M": 64, "P": 64})
    module = import_source(spec.compile(root / "mappings/gqa_1pass/h200.yaml", backend="triton"), stem="gqa_refuse")
    other = cascade.load(root / "specs/attention/gqa_1pass.einsum", {"H": 4, "R": 2, "M": 64, "P": 64})
    tensors = {k: torch.tensor(v).float().to(DEVICE) for k, v in other.random_inputs(1).items()}
    with pytest.raises(ValueError, match="the inputs give G = 2, but this module was compiled for H = G \\* R with R = 4"):
        module.run(**tensors)


MIXED = """cascade mixed
shape E = 16, F = 24, M = 200, P = 90
input Q[E, P], K[E, M], V[F, M]
output AV[F, P], MX[P]

QK[m, p] = Q[e, p] * K[e, m]
A[m, p]  = select(QK[m, p] > 0, QK[m, p], 0.1 * pow(QK[m, p], 2)) * ge(p, m) + 0.001 * (m - p)
AV[f, p] = A[m, p] * V[f, m]
MX[p]    = A[m, p] :: max(m)
"""


def test_a_cascade_no_bundled_pair_covers(tmp_path):
    """select, a comparison as a value, pow with an integer exponent, rank values, and a sum and a
    max accumulating across the same loop over key tiles (ragged: 200 keys in tiles of 32)."""
    from cascade.codegen.loader import import_source

    mapping = tmp_path / "m.yaml"
    mapping.write_text("partitioning:\n  M: [uniform_shape(32)]\n  P: [uniform_shape(32)]\n"
                       "loop-order:\n  default: [P1, M1, P0, M0, E, F]\nfusion:\n  - [QK, A, AV, MX]\n")
    spec = cascade.loads(MIXED)
    module = import_source(spec.compile(mapping, backend="triton"), stem="mixed")
    assert len(module.KERNELS) == 1
    tensors = {k: torch.tensor(v).float().to(DEVICE) for k, v in spec.random_inputs(2).items()}
    want = spec.run({k: t.double().cpu().numpy() for k, t in tensors.items()})
    got = module.run(**tensors)
    for name, ref in want.items():
        err = np.abs(got[name].double().cpu().numpy() - ref).max() / np.abs(ref).max()
        assert err < 1e-5, f"{name}: relative error {err:.2e}"


# Empty tiles (issue 12's absent rule): strictly causal attention (query 0 sees no key) and the
# sliding window started at -inf (queries whose window has not begun in a live tile) hold absent
# points across whole rows of a tile. The kernel must give what the NumPy executor gives: no NaN,
# 0 where a query sees no key; both checked against a masked softmax in plain NumPy (oracles.py).
_ROOT = _root()
_STRICT = (_ROOT / "specs/attention/mha_1pass_causal.einsum").read_text().replace("m1*M0 + m0 <= p", "m1*M0 + m0 < p")
_WINDOW = (_ROOT / "specs/attention/sliding_window_1pass.einsum").read_text()
EMPTY = [  # spec text, keep(m, p, w), mapping, shapes (ragged)
    (_STRICT, lambda m, p, w: m < p, "mha_1pass/h200.yaml", {"B": 1, "H": 2, "M": 200, "P": 150, "E": 32, "F": 32}),
    (_STRICT, lambda m, p, w: m < p, "mha_1pass/h200.yaml", {"B": 2, "H": 1, "M": 64, "P": 64, "E": 16, "F": 16}),
    (_WINDOW, lambda m, p, w: (m <= p) & (p < m + w), "sliding_window_1pass/h200.yaml",
     {"M": 300, "P": 290, "W": 70, "E": 32, "F": 32}),
    (_WINDOW, lambda m, p, w: (m <= p) & (p < m + w), "sliding_window_1pass/h200.yaml",
     {"M": 256, "P": 256, "W": 3, "E": 16, "F": 16}),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("text,keep,mapping_rel,shapes", EMPTY)
def test_empty_tiles_follow_the_absent_rule(text, keep, mapping_rel, shapes, dtype):
    from cascade.codegen.loader import import_source
    from cascade.mapping.mapping_file import load_mapping

    if dtype == "bfloat16" and not CUDA:
        pytest.skip("bfloat16 needs a CUDA device (Triton's interpreter has none)")
    mapping = _ROOT / "mappings" / mapping_rel
    spec = cascade.loads(text).with_shapes(**shapes)
    module = import_source(spec.compile(mapping, backend="triton"), stem="empty_tiles")
    tensors = {k: torch.tensor(v).to(getattr(torch, dtype)).to(DEVICE) for k, v in spec.random_inputs(7).items()}
    x = {k: t.double().cpu().numpy() for k, t in tensors.items()}
    got = module.run(**tensors)["AV"].double().cpu().numpy()
    executor = spec.executor(load_mapping(mapping)).run(**x)["AV"]
    mk, pq = np.arange(shapes["M"])[:, None], np.arange(shapes["P"])[None, :]
    kept = keep(mk, pq, shapes.get("W", 0))
    q, k, v = (x[t].reshape((-1,) + x[t].shape[-2:]) for t in "QKV")  # batch and head ranks first
    want = np.stack([masked_attention(q[i], k[i], v[i], kept) for i in range(len(q))]).reshape(got.shape)
    assert np.isfinite(got).all() and np.isfinite(executor).all()
    assert np.abs(executor - want).max() <= 1e-9 * np.abs(want).max()
    tol = 1e-5 if dtype == "float32" else 2e-2
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    empty = ~kept.any(axis=0)  # queries that see no key read 0, as in the executor
    assert (got[..., empty] == 0).all() and (executor[..., empty] == 0).all()


@pytest.mark.skipif(not CUDA, reason="a 4 GiB key tensor: CUDA only")
def test_offsets_beyond_int32_use_int64_indices():
    """K and V of 2^25 + 17 keys x 64 (2.1e9 elements each, offsets past 2^31): the module's
    INDEX_TYPE is int64 there, and the result equals a softmax computed by torch in fp32."""
    from cascade.codegen.loader import import_source

    root = _root()
    m, p, d = 2 ** 25 + 17, 64, 64
    spec = cascade.load(root / "specs/attention/mha_1pass.einsum", {"B": 1, "H": 1, "M": m, "P": p, "E": d, "F": d})
    module = import_source(spec.compile(root / "mappings/mha_1pass/h200.yaml", backend="triton"), stem="int64")
    gen = torch.Generator(device="cuda").manual_seed(9)
    q = torch.randn(1, 1, p, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(1, 1, m, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    v = torch.randn(1, 1, m, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    got = module.run(Q=q.transpose(2, 3), K=k.transpose(2, 3), V=v.transpose(2, 3))["AV"][0, 0].float()  # [F, P]
    s = q[0, 0].float() @ k[0, 0].float().T  # [P, M]
    want = (torch.softmax(s, dim=1) @ v[0, 0].float()).T
    del s
    err = float((got - want).abs().max() / want.abs().max())
    assert err < 2e-2, f"relative error {err:.2e}"
