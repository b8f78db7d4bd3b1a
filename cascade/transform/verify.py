"""Differential verification of a rewrite: the original and the result, evaluated by the
reference on the same random inputs at several shapes (ragged tiles included) and input scales.

`verify` returns one `Trial` per (shape, scale): the largest error of the result relative to the
original's largest magnitude, and whether the two agree at `rtol` wherever the original is
defined (infinities equal, no NaN or inf where the original is finite).
`float32_ratio` compares float32 errors against float64 for both cascades.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..lang import ir
from ..lang.check import check
from ..lang.shapes import known_ranks, resolve_shapes
from ..reference import evaluate, random_inputs

SCALES = {"unit": (1.0, 0.0), "large logits": (30.0, 0.0), "large mean": (1.0, 1e4)}


@dataclass(frozen=True)
class Trial:
    shapes: dict[str, int]
    scale: str
    max_error: float
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return {"shapes": self.shapes, "inputs": self.scale, "max_error": self.max_error, "ok": self.ok}


def default_shapes(original: ir.Cascade, rank: str) -> list[dict[str, int]]:
    """Small shapes: R in {1, 7, 64} with tiles {1, 3, 16, R + 5} (ragged, one partial tile), the
    other ranks at most 5."""
    sem = check(original)
    base = {r: min(n, 5) for r, n in resolve_shapes(sem).items() if r != rank}
    out = []
    for m, tiles in ((1, (1, 3)), (7, (1, 3, 12)), (64, (16, 64 + 5))):
        for t in tiles:
            out.append({**base, rank: m, rank + "0": t})
    return out


def _inputs(sem, shapes, seed: int, scale: str, dtype) -> dict[str, np.ndarray]:
    spread, shift = SCALES[scale]
    return {k: (v * spread + shift).astype(dtype) for k, v in random_inputs(sem, shapes, seed).items()}


def _same(a: np.ndarray, b: np.ndarray, rtol: float) -> tuple[float, bool]:
    """Agreement wherever the original `a` is defined (not NaN): finite values within `rtol` of
    the original's largest magnitude, infinities equal; the result may not be NaN or infinite
    where the original is finite. Where the original is NaN (0/0, log of a negative) sympy's
    identities, like any algebra, say nothing, and the result may differ."""
    defined = ~np.isnan(a)
    finite = np.isfinite(a)
    if not np.all(np.isfinite(b[finite])):
        return float("inf"), False
    infinite = defined & ~finite
    if not np.array_equal(a[infinite], b[infinite]):
        return float("inf"), False
    if not finite.any():
        return 0.0, True
    scale = max(float(np.max(np.abs(a[finite]))), 1e-300)
    err = float(np.max(np.abs(a[finite] - b[finite]))) / scale
    return err, bool(err <= rtol)


def verify(original: ir.Cascade, reduced: ir.Cascade, rank: str, shape_list: list[dict[str, int]] | None = None,
           scales: tuple[str, ...] = tuple(SCALES), rtol: float = 1e-9, seed: int = 0) -> list[Trial]:
    sem_a, sem_b = check(original), check(reduced)
    trials = []
    for shapes in shape_list or default_shapes(original, rank):
        own = {r: n for r, n in shapes.items() if r in known_ranks(original)}
        sa, sb = resolve_shapes(sem_a, own), resolve_shapes(sem_b, {r: n for r, n in shapes.items()
                                                                     if r in known_ranks(reduced)})
        for scale in scales:
            inputs = _inputs(sem_a, sa, seed, scale, np.float64)
            out_a, out_b = evaluate(sem_a, inputs, sa), evaluate(sem_b, inputs, sb)
            errs = [_same(out_a[k], out_b[k], rtol) for k in out_a]
            trials.append(Trial(dict(shapes), scale, max(e for e, _ in errs), all(ok for _, ok in errs)))
    return trials


def float32_ratio(original: ir.Cascade, reduced: ir.Cascade, shapes: dict[str, int], scale: str = "unit",
                  seed: int = 0) -> tuple[float, float]:
    """(float32 error of the original, of the result), both against the original in float64."""
    sem_a, sem_b = check(original), check(reduced)
    own = {r: n for r, n in shapes.items() if r in known_ranks(original)}
    sa, sb = resolve_shapes(sem_a, own), resolve_shapes(sem_b, {r: n for r, n in shapes.items()
                                                                 if r in known_ranks(reduced)})
    x64 = _inputs(sem_a, sa, seed, scale, np.float64)
    x32 = {k: v.astype(np.float32) for k, v in x64.items()}
    exact = evaluate(sem_a, {k: v.astype(np.float64) for k, v in x32.items()}, sa)
    a32, b32 = evaluate(sem_a, x32, sa), evaluate(sem_b, x32, sb)

    def err(out):
        return max(float(np.max(np.abs(out[k].astype(np.float64) - exact[k]))) / max(float(np.max(np.abs(exact[k]))), 1e-300)
                   for k in exact)

    return err(a32), err(b32)
