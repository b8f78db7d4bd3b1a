"""`TileSum(Lambda(j, f), n)`: the sum of f(j) over the tiles j = 0 .. n-1, as one sympy term.

The DRAM reads of a loop that skips tiles a filter empties (`cascade.mapping.skips`) add up a
per-tile count with floors in it (the keys a tile of queries reaches), which has no closed form
in general. `TileSum` keeps it symbolic in the rank and tile shapes (printed by `--symbolic`),
evaluates to an exact Integer as soon as n and f's shapes are numbers (so `expr.subs(values)`
works as for every other count), and `NUMPY` gives its vectorised form for `sympy.lambdify`
(arrays of candidate shapes, as the mapping search evaluates them).
"""

from __future__ import annotations

import numpy as np
import sympy as sp


class TileSum(sp.Function):
    """TileSum(Lambda(j, f), n) = f(0) + f(1) + ... + f(n - 1)."""

    nargs = 2

    def _fold(cls, lam, n):
        if n.is_Integer and not (lam.expr.free_symbols - set(lam.variables)):
            if int(n) <= 0:
                return sp.Integer(0)
            f = _compiled(lam)
            values = np.broadcast_to(np.asarray(f(np.arange(int(n), dtype=np.int64)), dtype=np.float64), (int(n),))
            return sp.Integer(int(round(float(values.sum()))))
        return None

    eval = classmethod(_fold)  # sympy's hook for automatic evaluation (a number once n and f's shapes are)

    def _numpycode(self, printer):
        lam, n = self.args
        return (f"TileSum((lambda {printer._print(lam.variables[0])}: {printer._print(lam.expr)}), "
                f"{printer._print(n)})")

    _lambdacode = _pythoncode = _numpycode

    def _eval_is_integer(self):
        return True

    def _eval_is_nonnegative(self):
        return self.args[0].expr.is_nonnegative


_CACHE: dict = {}


def _compiled(lam):
    if lam not in _CACHE:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[lam] = sp.lambdify(lam.variables, lam.expr, "numpy")
    return _CACHE[lam]


class IntDiv(sp.Function):
    """IntDiv(a, b) = floor(a / b) for integers, kept as a floor division: sympy would rewrite
    floor((7j - 8)/5) as floor(7j/5 - 8/5), which floating point evaluates wrong (4.0 -> 3.99..)."""

    nargs = 2

    def _fold(cls, a, b):
        if a.is_Integer and b.is_Integer:
            return sp.Integer(int(a) // int(b))
        return None

    eval = classmethod(_fold)  # sympy's hook for automatic evaluation

    def _numpycode(self, printer):
        a, b = self.args
        return f"(({printer._print(a)}) // ({printer._print(b)}))"

    _lambdacode = _pythoncode = _numpycode

    def _eval_is_integer(self):
        return True


def _tile_sum_numpy(f, n):
    """Vectorised TileSum: n may be an array (one candidate per element), f maps j to arrays."""
    n = np.asarray(n)
    total = np.zeros(n.shape)
    for j in range(int(np.max(n)) if n.size else 0):
        total = total + np.where(j < n, f(j), 0.0)
    return total


NUMPY = {"TileSum": _tile_sum_numpy}
