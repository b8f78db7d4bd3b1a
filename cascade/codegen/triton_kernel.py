"""One Triton kernel (an `ast.FunctionDef`) for one planned fusion group (`triton_plan`).

The kernel body follows the group's loop tree with grid loops dissolved: each program first
splits `tl.program_id(0)` into its grid ranks' tile indices, then runs the remaining loops
(a recurrence's iterative rank) as `for` loops. Each statement is one block value:

- a sum of a product of two operands over one block rank, with a two-rank result, is `tl.dot`
  (fp32 accumulation; a computed operand meets a loaded low-precision one in that precision);
- anything else is elementwise over at most two block ranks, then `tl.sum`/`tl.max`/`tl.min`;
- points outside a ragged tile or a `where` filter are absent: they count as the reduction's
  identity (a `tl.where` compiled out by the `EVEN_<rank>` flags when every tile is full);
- a recurrence keeps `r_T` (element m) and `r_T_next` (element m+1) loop-carried;
- reads of tensors in DRAM are loads made in the outermost scope whose loops they depend on.

Expressions (maps, rank values, filters' affine forms) are `triton_expr.ExprEmitter`'s; the tile
ranges of a filtered loop `triton_bounds.SegmentEmitter`'s.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ..errors import MappingError
from ..lang import ir
from ..lang.ops import REDUCE_OPS
from ..lang.semantics import AccessInfo, AxisCoord, StatementInfo
from ..mapping.schedule import MappedCascade
from . import triton_ast as T
from .triton_bounds import SegmentEmitter
from .triton_expr import ExprEmitter, absent_identities
from .triton_plan import KernelPlan, walk

_REDUCE_FN = {"sum": "sum", "max": "max", "min": "min"}


@dataclass
class Value:
    var: str
    dims: tuple[str, ...]  # block levels, canonical order
    absent: str | None = None  # name of a boolean block: True where the point is present


@dataclass
class _Scope:
    level: str | None
    body: list


class KernelEmitter(ExprEmitter, SegmentEmitter):
    def __init__(self, mc: MappedCascade, plan: KernelPlan):
        self.mc, self.plan, self.sem = mc, plan, mc.semantics
        self.where = mc.mapping.file or "mapping"
        self.values: dict[str, Value] = {}
        self.params: list[str] = []  # runtime arguments, in order
        self.constexprs: list[str] = []
        self.pointers: list[str] = []  # DRAM tensors, in order
        self.scalars: list[str] = []  # ranks (n_R), grid extents (g_R), loop extents, float shapes
        self.scopes: list[_Scope] = [_Scope(None, [])]
        self.defined: dict[tuple[int, str], str] = {}  # (scope depth, key) -> name
        self.counter = 0
        self.dropped: set[int] = set()
        self.descending: set[str] = set()  # grid ranks whose later tiles run more loop steps  # ids of filters every point of the current tiles passes
        self.dram = {t for t, st in mc.storage.items() if st.dram}
        self.level_rank = {ro.level: ro.rank for ro in plan.roles.values()}
        self.level_extent = {ro.level: ro.extent for ro in plan.roles.values()}
        self.helpers: set[str] = set()  # jit helper functions the kernel calls (triton_exec.HELPERS)
        self.accumulating: dict[str, tuple[str, Value, StatementInfo]] = {}  # tensor -> (loop level, acc, info)
        self.current = ""  # the Einsum being emitted (for error messages)
        self.absent_ids = absent_identities(self.sem)  # tensor -> the identity it holds where absent

    # ------------------------------------------------------------ parameters
    def need(self, kind: str, ident: str) -> str:
        bucket = {"ptr": self.pointers, "scalar": self.scalars, "const": self.constexprs}[kind]
        if ident not in bucket:
            bucket.append(ident)
        return ident

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}_{self.counter}"

    def emit(self, stmt: ast.stmt, depth: int | None = None) -> None:
        self.scopes[-1 if depth is None else depth].body.append(stmt)

    # ------------------------------------------------------------ coordinates
    def fail(self, who: str, why: str) -> None:
        raise MappingError(f"{self.where}: {who}: the Triton backend cannot run this: {why}")

    def even(self, rank: str) -> ast.expr:
        return T.name(self.need("const", f"EVEN_{rank}"))

    def all_even(self, ranks: list[str]) -> ast.expr:
        terms = [self.even(r) for r in ranks]
        return terms[0] if len(terms) == 1 else ast.BoolOp(ast.And(), terms)

    def block(self, level: str) -> ast.expr:
        return T.name(self.need("const", f"BLOCK_{level}"))

    def loop_depth(self, level: str) -> int:
        for d, s in enumerate(self.scopes):
            if s.level == level:
                return d
        self.fail(level, f"{level} is read outside its loop")
        return 0

    def base(self, rank: str) -> tuple[ast.expr, int]:
        """The first coordinate of the current tile of `rank` and the scope depth it needs."""
        plan = self.plan
        if rank in plan.grid:
            return T.name(f"b_{rank}"), 0
        split = self.sem.splits.get(rank)
        if split is not None:
            outer, inner = split
            if outer in plan.grid:
                return T.binop(T.name(f"b_{outer}"), "*", T.const(self.mc.shapes[inner])), 0
            d = self.loop_depth(outer)
            return T.binop(self.loop_index(outer), "*", T.const(self.mc.shapes[inner])), d
        level = next((lv for lv, r in plan.accumulate.items() if r == rank), None)
        if level is not None:  # an accumulation loop steps over the rank's tiles
            d = self.loop_depth(level)
            return T.binop(self.loop_index(level), "*", T.const(plan.grid_span[rank])), d
        return T.const(0), 0

    def loop_index(self, level: str) -> ast.expr:
        """A loop's tile index in the kernel's index type (int64 where a tensor is too big for
        int32 offsets: `INDEX_TYPE`; a cast to the same type is no instruction)."""
        return T.method(T.name(f"i_{level}"), "to", T.name(self.need("const", "INDEX_TYPE")))

    def offsets(self, level: str) -> tuple[str, int]:
        """`o_<level>`: the block of coordinates of the tile level along its whole rank."""
        rank = self.level_rank[level]
        base, depth = self.base(rank)
        key = (depth, f"o_{level}")
        if key not in self.defined:
            arange = T.tl("arange", T.const(0), self.block(level))
            value = arange if isinstance(base, ast.Constant) else T.binop(base, "+", arange)
            self.emit(T.assign(f"o_{level}", value), depth)
            self.defined[key] = f"o_{level}"
        return f"o_{level}", depth

    def valid(self, level: str) -> tuple[ast.expr, int]:
        rank = self.level_rank[level]
        o, depth = self.offsets(level)
        terms = [T.compare(T.name(o), "<", T.name(self.need("scalar", f"n_{rank}")))]
        ext = self.level_extent[level]
        if ext is not None and ext & (ext - 1):
            terms.append(T.compare(T.tl("arange", T.const(0), self.block(level)), "<", T.const(ext)))
        return T.and_all(terms), depth

    def scalar_coord(self, var: str) -> tuple[ast.expr, int]:
        role = self.plan.roles[var]
        if role.kind == "loop" and role.level in self.plan.grid:
            return T.name(f"b_{role.level}"), 0
        if role.kind == "loop":
            return T.name(f"i_{role.level}"), self.loop_depth(role.level)
        return self.base(role.rank)

    # ------------------------------------------------------------ DRAM access
    def pointer(self, acc: AccessInfo, dims: tuple[str, ...], who: str) -> tuple[ast.expr, list[str], int]:
        """Pointers to the block of `acc` laid out over `dims`; the block levels whose validity
        masks the access; the scope depth it needs."""
        tensor = acc.access.tensor
        ptr: ast.expr = T.name(self.need("ptr", f"p_{tensor}"))
        depth, masked = 0, []
        for i, ax in enumerate(acc.axes):
            stride = T.name(self.need("scalar", f"s_{tensor}_{i}"))
            coord, d, level = self.axis_coord(ax, who)
            depth = max(depth, d)
            if level is not None:
                coord = T.expand(coord, dims.index(level), len(dims))
                masked.append(level)
            ptr = T.binop(ptr, "+", T.binop(coord, "*", stride))
        return ptr, masked, depth

    def axis_coord(self, ax: AxisCoord, who: str) -> tuple[ast.expr, int, str | None]:
        if ax.kind == "split":
            role = self.plan.roles[ax.inner]
            if role.kind == "unit":
                c, d = self.scalar_coord(ax.inner)
                return c, d, None
            if role.kind == "loop":  # a fixed split's inner part on the grid: outer * tile + inner
                c, d = self.base(role.rank)
                i, di = self.scalar_coord(ax.inner)
                return T.binop(c, "+", i), max(d, di), None
            o, d = self.offsets(role.level)
            return T.name(o), d, role.level
        if ax.kind == "var":
            role = self.plan.roles[ax.var]
            if role.kind == "tile":
                o, d = self.offsets(role.level)
                coord: ast.expr = T.name(o)
                if ax.rank in (inner for _o, inner in self.sem.splits.values()):
                    coord = T.tl("arange", T.const(0), self.block(role.level))  # an axis of a split tensor
                    d = 0
                if ax.offset:
                    self.fail(who, f"reads {ax.rank} at an offset of a block rank")
                return coord, d, role.level
            c, d = self.scalar_coord(ax.var)
            if ax.rank in self.sem.splits:  # a merged rank addressed through its outer part only
                self.fail(who, f"addresses {ax.rank} by {ax.var} alone")
            return (T.binop(c, "+", T.const(ax.offset)) if ax.offset else c), d, None
        self.fail(who, f"reads a DRAM tensor at a fixed coordinate of {ax.rank} ({ax.kind})")
        raise AssertionError

    def load(self, acc: AccessInfo, dims: tuple[str, ...], who: str, cast: bool) -> Value:
        key = f"load {acc.access} {dims} {cast}"
        ptr, masked, depth = self.pointer(acc, dims, who)
        for d in range(depth, -1, -1):
            if (d, key) in self.defined:
                return Value(self.defined[(d, key)], dims)
        var = self.fresh(f"x_{acc.access.tensor}")
        plain = T.tl("load", ptr)
        ranks = list(dict.fromkeys(self.level_rank[lv] for lv in masked))
        if masked:
            masks = []
            for lv in masked:
                m, dm = self.valid(lv)
                depth = max(depth, dm)
                masks.append(T.expand(m, dims.index(lv), len(dims)))
            guarded = T.tl("load", ptr, mask=T.and_all(masks), other=T.const(0.0))
            cond = self.all_even(ranks)
            body = [T.if_(cond, [T.assign(var, plain)], [T.assign(var, guarded)])]
        else:
            body = [T.assign(var, plain)]
        if cast:
            body.append(T.assign(var, T.method(T.name(var), "to", T.attr("tl", "float32"))))
        for b in body:
            self.emit(b, depth)
        self.defined[(depth, key)] = var
        return Value(var, dims)

    def store(self, info: StatementInfo, value: Value) -> None:
        acc = info.write
        ptr, masked, _ = self.pointer(acc, value.dims, info.name)
        tensor = acc.access.tensor
        expr: ast.expr = T.name(value.var)
        if value.absent:
            expr = T.tl("where", T.name(value.absent), expr, T.const(0.0))
        expr = T.method(expr, "to", T.attr(f"p_{tensor}", "dtype", "element_ty"))
        if not masked:
            self.emit(ast.Expr(T.tl("store", ptr, expr)))
            return
        masks = [T.expand(self.valid(lv)[0], value.dims.index(lv), len(value.dims)) for lv in masked]
        ranks = list(dict.fromkeys(self.level_rank[lv] for lv in masked))
        self.emit(T.if_(self.all_even(ranks), [ast.Expr(T.tl("store", ptr, expr))],
                        [ast.Expr(T.tl("store", ptr, expr, mask=T.and_all(masks)))]))

    # ------------------------------------------------------------ statements
    def dims_of(self, variables) -> tuple[str, ...]:
        levels = {self.plan.roles[v].level for v in variables if self.plan.roles[v].kind == "tile"}
        return tuple(lv for lv in self.plan.order if lv in levels)

    def read(self, acc: AccessInfo, who: str, dims: tuple[str, ...] | None, cast: bool = True) -> Value:
        """An operand: an on-chip value, or a load laid out over `dims` (default canonical)."""
        tensor = acc.access.tensor
        info = self.sem.tensors[tensor]
        it = info.iterative
        if tensor in self.accumulating:
            self.fail(who, f"reads {tensor} inside the loop {self.accumulating[tensor][0]} that is still "
                           f"accumulating it: give {who} its own fusion group or leave the reduced rank whole")
        if tensor in self.values or it is not None and tensor + "@" in self.values:
            if it is not None:
                ax = next(a for a in acc.axes if a.rank == it)
                if ax.kind == "last" or (ax.kind == "var" and ax.offset == 0):
                    return self.values[tensor + "@"]
                if ax.kind == "var" and ax.offset == 1 and tensor + "@next" in self.values:
                    return self.values[tensor + "@next"]
                self.fail(who, f"reads recurrence {tensor} at {ax.kind} {ax.offset} of {it}")
            return self.values[tensor]
        if tensor not in self.dram:
            self.fail(who, f"reads {tensor} before this kernel computes it")
        own = self.dims_of([v for v in acc.access.variables if v in self.plan.roles])
        return self.load(acc, dims if dims is not None else own, who, cast)

    def emit_statement(self, k: int) -> None:
        info = self.sem.statements[k]
        stmt = info.statement
        tensor = info.name
        self.current = tensor
        it = self.sem.tensors[tensor].iterative
        lhs_vars = [v for v in stmt.lhs.variables if v in self.plan.roles]
        if it is not None:
            lhs_vars = [v for v in lhs_vars if self.plan.roles[v].level != it]
        out_dims = self.dims_of(lhs_vars)
        for v in info.reduced:
            if self.plan.roles[v].kind == "loop":
                self.fail(tensor, f"reduces over {v}, a loop of the kernel")
        red_dims = self.dims_of(info.reduced)
        value = None
        filters = tuple(c for c in stmt.filters if id(c) not in self.dropped) if isinstance(stmt, ir.Einsum) else ()
        lhs_only = all({v.var for v in ir.affine_vars(c.left) + ir.affine_vars(c.right)} <= set(stmt.lhs.variables)
                       for c in filters)
        if info.reduce_op == "sum" and len(red_dims) == 1 and len(out_dims) == 2 and lhs_only:
            value = self.dot(info, out_dims, red_dims[0])
            if value is not None and filters:
                terms = [T.compare(self.affine(c.left, out_dims), c.op, self.affine(c.right, out_dims)) for c in filters]
                mvar = self.fresh("present")
                self.emit(T.assign(mvar, T.tl("broadcast_to", T.and_all(terms),
                                              ast.List([self.block(d) for d in out_dims], ast.Load()))))
                value.absent = mvar
        if value is None:
            value = self.elementwise(info, out_dims, red_dims, filters)
        level = self.accumulation_level(info)
        if level is not None:
            if it is not None:
                self.fail(tensor, f"a recurrence reduces over the accumulation loop {level}")
            self.accumulate(info, value, level)
            return
        if it is not None:
            ax = info.write.axes[[a.rank for a in info.write.axes].index(it)]
            if info.is_init:
                target = tensor + "@"
            elif ax.kind == "var" and ax.offset == 1:
                target = tensor + "@next"
            else:
                self.fail(tensor, f"writes recurrence {tensor} at other than {ax.var}+1")
            var = f"r_{tensor}" if target.endswith("@") else f"r_{tensor}_next"
            self.emit(T.assign(var, T.name(value.var)))
            self.values[target] = Value(var, value.dims)
            return
        self.values[tensor] = value
        if tensor in self.dram:
            self.store(info, value)

    def accumulation_level(self, info: StatementInfo) -> str | None:
        """The enclosing accumulation loop over a rank this statement reduces, if any."""
        levels = {self.plan.roles[v].rank for v in info.reduced}
        open_levels = {s.level for s in self.scopes}
        for level, rank in self.plan.accumulate.items():
            if rank in levels and level in open_levels:
                return level
        return None

    def accumulate(self, info: StatementInfo, value: Value, level: str) -> None:
        """The tile's partial result combined into a register accumulator made before the loop;
        the loop's end (`loop`) makes it the statement's value and stores it."""
        op = info.reduce_op
        if op not in _REDUCE_FN:
            self.fail(info.name, f"reduction {op} cannot accumulate across the loop {level}")
        ident = T.float_const(REDUCE_OPS[op].identity)
        acc = f"acc_{info.name}"
        shape = ast.List([self.block(d) for d in value.dims], ast.Load())
        self.emit(T.assign(acc, T.tl("full", shape, ident, T.attr("tl", "float32"))), self.loop_depth(level) - 1)
        part: ast.expr = T.name(value.var)
        if value.absent:
            part = T.tl("where", T.name(value.absent), part, ident)
        combined = T.binop(T.name(acc), "+", part) if op == "sum" else T.tl(
            "maximum" if op == "max" else "minimum", T.name(acc), part)
        self.emit(T.assign(acc, combined))
        self.accumulating[info.name] = (level, Value(acc, value.dims), info)

    def dot(self, info: StatementInfo, out_dims: tuple[str, ...], k: str) -> Value | None:
        factors = ir.product_factors(info.statement.expr)
        if factors is None:
            return None
        reads = [f for f in factors if isinstance(f, ir.Read)]
        if len(reads) != 2:
            return None
        accs = [next(a for a in info.reads if a.access == r.access) for r in reads]
        dims = [set(self.dims_of([v for v in a.access.variables if v in self.plan.roles])) for a in accs]
        if dims[0] == {out_dims[1], k} and dims[1] == {out_dims[0], k}:
            accs, dims = accs[::-1], dims[::-1]
        if dims[0] != {out_dims[0], k} or dims[1] != {out_dims[1], k}:
            return None
        lhs = self.read(accs[0], info.name, (out_dims[0], k), cast=False)
        rhs = self.read(accs[1], info.name, (k, out_dims[1]), cast=False)
        a = self.orient(lhs, (out_dims[0], k), k)
        b = self.orient(rhs, (k, out_dims[1]), k)
        # inputs arrive in the caller's dtype (bf16, fp32); every computed value is fp32
        a_loaded = self.sem.tensors[accs[0].access.tensor].kind == "input"
        b_loaded = self.sem.tensors[accs[1].access.tensor].kind == "input"
        if b_loaded and not a_loaded:
            a = T.method(a, "to", T.attr(rhs.var, "dtype"))
        elif a_loaded and not b_loaded:
            b = T.method(b, "to", T.attr(lhs.var, "dtype"))
        value: ast.expr = T.tl("dot", a, b, out_dtype=T.attr("tl", "float32"),
                               input_precision=T.name(self.need("const", "DOT_PRECISION")))
        for f in factors:
            if not isinstance(f, ir.Read):
                value = T.binop(value, "*", self.expr(f, {}, out_dims))
        var = self.fresh(f"v_{info.name}")
        self.emit(T.assign(var, value))
        return Value(var, out_dims)

    def orient(self, v: Value, want: tuple[str, str], k: str) -> ast.expr:
        """`v` as a block over `want`, with absent points along `k` set to 0."""
        expr: ast.expr = T.name(v.var)
        masks = []
        if v.absent:
            masks.append(T.name(v.absent))
        rank = self.level_rank[k]
        if masks:
            expr = T.tl("where", T.and_all(masks), expr, T.const(0.0))
        if tuple(v.dims) != want:
            expr = T.tl("trans", expr)
        if k in v.dims and not self.is_load(v):
            m, _ = self.valid(k)
            holder = self.fresh("z")
            self.emit(T.assign(holder, expr))
            masked = T.tl("where", T.expand(m, want.index(k), 2), T.name(holder), T.const(0.0))
            self.emit(T.if_(ast.UnaryOp(ast.Not(), self.even(rank)), [T.assign(holder, masked)]))
            expr = T.name(holder)
        return expr

    def is_load(self, v: Value) -> bool:
        return v.var.startswith("x_")

    def elementwise(self, info: StatementInfo, out_dims, red_dims, filters) -> Value:
        canon = tuple(out_dims) + tuple(red_dims)
        if len(canon) > 2:
            self.fail(info.name, f"its value spans {len(canon)} block ranks ({', '.join(canon)}); at most 2 "
                                 "are supported: make a rank a loop or partition it to tiles of 1")
        operands: dict[str, tuple[ast.expr, str | None]] = {}
        absent, covered = [], set()
        for acc in info.reads:
            key = str(acc.access)
            if key in operands:
                continue
            v = self.read(acc, info.name, None)
            expr: ast.expr = T.name(v.var)
            if len(v.dims) == 2 and tuple(canon.index(d) for d in v.dims) == (1, 0):
                expr = T.tl("trans", expr)
            have = [d for d in canon if d in v.dims]
            covered.update(have)
            if len(canon) == 2 and len(have) == 1:
                expr = T.expand(expr, canon.index(have[0]), 2)
            operands[key] = (expr, None)
            if v.absent:
                absent.append(self.align(T.name(v.absent), v.dims, canon))
        value = self.expr(info.statement.expr, operands, canon)
        masks = list(absent)
        for cmp in filters:
            masks.append(T.compare(self.affine(cmp.left, canon), cmp.op, self.affine(cmp.right, canon)))
        shape = [self.block(d) for d in canon]
        var = self.fresh(f"v_{info.name}")
        if shape and covered != set(canon):
            value = T.binop(value, "+", T.tl("zeros", ast.List(shape, ast.Load()), T.attr("tl", "float32")))
        self.emit(T.assign(var, value))
        mask = T.and_all(masks)
        if red_dims:
            op = REDUCE_OPS[info.reduce_op]
            if info.reduce_op not in _REDUCE_FN:
                self.fail(info.name, f"reduction {info.reduce_op} has no Triton block reduction")
            ident = T.float_const(op.identity)
            if mask is not None:
                self.emit(T.assign(var, T.tl("where", mask, T.name(var), ident)))
            for d in red_dims:
                m, _ = self.valid(d)
                masked = T.tl("where", T.expand(m, canon.index(d), len(canon)), T.name(var), ident)
                self.emit(T.if_(ast.UnaryOp(ast.Not(), self.even(self.level_rank[d])), [T.assign(var, masked)]))
            for d in reversed(red_dims):
                self.emit(T.assign(var, T.tl(_REDUCE_FN[info.reduce_op], T.name(var), axis=T.const(canon.index(d)))))
            return Value(var, tuple(out_dims))
        if mask is not None:
            mvar = self.fresh("present")
            self.emit(T.assign(mvar, T.tl("broadcast_to", mask, ast.List(shape, ast.Load()))
                               if shape else mask))
            return Value(var, tuple(out_dims), mvar)
        return Value(var, tuple(out_dims))

    # ------------------------------------------------------------ the kernel
    def build(self) -> ast.FunctionDef:
        plan = self.plan
        self.body(walk(plan.group.tree, self.grid_levels()))
        # the program index -> each grid rank's tile; programs with the most live tiles first
        pid, head = "pid", [T.assign("pid", T.tl("program_id", T.const(0)))]
        for rank in reversed(plan.grid):
            g = T.name(self.need("scalar", f"g_{rank}"))
            t: ast.expr = T.binop(T.name(pid), "%", g)
            if rank in self.descending:
                t = T.binop(T.binop(g, "-", T.const(1)), "-", t)
            # tile indices in int32 (fewer registers in every address) unless a tensor is too big
            head.append(T.assign(f"t_{rank}", T.method(t, "to", T.name(self.need("const", "INDEX_TYPE")))))
            head.append(T.assign(pid, T.binop(T.name(pid), "//", g)))
            head.append(T.assign(f"b_{rank}", T.binop(T.name(f"t_{rank}"), "*", T.const(plan.grid_span[rank]))))
        self.scopes[0].body[:0] = head
        for level in plan.order:
            self.need("const", f"BLOCK_{level}")
        args = [*self.pointers, *self.scalars]
        arguments = ast.arguments(posonlyargs=[], args=[ast.arg(a) for a in args] +
                                  [ast.arg(c, annotation=T.attr("tl", "constexpr")) for c in self.constexprs],
                                  kwonlyargs=[], kw_defaults=[], defaults=[])
        fn = ast.FunctionDef(plan.name, arguments, self.scopes[0].body, [T.attr("triton", "jit")], None,
                             lineno=0, type_params=[])
        return fn

    def grid_levels(self) -> set[str]:
        out = set()
        for level in self.plan.group.loop_ranks:
            if level not in self.plan.loops:
                out.add(level)
        return out

    def body(self, nodes) -> None:
        for node in nodes:
            if node[0] == "leaf":
                self.emit_statement(node[1])
                continue
            _, level, inner = node
            split_of = next((r for r, (o, _i) in self.sem.splits.items() if o == level), None)
            if split_of is None and level in self.plan.accumulate:
                steps = T.name(self.need("scalar", f"g_{self.plan.accumulate[level]}"))
                self.loop(level, T.const(0), steps, inner)
                continue
            if split_of is None:
                self.fail(level, "kernel loops run over the outer part of a cascade split only")
            extent = T.name(self.need("scalar", f"n_{level}"))
            segments = self.segments(level, split_of, inner)
            if segments is None:
                self.loop(level, T.const(0), extent, inner)
                continue
            lo, a, b, hi, droppable, lower, upper = segments
            if lower:  # no filter bounds the tiles from below: [lo, a) is always empty, so no loop
                self.loop(level, lo, a, inner)
            self.dropped = droppable
            self.loop(level, a, b, inner)
            self.dropped = set()
            if upper:
                self.loop(level, b, hi, inner)

    def loop(self, level: str, lo: ast.expr, hi: ast.expr, inner) -> None:
        self.scopes.append(_Scope(level, []))
        before = {k: v for k, v in self.values.items()}
        self.body(inner)
        for key, v in list(self.values.items()):
            if key.endswith("@next"):
                carried = self.values[key[:-4]]
                self.emit(T.assign(carried.var, T.name(v.var)))
                del self.values[key]
        scope = self.scopes.pop()
        self.defined = {k: v for k, v in self.defined.items() if k[0] < len(self.scopes)}
        self.emit(T.for_range(f"i_{level}", lo, scope.body, hi))
        self.values = {k: v for k, v in self.values.items() if k in before or not self.inside(k)}
        for tensor, (lv, acc, info) in list(self.accumulating.items()):
            if lv == level:  # complete now: the statement's value, stored after the loop
                del self.accumulating[tensor]
                self.values[tensor] = acc
                if tensor in self.dram:
                    self.store(info, acc)

    def inside(self, key: str) -> bool:
        """Values computed inside a loop that ended are gone unless they are loop-carried."""
        return not key.endswith("@")


def emit_kernel(mc: MappedCascade, plan: KernelPlan) -> KernelEmitter:
    em = KernelEmitter(mc, plan)
    em.fn = em.build()  # type: ignore[attr-defined]
    return em
