"""The reference evaluator: the oracle every executor and model is tested against.

It evaluates a checked cascade over its full iteration space with NumPy broadcasting, favouring
the obviously correct over the fast. Semantics (DESIGN.md section 2):
- an Einsum iterates every variable it mentions; variables absent from the left side are
  reduced (with `+` unless `:: op(...)` says otherwise);
- points outside a `where` filter, and points of a split rank beyond its shape (the ragged last
  tile), are *absent*; maps merge absent operands by the operator table's rule (union-like
  `+ - max min` take their identity, others are absent: `cascade.lang.ops`); a reduction skips
  absent points, and one over no present point is absent, holding the operator's identity as
  its value (what an output reads there: -inf for a max over nothing);
- a recurrence group advances its iterative variable one coordinate at a time; a recurrence step
  whose contribution is absent carries the old value (`_carried`); an `init` to the identity of
  a union-like operator (0, -inf, inf: `ops.starts_empty`) is absent, no point folded in yet;
- absent points of an output read as 0.
Large reductions are evaluated in chunks of the first reduced variable to bound memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError
from .lang import ir
from .lang.ops import MAP_OPS, REDUCE_OPS, starts_empty, union_takes_identity
from .lang.semantics import AccessInfo, AxisCoord, Semantics, StatementInfo
from .lang.shapes import resolve_shapes, tensor_shape

CHUNK_ELEMENTS = 1 << 22


@dataclass
class _Stored:
    data: np.ndarray
    present: np.ndarray | None  # None: every point present


def random_inputs(sem: Semantics, shapes: Mapping[str, int], seed: int = 0,
                  dtype: type = np.float64) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs, one array per input tensor in its declared rank order."""
    rng = np.random.default_rng(seed)
    return {d.name: rng.standard_normal(tensor_shape(sem, d.name, shapes)).astype(dtype)
            for d in sem.cascade.inputs}


def evaluate(sem: Semantics, inputs: Mapping[str, np.ndarray], shapes: Mapping[str, int] | None = None,
             keep_intermediates: bool = False) -> dict[str, np.ndarray]:
    """Evaluate the cascade; returns its outputs (and intermediates if asked) by name."""
    shapes = dict(shapes) if shapes is not None else resolve_shapes(sem)
    store = _load_inputs(sem, inputs, shapes)
    dtype = np.result_type(*[s.data.dtype for s in store.values()]) if store else np.float64
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64
    for name, info in sem.tensors.items():
        if info.kind != "input":
            shape = tensor_shape(sem, name, shapes)
            store[name] = _Stored(np.zeros(shape, dtype), np.zeros(shape, bool))
    with np.errstate(all="ignore"):
        for step in sem.steps:
            if step.variable is None:
                for k in step.statements:
                    _evaluate_statement(sem.statements[k], sem.splits, store, shapes, {})
                continue
            extent = shapes[step.variable.upper()]
            state = frozenset(sem.statements[k].name for k in step.statements) | {
                t for t, i in sem.tensors.items() if i.iterative is not None}
            for coord in range(extent):
                for k in step.statements:
                    _evaluate_statement(sem.statements[k], sem.splits, store, shapes,
                                        {step.variable: np.array([coord])},
                                        state if sem.tensors[sem.statements[k].name].iterative else None)
    wanted = sem.tensors if keep_intermediates else {d.name: None for d in sem.cascade.outputs}
    return {name: store[name].data for name in wanted if sem.tensors[name].kind != "input" or keep_intermediates}


def _load_inputs(sem: Semantics, inputs: Mapping[str, np.ndarray], shapes: Mapping[str, int]) -> dict[str, _Stored]:
    store: dict[str, _Stored] = {}
    declared = [d.name for d in sem.cascade.inputs]
    missing = [n for n in declared if n not in inputs]
    extra = [n for n in inputs if n not in declared]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input {', '.join(missing)}")
        if extra:
            parts.append(f"unknown input {', '.join(extra)} (the cascade's inputs: {', '.join(declared)})")
        raise InputError("; ".join(parts))
    for decl in sem.cascade.inputs:
        arr = np.asarray(inputs[decl.name])
        want = tensor_shape(sem, decl.name, shapes)
        if arr.shape != want:
            dims = ", ".join(f"{r}={n}" for r, n in zip(decl.ranks, want))
            raise InputError(f"input {decl.name} has shape {arr.shape}, expected {want} ({dims})")
        if arr.dtype.kind not in "biuf":
            raise InputError(f"input {decl.name} has dtype {arr.dtype}: inputs must be real numbers "
                             "(float, int or bool arrays)")
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        store[decl.name] = _Stored(arr, None)
    return store


class _Space:
    """The iteration space of one statement: per variable, the coordinates taken and its axis."""

    def __init__(self, variables: tuple[str, ...], coords: dict[str, np.ndarray]):
        self.variables = variables
        self.coords = coords
        self.ndim = len(variables)

    def along(self, var: str) -> np.ndarray:
        shape = [1] * self.ndim
        axis = self.variables.index(var)
        shape[axis] = len(self.coords[var])
        return self.coords[var].reshape(shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.coords[v]) for v in self.variables)


def _axis_coordinate(axis: AxisCoord, space: _Space, shapes: Mapping[str, int], extent: int):
    match axis.kind:
        case "var":
            return space.along(axis.var) + axis.offset
        case "split":
            return space.along(axis.var) * shapes[axis.tile_rank] + space.along(axis.inner)
        case "outer":
            return space.along(axis.var) // shapes[axis.tile_rank]
        case "inner":
            return space.along(axis.var) % shapes[axis.tile_rank]
        case "const":
            return np.array(axis.offset)
        case "last":
            return np.array(extent - 1)
    raise AssertionError(axis.kind)


def _coordinates(acc: AccessInfo, space: _Space, shapes: Mapping[str, int], stored_shape: tuple[int, ...]):
    """Per tensor axis, the coordinates this access addresses, and where they are in bounds."""
    coords, inside = [], None
    for axis, extent in zip(acc.axes, stored_shape):
        c = _axis_coordinate(axis, space, shapes, extent)
        ok = (c >= 0) & (c < extent)
        if not np.all(ok):
            inside = ok if inside is None else inside & ok
            c = np.clip(c, 0, extent - 1)
        coords.append(c)
    return coords, inside


def _read(acc: AccessInfo, store: dict[str, _Stored], space: _Space, shapes: Mapping[str, int]):
    stored = store[acc.access.tensor]
    coords, inside = _coordinates(acc, space, shapes, stored.data.shape)
    index = tuple(coords)
    value = stored.data[index] if coords else stored.data
    present = stored.present[index] if stored.present is not None and coords else stored.present
    if inside is not None:
        present = inside if present is None else present & inside
    return _to_space(value, space), None if present is None else _to_space(present, space)


def _to_space(arr: np.ndarray, space: _Space) -> np.ndarray:
    """Gathered arrays carry the broadcast shape of their index arrays; pad to space rank."""
    arr = np.asarray(arr)
    if arr.ndim < space.ndim:
        arr = arr.reshape((1,) * (space.ndim - arr.ndim) + arr.shape)
    return arr


def _and(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _eval_expr(expr: ir.Expr, reads: dict[int, tuple], shapes: Mapping[str, int], space: _Space):
    """(value, presence) of an expression; `reads` maps id(Access) to its gathered pair. Absent
    operands merge by the operator table's rule (`cascade.lang.ops`)."""
    match expr:
        case ir.Num(value=v):
            return np.float64(v), None
        case ir.ShapeScalar(rank=r):
            return np.float64(shapes[r]), None
        case ir.IndexValue(var=v):
            return space.along(v).astype(np.float64), None
        case ir.Read(access=a):
            return reads[id(a)]
        case ir.Neg(operand=o):
            val, pres = _eval_expr(o, reads, shapes, space)
            return np.negative(val), pres
        case ir.BinOp(op=fn, left=l, right=r):
            return _apply(MAP_OPS[fn], (l, r), reads, shapes, space)
        case ir.Call(fn=fn, args=args):
            return _apply(MAP_OPS[fn], args, reads, shapes, space)
    raise AssertionError(expr)


def _apply(op, args: tuple[ir.Expr, ...], reads: dict[int, tuple], shapes: Mapping[str, int], space: _Space):
    if op.expand is not None:
        return _eval_expr(op.expand(args), reads, shapes, space)
    pairs = [_eval_expr(a, reads, shapes, space) for a in args]
    values = [v for v, _ in pairs]
    if op.absent == "union":
        (lv, lp), (rv, rp) = pairs
        left_alone = union_takes_identity(ir.expr_read_vars(args[1]), ir.expr_read_vars(args[0]))
        right_alone = union_takes_identity(ir.expr_read_vars(args[0]), ir.expr_read_vars(args[1]))
        if left_alone and rp is not None:  # where only the left is present, the right is the identity
            rv = np.where(rp, rv, op.identity)
        if right_alone and lp is not None:
            lv = np.where(lp, lv, op.identity)
        if left_alone and right_alone:
            pres = None if lp is None or rp is None else lp | rp
        else:
            pres = lp if left_alone else rp if right_alone else _and(lp, rp)
        return getattr(np, op.numpy)(lv, rv), pres
    if op.absent == "choice":  # select(c, a, b): absent where c is, or where the chosen one is
        (cv, cp), (_, ap), (_, bp) = pairs
        chosen = None if ap is None and bp is None else np.where(cv != 0, True if ap is None else ap,
                                                                True if bp is None else bp)
        return getattr(np, op.numpy)(cv != 0, values[1], values[2]), _and(cp, chosen)
    pres = None
    for _, p in pairs:
        pres = _and(pres, p)
    return getattr(np, op.numpy)(*values), pres


def _affine_value(aff: ir.Affine, space: _Space, shapes: Mapping[str, int]):
    match aff:
        case ir.AffVar(var=v):
            return space.along(v)
        case ir.AffConst(value=c):
            return np.array(c)
        case ir.AffShape(rank=r):
            return np.array(shapes[r])
        case ir.AffNeg(operand=o):
            return -_affine_value(o, space, shapes)
        case ir.AffBin(op=op, left=l, right=r):
            lv, rv = _affine_value(l, space, shapes), _affine_value(r, space, shapes)
            return lv + rv if op == "+" else lv - rv if op == "-" else lv * rv
    raise AssertionError(aff)


_COMPARE = {"<": np.less, "<=": np.less_equal, "==": np.equal, "!=": np.not_equal,
            ">=": np.greater_equal, ">": np.greater}


def _active(info: StatementInfo, splits: Mapping[str, tuple[str, str]], space: _Space, shapes: Mapping[str, int],
            within: set[str]) -> np.ndarray | None:
    """Filter conjuncts and ragged-tile bounds that mention only variables in `within`."""
    return _and(_filtered(info, space, shapes, within), _ragged(splits, space, shapes, within))


def _filtered(info: StatementInfo, space: _Space, shapes: Mapping[str, int], within: set[str]) -> np.ndarray | None:
    mask = None
    filters = info.statement.filters if isinstance(info.statement, ir.Einsum) else ()
    for cmp in filters:
        used = {v.var for v in ir.affine_vars(cmp.left) + ir.affine_vars(cmp.right)}
        if used <= within:
            ok = _COMPARE[cmp.op](_affine_value(cmp.left, space, shapes), _affine_value(cmp.right, space, shapes))
            mask = _and(mask, ok)
    return mask


def _ragged(splits: Mapping[str, tuple[str, str]], space: _Space, shapes: Mapping[str, int],
            within: set[str]) -> np.ndarray | None:
    mask = None
    for rank, (outer, inner) in splits.items():
        o, i = outer.lower(), inner.lower()
        ragged = shapes[rank] % shapes[inner] != 0
        if ragged and o in within and i in within and o in space.variables and i in space.variables:
            mask = _and(mask, space.along(o) * shapes[inner] + space.along(i) < shapes[rank])
    return mask


def _evaluate_statement(info: StatementInfo, splits: Mapping[str, tuple[str, str]], store: dict[str, _Stored],
                        shapes: Mapping[str, int], restrict: dict[str, np.ndarray],
                        state: frozenset[str] | None = None) -> None:
    """Evaluate one statement; for a recurrence, `state` names the tensors that are not its
    contribution (its own step's and every recurrence's)."""
    sem_vars = info.variables
    coords = {v: restrict[v] if v in restrict else np.arange(shapes[v.upper()]) for v in sem_vars}
    n_kept = len(sem_vars) - len(info.reduced)
    kept = sem_vars[:n_kept]
    all_vars = set(sem_vars)
    op = REDUCE_OPS[info.reduce_op]

    def evaluate_chunk(chunk_coords: dict[str, np.ndarray]):
        space = _Space(sem_vars, chunk_coords)
        reads = {id(r.access): _read(r, store, space, shapes) for r in info.reads}
        value, present = _eval_expr(info.statement.expr, reads, shapes, space)
        present = _and(present, _active(info, splits, space, shapes, all_vars))
        value = np.broadcast_to(value, space.shape)
        return space, value, present

    if not info.reduced:
        space, value, present = evaluate_chunk(coords)
        carry = _carried(info, state, store, space, shapes) if state else None
        if carry is not None:  # a step whose contribution is absent carries the old value
            old = AccessInfo(info.write.access, tuple(
                replace(a, offset=a.offset - 1) if a.kind == "var" and a.offset == 1 else a
                for a in info.write.axes))
            old_value, old_present = _read(old, store, space, shapes)
            value = np.where(carry, old_value, value)
            present = np.where(carry, True if old_present is None else old_present,
                               True if present is None else present)
            present = _and(present, _ragged(splits, space, shapes, all_vars))
        if info.is_init and starts_empty(info.statement.expr):  # nothing folded in yet: absent
            present = np.zeros(space.shape, bool)
        _write(info, store, space, shapes, value, present)
        return
    kept_space = _Space(kept, {v: coords[v] for v in kept})
    lhs_active = _active(info, splits, kept_space, shapes, set(kept))
    fast = _sum_of_products(info, splits, store, shapes, coords)
    if fast is not None:
        _write(info, store, kept_space, shapes, fast, lhs_active)
        return
    total, reached = None, None
    first = info.reduced[0]
    per_coord = max(1, int(np.prod([len(coords[v]) for v in sem_vars if v != first])))
    step = max(1, CHUNK_ELEMENTS // per_coord)
    reduced_axes = tuple(range(n_kept, len(sem_vars)))
    ufunc = getattr(np, op.numpy)
    for start in range(0, len(coords[first]), step):
        chunk = dict(coords)
        chunk[first] = coords[first][start:start + step]
        _, value, present = evaluate_chunk(chunk)
        if present is not None:
            value = np.where(present, value, op.identity)
            hit = np.broadcast_to(present, value.shape).any(axis=reduced_axes)
            reached = hit if reached is None else reached | hit
        elif reached is not None or start == 0:
            reached = np.ones(kept_space.shape, bool)
        part = ufunc.reduce(value, axis=reduced_axes)
        total = part if total is None else ufunc(total, part)
    _write(info, store, kept_space, shapes, np.broadcast_to(total, kept_space.shape), lhs_active,
           reached=None if reached is None or reached.all() else reached)


def _carried(info: StatementInfo, state: frozenset[str], store: dict[str, _Stored], space: _Space,
             shapes: Mapping[str, int]) -> np.ndarray | None:
    """For a recurrence statement, the points whose contribution is absent: a read of a tensor
    not in `state`, or its own filter, leaves them out. None: nowhere."""
    if info.is_init:
        return None
    contribution = _filtered(info, space, shapes, set(info.variables))
    for r in info.reads:
        if r.access.tensor not in state:
            contribution = _and(contribution, _read(r, store, space, shapes)[1])
    return None if contribution is None else ~np.broadcast_to(contribution, space.shape)


def _sum_of_products(info: StatementInfo, splits: Mapping[str, tuple[str, str]], store: dict[str, _Stored],
                     shapes: Mapping[str, int], coords: dict[str, np.ndarray]) -> np.ndarray | None:
    """A sum over products of fully present reads, with no filter: one `np.einsum` call.

    Returns None (use the general path) whenever absent points could matter."""
    stmt = info.statement
    factors = ir.product_factors(stmt.expr)
    if info.reduce_op != "sum" or factors is None or not isinstance(stmt, ir.Einsum) or stmt.filters:
        return None
    space = _Space(info.variables, coords)
    if _active(info, splits, space, shapes, set(info.variables)) is not None:
        return None
    letters = {v: chr(ord("a") + k) for k, v in enumerate(info.variables)}
    operands, subscripts, scale = [], [], 1.0
    for factor in factors:
        if isinstance(factor, ir.Read):
            acc = next(r for r in info.reads if r.access is factor.access)
            value, present = _read(acc, store, space, shapes)
            if present is not None and not present.all():
                return None
            keep = [k for k, n in enumerate(value.shape) if n != 1 or space.shape[k] == 1]
            operands.append(value.reshape([value.shape[k] for k in keep]))
            subscripts.append("".join(letters[info.variables[k]] for k in keep))
        elif isinstance(factor, ir.Num):
            scale *= float(factor.value)
        elif isinstance(factor, ir.ShapeScalar):
            scale *= float(shapes[factor.rank])
    if not operands:
        return None
    kept = info.variables[: len(info.variables) - len(info.reduced)]
    used = set("".join(subscripts))
    out = [v for v in kept if letters[v] in used]  # a kept variable no factor reads is broadcast
    spec = ",".join(subscripts) + "->" + "".join(letters[v] for v in out)
    result = np.einsum(spec, *operands, optimize=True) * scale
    result = result.reshape([len(coords[v]) if v in out else 1 for v in kept])
    return np.broadcast_to(result, tuple(len(coords[v]) for v in kept))


def _write(info: StatementInfo, store: dict[str, _Stored], space: _Space, shapes: Mapping[str, int],
           value: np.ndarray, present: np.ndarray | None, reached: np.ndarray | None = None) -> None:
    """Store a statement's value; absent points read as 0, except a reduction's points that
    `reached` no present point: absent too, they keep the reduction's identity as their value."""
    stored = store[info.name]
    coords, inside = _coordinates(info.write, space, shapes, stored.data.shape)
    assert stored.present is not None
    pres = np.broadcast_to(present if present is not None else True, space.shape)
    now = pres if reached is None else pres & np.broadcast_to(reached, space.shape)
    if inside is None:  # every point of the space lands inside the tensor
        index = tuple(coords)
        stored.data[index] = np.where(pres, value, 0) if present is not None else value
        stored.present[index] = now
        return
    valid = np.broadcast_to(inside, space.shape)
    flat = tuple(np.broadcast_to(c, space.shape)[valid] for c in coords)
    stored.data[flat] = np.where(pres[valid], value[valid], 0)
    stored.present[flat] = now[valid]
