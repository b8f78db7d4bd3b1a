"""benchmarks/fusemax_artifact.py's account of the artifact's energy errors: the buffer reads that
Timeloop adds when its 64-bit partition size wraps (tiling.cpp ComputePartitionSizes), checked
against NumPy's own wrapping uint64 product and against closed forms per row."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("fusemax_artifact", "fusemax_artifact_under_test") as module:
        return module


@pytest.mark.parametrize("full, tile", [(3 * 2**44, 2**21), (3 * 2**40, 2**21), (2**46, 2**18),
                                        (5 * 2**60 + 7, 2**5), (10**15 + 3, 3 * 10**5)])
def test_wrap_equals_the_uint64_product(bench, full, tile):
    with np.errstate(over="ignore"):
        partition = int((np.uint64(full) * np.uint64(tile)) // np.uint64(tile))
    expected = full - partition if full * tile >= 2**64 else 0
    assert bench.wrapped_partition_words([(full, tile)]) == expected


@pytest.mark.parametrize("design, model, length, per_score", [
    ("attn-cascade", "BERT", "64K", 0),      # 768 x 2^32 scores x a 2^21 tile: under 2^64
    ("attn-cascade", "BERT", "256K", 2),     # QK and SLN wrap to 0: each read once more per score
    ("attn-cascade", "BERT", "1M", 2.25),    # and RNV (F / 256 words per score)
    ("attn-cascade", "XLM", "256K", 2.5),    # F = 128: RNV wraps already
    ("attn-flat", "BERT", "16K", 0),
    ("attn-flat", "BERT", "64K", 1),         # QK kept on chip, a 64K x 256 tile
    ("attn-flat", "BERT", "256K", 0),        # SN's row of 2^18 keys x 3 x 2^44 scores: 3 x 2^62
    ("attn-flat", "TrXL", "256K", 1),        # 16 heads: 2^64
])
def test_wrapped_reads_per_row(bench, design, model, length, per_score):
    heads, _ = bench.MODELS[model]
    n = bench.LENGTHS[length]
    scores = bench.BATCH * heads * n * n
    words = bench.wrapped_partition_words(bench.artifact_buffer_outputs(design, model, length))
    assert words == per_score * scores
