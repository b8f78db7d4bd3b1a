"""Is one step of a recurrence loop a no-op when every filtered point of the step is absent?

`skip_is_identity` replays one step of the loop with every filtered value absent (DESIGN section 2:
a map of absent points is absent, a reduction over none holds its identity) and checks with sympy
that every recurrence's new element equals its old one, and that the step writes no tensor that
outlives the loop. Executors use it to skip tiles a filter empties (causal attention) without
changing what is computed; the GPU cost model uses it to count the tiles that run.
"""

from __future__ import annotations

from ..lang import ir
from ..lang.ops import MAP_OPS, REDUCE_OPS


def skip_is_identity(sem, statements: list[int], filtered: dict[int, bool], dram: set[str],
                     at_init: bool = False, guarded: bool = False) -> bool:
    """One step of the loop with every point of the `filtered` statements filtered out (True: the
    filter is over left-side variables, so the value is absent; False: it filters reduced points,
    so the reduction holds its identity): does every recurrence keep its value, with nothing
    written to DRAM? With `at_init` the recurrences hold their `init` values (a tile skipped before
    any tile ran: -inf - -inf is no number, so a running max that never saw a point makes the
    step a change), else any finite values (a tile skipped after others ran). `guarded`: the step
    as the Triton kernel runs it, whose `a - b` reads an absent running max b (-inf) as 0 (the
    union rule), so -inf - -inf is -inf and exp of it 0, and such a step changes nothing."""
    import sympy as sp

    absent = object()
    values: dict[str, object] = {}
    current: dict[str, object] = {}
    symbols = iter(sp.Symbol(f"x{i}", real=True) for i in range(10**6))

    def read(acc: ir.Access):
        info = sem.tensors[acc.tensor]
        if info.iterative is not None:
            idx = acc.indices[list(info.ranks).index(info.iterative)]
            if isinstance(idx, ir.VarIndex) and idx.offset == 1:
                return values.get(acc.tensor + "@next", next(symbols))
            if acc.tensor not in current:
                current[acc.tensor] = initial(acc.tensor) if at_init else sp.Symbol(f"cur_{acc.tensor}", real=True)
            return current[acc.tensor]
        return values.get(acc.tensor, next(symbols))

    def initial(tensor: str):
        init = next((s for s in sem.statements if s.is_init and s.name == tensor), None)
        v = value(init.statement.expr) if init is not None and not init.reads else None
        return v if v is not None and v is not absent else next(symbols)

    def value(e: ir.Expr):
        match e:
            case ir.Num(value=v):
                return sp.oo if v == float("inf") else -sp.oo if v == float("-inf") else sp.Float(v)
            case ir.ShapeScalar(rank=r):
                return sp.Symbol(f"shape_{r}", positive=True)
            case ir.Read(access=acc):
                return read(acc)
            case ir.IndexValue(var=v):
                return sp.Symbol(f"index_{v}", integer=True)
            case ir.Neg(operand=x):
                v = value(x)
                return absent if v is absent else -v
            case ir.BinOp(op=op, left=left, right=right):
                a, b = value(left), value(right)
                if a is absent or b is absent:
                    return absent
                if guarded and op == "-" and a == b and (a == sp.oo or a == -sp.oo):
                    return a  # a running max (min) that saw nothing, minus itself: the subtrahend is
                    # absent and reads as 0 (README, union rule; the Triton kernel's guard), not oo - oo
                return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
            case ir.Call(fn=fn, args=args):
                vs = [value(x) for x in args]
                if any(v is absent for v in vs):
                    return absent
                fns = {"exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "max": sp.Max, "min": sp.Min,
                       "tanh": sp.tanh, "pow": sp.Pow}
                if fn in fns:
                    return fns[fn](*vs)
                if MAP_OPS[fn].expand is not None:
                    return value(MAP_OPS[fn].expand(args))
                return sp.Function(fn)(*vs)  # select, comparisons, other maps: opaque, same args same value
        raise AssertionError(e)

    for k in statements:
        info = sem.statements[k]
        if info.is_init:
            continue
        if info.name in dram:
            return False
        v = absent if k in filtered else value(info.statement.expr)
        if filtered.get(k):
            pass  # filtered output points: absent, not reduced
        elif info.reduced:
            op = REDUCE_OPS[info.reduce_op]
            v = (sp.oo if op.identity == float("inf") else -sp.oo if op.identity == float("-inf")
                 else sp.Float(op.identity)) if v is absent else next(symbols)
        it = sem.tensors[info.name].iterative
        values[info.name + "@next" if it is not None else info.name] = v
    for tensor, cur in current.items():
        new = values.get(tensor + "@next")
        if new is None or new is absent:
            return False
        if new == cur:
            continue
        if not (cur.is_finite and new.is_finite is not False) or sp.simplify(new - cur) != 0:
            return False
    return bool(current)
