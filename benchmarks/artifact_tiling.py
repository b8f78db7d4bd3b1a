"""Per-kernel tiles of the FuseMax artifact's matmul kernels, from its mapping constraints.

The artifact tiles every matmul kernel on its own with Timeloop's mapper (src/accel/matmul.py,
MatMul.eval_einsum; src/accel/unfused.py, Unfused.eval_components for QK and AV) under fixed
constraints (yamls/baselines/unfused-constraints/mm.yaml, qk.yaml, av.yaml):

- the 256 x 256 array spreads 256 output rows (PE_col) by 256 output columns or keys (PE);
- the reduced rank stays whole inside the global buffer (mm.yaml: `K=1` at DRAM), so the
  result bypasses the buffer and is written once;
- at DRAM the row blocks are the outer loop and the column (or key) blocks the inner one
  (`permutation: [K, N, M]`, innermost first), so the streamed operand's block (the weight, K
  of QK, V of AV) is re-read once per row block unless all of it fits at once;
- the buffer holds one row block of the stationary operand (rows x reduced rank) and one
  column block of the streamed one (reduced rank x columns); blocks are whole multiples of 256
  that divide the rank (the mapper's factors).

The mapper minimises energy-delay; with compute fixed by the array, what a tiling changes is
DRAM traffic (buffer accesses per MAC are the same for every block), so its choice is the
fewest re-reads: all columns at once where they fit beside one 256-row block, else the largest
row block that leaves room for a 256-column block. For XLM's FFN this gives the artifact's
traffic exactly (end2end-proposal 10.23 GB at 1K, end2end-flat 7.55 GB; see benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import replace

PE = 256


def _largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of n that is at most limit (at least 1)."""
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def matmul_blocks(rows: int, reduced: int, cols: int, buffer_words: int, pe: int = PE) -> tuple[int, int]:
    """(row block, column block) in elements for rows x cols outputs over `reduced`, as above."""
    r, c = -(-rows // pe), -(-cols // pe)
    slots = max(2, buffer_words // (pe * reduced))  # 256-row (or -column) slices of reduced words that fit
    if c + 1 <= slots:  # every column block at once: the streamed operand is read once
        return pe * _largest_divisor(r, slots - c), pe * c
    row = _largest_divisor(r, slots - 1)
    return pe * row, pe * _largest_divisor(c, slots - row)


def own_matmul(mapping, einsum: str, rows: str, cols: str, reduced: str, shapes: dict[str, int], buffer_words: int,
               outer: tuple[str, ...] = (), inner: tuple[str, ...] = (), blocks: tuple[int, int] | None = None):
    """`mapping` with `einsum` (a matmul over rows x cols, reducing `reduced`) tiled by
    `matmul_blocks` (or the given (row, column) `blocks`): its own partitioning of `rows` (row
    blocks of 256-row tiles) and `cols`, its loop order (inside the `outer` loops: row blocks
    outside column blocks, or the one column block outermost where it is the whole rank, so that
    it is loaded once; `inner` ranks last) and its spacetime (256 rows by a column block)."""
    row, col = blocks or matmul_blocks(shapes[rows], shapes[reduced], shapes[cols], buffer_words)
    own = {rows: (row, PE), cols: (col,)}
    if col >= shapes[cols]:
        order = (f"{cols}1", f"{rows}2", f"{rows}1", f"{rows}0", f"{cols}0", reduced)
    else:
        order = (f"{rows}2", f"{cols}1", f"{rows}1", f"{rows}0", f"{cols}0", reduced)
    from cascade.mapping.mapping_file import SpaceTime

    space = (f"{rows}0", f"{cols}0")
    time = outer + tuple(r for r in order if r not in space)
    return replace(mapping, einsum_partitioning={**mapping.einsum_partitioning, einsum: own},
                   loop_order={**mapping.loop_order, einsum: outer + order + inner},
                   spacetime={**mapping.spacetime, einsum: SpaceTime(space, time)})


def unfused_kernels(shapes: dict[str, int], target, path):
    """mappings/mha_3pass/unfused_kernels.yaml (`path`) with QK and AV tiled by `matmul_blocks`
    for `target`'s buffer (qk.yaml, av.yaml: query rows by keys on the array; QK keeps E whole in
    the buffer; AV reduces over the keys, its accumulator, F x a row block, stays on chip)."""
    from cascade.mapping.mapping_file import load_mapping

    words = target.buffer_bytes // target.word_bytes
    mapping = load_mapping(path)
    heads = (("B1", "H1"), ("B0", "H0"))
    mapping = own_matmul(mapping, "QK", "P", "M", "E", shapes, words, *heads)
    av = matmul_blocks(shapes["P"], shapes["F"], shapes["M"], words)  # V's key block beside F x rows of AV
    return own_matmul(mapping, "AV", "P", "M", "F", shapes, words, *heads, blocks=av)


def softmax_rows(spec, mapping, target, group: str = "GM+SN+SD+A"):
    """The softmax kernel's block of query rows: 256, 128, ... 1, the first whose group neither
    spills nor streams on `target` (StableSoftmax spills only a row that does not fit:
    prop_spilled = 1 - min(1, buffer / row bytes)); with its estimate."""
    from dataclasses import replace

    rows, report = 256, None
    while rows >= 1:
        report = spec.estimate(replace(mapping, partitioning={**mapping.partitioning, "P": (rows,)}), target)
        if not any(line.startswith(f"group {group} ") for line in report.extra.get("spills", [])):
            break
        rows //= 2
    return report, max(rows, 1)
