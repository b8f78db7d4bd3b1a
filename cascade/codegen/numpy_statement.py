"""One statement of the NumPy executor generator: its value over a whole tile.

`StatementEmitter.emit_statement` loads each operand's tile (through `stored_view`), computes
the statement's value as one `np.einsum` when it is a plain sum of products with nothing
masked, else as an elementwise expression (`expression`, with operands transposed and broadcast
by `align`) masked by the filters (`affine` turns index arithmetic into coordinate arrays), by
its operands' presence and by the ragged-tile points they do not reach (`ragged_point`), and
reduced over its own tile variables; then hands the value to `emit_write`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace

from ..lang import ir
from ..lang.ops import MAP_OPS, REDUCE_OPS, starts_empty, union_takes_identity
from ..lang.semantics import AccessInfo
from ..mapping.schedule import statement_text
from . import pyast as A
from .numpy_access import AccessEmitter
from .numpy_layout import access_key


@dataclass
class _Operand:
    expr: ast.expr
    vars: list[str]
    present: ast.expr | None = None  # per point, over `vars`
    whole: ast.expr | None = None  # a condition over the statement's tile variables (see `ragged_point`)


class StatementEmitter(AccessEmitter):
    """The value of one statement; see the module docstring."""

    def emit_statement(self, k: int) -> None:
        e = self.out
        info = self.sem.statements[k]
        stmt = info.statement
        e.comment(statement_text(stmt))
        self.canon_k = k
        canon = self.tile_vars(info, k)
        lhs_vars = [v for v in stmt.lhs.variables if v in canon]
        reduced = [v for v in canon if v not in lhs_vars]
        canon = lhs_vars + reduced
        operands: dict[str, _Operand] = {}
        temps: set[str] = set()
        for read in info.reads:
            key = access_key(read.access)
            if key not in operands:
                expr, vars_, present = self.stored_view(read, k)
                operands[key] = _Operand(expr, vars_, present, self.ragged_point(read, canon, k))
                if (k, key) in self.hoisted_reads:
                    expr = operands[key].expr = self.hoisted_reads[(k, key)]
                if not isinstance(expr, ast.Name):
                    temp = self.temporary(f"{read.access.tensor}_tile", temps)
                    e.stmt(A.assign(A.name(temp), expr))
                    operands[key].expr = A.name(temp)
        filters = stmt.filters if isinstance(stmt, ir.Einsum) else ()
        op = REDUCE_OPS[info.reduce_op]
        may_be_absent = any(o.present is not None or o.whole is not None for o in operands.values())
        value, mask, quiet = None, None, False
        if reduced and info.reduce_op == "sum" and not filters and not may_be_absent:
            value = self.einsum(stmt.expr, operands, canon, lhs_vars)
        elif reduced and info.reduce_op == "sum":  # absent factors zeroed: no mask over the whole space
            found = self.masked_einsum(stmt.expr, operands, canon, lhs_vars, filters, k, temps)
            if found is not None:
                value, reached = found
                kept = self.lhs_mask(filters, set(stmt.lhs.variables), canon[: len(lhs_vars)], k)
                mask = self.emit_reduction_presence(kept, reached, lhs_vars, k)
        if value is None:
            value, mask = self.valued(stmt.expr, operands, canon)
            for cmp in filters:
                term = ast.Compare(self.affine(cmp.left, canon, k), [_CMP[cmp.op]()],
                                   [self.affine(cmp.right, canon, k)])
                mask = _both(mask, term)
            if not info.reduced:
                value, mask = self.carry(info, k, operands, canon, filters, value, mask)
            quiet = mask is not None
            if info.is_init and starts_empty(stmt.expr) and info.name in self.may_be_absent:  # nothing folded in yet
                mask = A.const(False)
            if info.reduced:  # over tile variables here, over loop ranks by accumulation (emit_write)
                reached = None
                if mask is not None:  # absent points count as the identity
                    value = A.np_call("where", mask, value, A.const(op.identity))
                    reached = mask
                if reduced:
                    axes = A.tup(*[A.const(len(lhs_vars) + i) for i in range(len(reduced))])
                    value = A.np_call(op.array_fn, value, axis=axes)
                    if reached is not None:  # a reduction over no present point is absent
                        full = A.tup(*[self.extent(v, k) for v in canon])
                        reached = A.np_call("any", A.np_call("broadcast_to", reached, full), axis=axes)
                kept = self.lhs_mask(filters, set(stmt.lhs.variables), canon[: len(lhs_vars)], k)
                mask = self.emit_reduction_presence(kept, reached, lhs_vars, k)
            elif mask is not None:
                e.stmt(A.assign(A.name("present"), A.np_call("broadcast_to", mask,
                                                             A.tup(*[self.extent(v, k) for v in lhs_vars]))))
        covered = {v for o in operands.values() for v in o.vars}
        if any(v not in covered for v in lhs_vars) or not operands:
            value = A.call("_fill", value, A.tup(*[self.extent(v, k) for v in lhs_vars]), A.name("dt"))
        if quiet:  # points the mask discards are computed too (e.g. exp(-inf - -inf)): no warnings from them
            e.raw("with np.errstate(invalid='ignore', divide='ignore', over='ignore'):")
            e.depth += 1
        self.emit_write(info, k, value, has_mask=mask is not None, kept=A.name("kept") if self.kept_named else None)
        self.kept_named = False
        if quiet:
            e.close()

    kept_named = False

    def emit_reduction_presence(self, kept, reached, lhs_vars: list[str], k: int):
        """`present` of a reduction: kept by its left-side filters (`kept`, also what a DRAM output
        keeps as its value) and reaching some present point (`reached`). Returns the mask, or None."""
        e = self.out
        shape = A.tup(*[self.extent(v, k) for v in lhs_vars])
        if kept is not None and reached is not None:
            e.stmt(A.assign(A.name("kept"), A.np_call("broadcast_to", kept, shape)))
            self.kept_named = True
            e.stmt(A.assign(A.name("present"), ast.BinOp(A.name("kept"), ast.BitAnd(), A.np_call(
                "broadcast_to", reached, shape))))
            return A.name("present")
        mask = kept if kept is not None else reached
        if mask is not None:
            e.stmt(A.assign(A.name("present"), A.np_call("broadcast_to", mask, shape)))
            if reached is not None:  # an empty reduction keeps its identity as its value
                e.stmt(A.assign(A.name("kept"), A.const(True)))
                self.kept_named = True
        return mask

    def temporary(self, base: str, taken: set[str]) -> str:
        """A statement-local temporary name: never a name the module uses for anything else."""
        candidate, k = base, 1
        while candidate in self.names.used or candidate in taken:
            k += 1
            candidate = f"{base}{k}"
        taken.add(candidate)
        return candidate

    # ------------------------------------------------------------ masks
    def ragged_point(self, acc: AccessInfo, canon: list[str], k: int) -> ast.expr | None:
        """For a read of a recurrence over the inner part M0 of `split M = M1 * M0` at element c
        of M0 (`last`: c = M0) in tile m1, the condition that the element exists: tile m1 of M
        reaches it (the step m0 = c - 1 ran), `m1 * M0 + c <= M` (over the statement's `canon`
        tile variables when c is one). Beyond the end of a ragged tile the element is absent
        (DESIGN.md section 2), though on chip the recurrence still holds its partial value there."""
        if not self.reads_ragged_point(acc):
            return None
        n = self.names
        inner = self.sem.tensors[acc.access.tensor].iterative
        assert inner is not None
        rank, outer = self.inner_parts[inner]
        axis = next(a for a in acc.axes if a.rank == inner)
        at: ast.expr
        if axis.kind == "last":
            at = A.name(n.ranks[inner])
        elif axis.kind == "const":
            at = A.const(axis.offset)
        else:
            at = self.affine(ir.AffVar(axis.var), canon, k)
            if axis.offset:
                at = A.binop(at, "+", A.const(axis.offset))
        o_axis = next(a for a in acc.axes if a.rank == outer)
        tile: ast.expr
        if o_axis.kind == "last":
            tile = A.binop(A.name(n.ranks[outer]), "-", A.const(1))
        elif o_axis.kind == "const":
            tile = A.const(o_axis.offset)
        else:
            tile = A.name(n.vars[outer])
            if o_axis.offset:
                tile = A.binop(tile, "+", A.const(o_axis.offset))
        start = A.binop(tile, "*", A.name(n.ranks[inner]))
        return ast.Compare(A.binop(start, "+", at), [ast.LtE()], [A.name(n.ranks[rank])])

    def lhs_mask(self, filters, kept: set[str], canon_lhs: list[str], k: int):
        mask = None
        for cmp in filters:
            used = {v.var for v in ir.affine_vars(cmp.left) + ir.affine_vars(cmp.right)}
            if used <= kept:
                term = ast.Compare(self.affine(cmp.left, canon_lhs, k), [_CMP[cmp.op]()],
                                   [self.affine(cmp.right, canon_lhs, k)])
                mask = term if mask is None else ast.BinOp(mask, ast.BitAnd(), term)
        return mask

    # ------------------------------------------------------------ expressions
    def einsum(self, expr: ir.Expr, operands: dict[str, _Operand], canon: list[str], lhs_vars: list[str]):
        factors = ir.product_factors(expr)
        if factors is None:
            return None
        letters: dict[str, str] = {}
        for v in canon:
            letter = v[0] if v[0] not in letters.values() else next(
                c for c in "abcdefghijklmnopqrstuvwxyz" if c not in letters.values())
            letters[v] = letter
        subs, arrays, scalars = [], [], []
        for f in factors:
            if isinstance(f, ir.Read):
                o = operands[access_key(f.access)]
                subs.append("".join(letters[v] for v in o.vars))
                arrays.append(o.expr)
            else:
                scalars.append(self.expression(f, operands, canon))
        if not arrays or any(letters[v] not in "".join(subs) for v in lhs_vars):
            return None  # a left-side variable no factor reads: broadcast by the general path
        spec = ",".join(subs) + "->" + "".join(letters[v] for v in lhs_vars)
        # optimize (BLAS contractions) pays for two or more operands; one operand (a sum or a
        # transposition) goes straight to C, without a per-call path search
        value: ast.expr = (A.np_call("einsum", A.const(spec), *arrays, optimize=A.const(True)) if len(arrays) > 1
                           else A.np_call("einsum", A.const(spec), *arrays))
        for s in scalars:
            value = A.binop(value, "*", s)
        return value

    def masked_einsum(self, expr: ir.Expr, operands: dict[str, _Operand], canon: list[str], lhs_vars: list[str],
                      filters, k: int, temps: set[str]):
        """A sum of products with absent points as one `np.einsum`: each factor is zeroed where
        it is absent (its presence, and every filter over reduced variables, put on a factor
        that reads all of the filter's tile variables), so an absent point adds the sum's
        identity, 0, as the reference's rule says; filters over left-side variables only make
        output points absent (their presence, `lhs_mask`), not the sum. None: the general path
        (a factor with ragged points, or a filter no single factor spans)."""
        factors = ir.product_factors(expr)
        if factors is None or any(o.whole is not None for o in operands.values()):
            return None
        reads = [f for f in factors if isinstance(f, ir.Read)]
        lhs = set(lhs_vars)
        zero: dict[str, ast.expr | None] = {}
        for f in reads:
            key = access_key(f.access)
            zero[key] = _both(zero.get(key), operands[key].present)
        for cmp in filters:
            used = {v.var for v in ir.affine_vars(cmp.left) + ir.affine_vars(cmp.right)} & set(canon)
            if used <= lhs:
                continue
            key = next((access_key(f.access) for f in reads if used <= set(operands[access_key(f.access)].vars)), None)
            if key is None:
                return None
            o = operands[key]
            term = ast.Compare(self.affine(cmp.left, o.vars, k), [_CMP[cmp.op]()], [self.affine(cmp.right, o.vars, k)])
            zero[key] = _both(zero.get(key), term)
        zero = {key: cond for key, cond in zero.items() if cond is not None}
        if len(zero) > 1:
            return None  # where the sum reaches a present point needs the factors' joint mask
        masked = dict(operands)
        reached = None
        for key, cond in zero.items():
            temp = self.temporary(f"{key.split('[')[0]}_present_only", temps)
            o = operands[key]
            shape = A.tup(*[self.extent(v, k) for v in o.vars])
            where = self.temporary(f"{key.split('[')[0]}_where", temps)
            self.out.stmt(A.assign(A.name(where), A.np_call("broadcast_to", cond, shape)))
            self.out.stmt(A.assign(A.name(temp), A.np_call("where", A.name(where), o.expr, A.const(0.0))))
            masked[key] = _Operand(A.name(temp), o.vars)
            summed = [i for i, v in enumerate(o.vars) if v not in lhs]
            rest = [v for v in o.vars if v in lhs]
            reached = A.name(where)
            if summed:
                reached = A.np_call("any", reached, axis=A.tup(*[A.const(i) for i in summed]))
            reached = self.align(reached, rest, lhs_vars)
        value = self.einsum(expr, masked, canon, lhs_vars)
        return None if value is None else (value, reached)

    def valued(self, expr: ir.Expr, operands: dict[str, _Operand], canon: list[str]):
        """(value, presence or None) of an expression over the tile: absent operands merge by the
        operator table's rule (`cascade.lang.ops`), as in the reference evaluator."""
        match expr:
            case ir.Read(access=acc):
                o = operands[access_key(acc)]
                present = self.align(o.present, o.vars, canon) if o.present is not None else None
                return self.align(o.expr, o.vars, canon), _both(present, o.whole)
            case ir.Neg(operand=x):
                value, present = self.valued(x, operands, canon)
                return ast.UnaryOp(ast.USub(), value), present
            case ir.BinOp(op=fn, left=l, right=r) | ir.Call(fn=fn, args=(l, r)) if MAP_OPS[fn].absent == "union":
                op = MAP_OPS[fn]
                (lv, lp), (rv, rp) = self.valued(l, operands, canon), self.valued(r, operands, canon)
                left_alone = union_takes_identity(ir.expr_read_vars(r), ir.expr_read_vars(l))
                right_alone = union_takes_identity(ir.expr_read_vars(l), ir.expr_read_vars(r))
                if left_alone and rp is not None:  # where only the left is present, the right is the identity
                    rv = A.np_call("where", rp, rv, A.const(op.identity))
                if right_alone and lp is not None:
                    lv = A.np_call("where", lp, lv, A.const(op.identity))
                if left_alone and right_alone:
                    present = None if lp is None or rp is None else ast.BinOp(lp, ast.BitOr(), rp)
                else:
                    present = lp if left_alone else rp if right_alone else _both(lp, rp)
                value = A.binop(lv, fn, rv) if op.infix else A.np_call(op.numpy, lv, rv)
                return value, present
            case ir.BinOp(op=fn, left=l, right=r):
                (lv, lp), (rv, rp) = self.valued(l, operands, canon), self.valued(r, operands, canon)
                return A.binop(lv, fn, rv), _both(lp, rp)
            case ir.Call(fn=fn, args=args):
                op = MAP_OPS[fn]
                if op.expand is not None:
                    return self.valued(op.expand(args), operands, canon)
                pairs = [self.valued(a, operands, canon) for a in args]
                if op.absent == "choice" and (pairs[1][1] is not None or pairs[2][1] is not None):
                    (cv, cp), (_, ap), (_, bp) = pairs  # absent where the chosen operand is
                    chosen = A.np_call("where", cv, A.const(True) if ap is None else ap,
                                       A.const(True) if bp is None else bp)
                    return A.np_call(op.numpy, *[v for v, _ in pairs]), _both(cp, chosen)
                present = None
                for _, p in pairs:
                    present = _both(present, p)
                return A.np_call(op.numpy, *[v for v, _ in pairs]), present
        return self.expression(expr, operands, canon), None

    def carry(self, info, k: int, operands: dict[str, _Operand], canon: list[str], filters, value, mask):
        """A recurrence step whose contribution (a read of a tensor outside its recurrence group,
        or its own filter) is absent carries the old value (`cascade.reference._carried`)."""
        tensor = info.name
        iterative = self.sem.tensors[tensor].iterative
        if iterative is None:
            return value, mask
        group = next(s for s in self.sem.steps if k in s.statements)
        members = {self.sem.statements[j].name for j in group.statements}
        contribution = None
        for cmp in filters:
            contribution = _both(contribution, ast.Compare(self.affine(cmp.left, canon, k), [_CMP[cmp.op]()],
                                                           [self.affine(cmp.right, canon, k)]))
        for read in info.reads:
            o = operands[access_key(read.access)]
            if _contributes(self.sem, read.access.tensor, members) and o.present is not None:
                contribution = _both(contribution, self.align(o.present, o.vars, canon))
        if contribution is None:
            return value, mask
        old = AccessInfo(info.write.access, tuple(replace(a, offset=a.offset - 1) if a.rank == iterative else a
                                                  for a in info.write.axes))
        same = next((r for r in info.reads if r.access.tensor == tensor and r.axes == old.axes), None)
        if same is not None:  # the step reads its old value already: no second load
            o = operands[access_key(same.access)]
            old_expr, old_vars, old_present = o.expr, o.vars, o.present
        else:
            old_expr, old_vars, old_present = self.stored_view(old, k)
        value = A.np_call("where", contribution, value, self.align(old_expr, old_vars, canon))
        if old_present is None:
            old_present = A.const(True)
        else:
            old_present = self.align(old_present, old_vars, canon)
        return value, A.np_call("where", contribution, mask if mask is not None else A.const(True), old_present)

    def expression(self, expr: ir.Expr, operands: dict[str, _Operand], canon: list[str]) -> ast.expr:
        match expr:
            case ir.Num(value=v):
                return A.const(float(v))
            case ir.ShapeScalar(rank=r):
                return A.call(ast.Attribute(A.name("dt"), "type", ast.Load()), A.name(self.names.ranks[r]))
            case ir.Read(access=acc):
                o = operands[access_key(acc)]
                return self.align(o.expr, o.vars, canon)
            case ir.Neg(operand=x):
                return ast.UnaryOp(ast.USub(), self.expression(x, operands, canon))
            case ir.BinOp(op=op, left=l, right=r):
                return A.binop(self.expression(l, operands, canon), op, self.expression(r, operands, canon))
            case ir.IndexValue(var=v):
                return self.affine(ir.AffVar(v), canon, self.canon_k)
            case ir.Call(fn=fn, args=args):
                if MAP_OPS[fn].expand is not None:
                    return self.expression(MAP_OPS[fn].expand(args), operands, canon)
                return A.np_call(MAP_OPS[fn].numpy, *[self.expression(a, operands, canon) for a in args])
        raise AssertionError(expr)

    def align(self, expr: ast.expr, have: list[str], canon: list[str]) -> ast.expr:
        order = sorted(range(len(have)), key=lambda i: canon.index(have[i]))
        if order != list(range(len(have))):
            expr = A.np_call("transpose", expr, A.tup(*[A.const(i) for i in order]))
        present = {have[i] for i in order}
        missing = [pos for pos, v in enumerate(canon) if v not in present]
        if missing:
            expr = A.np_call("expand_dims", expr, A.tup(*[A.const(m) for m in missing]))
        return expr

    def affine(self, aff: ir.Affine, canon: list[str], k: int) -> ast.expr:
        match aff:
            case ir.AffVar(var=v):
                if v not in canon:
                    return A.name(self.names.vars[v.upper()])
                lo, hi = self.coordinates(v, k)
                shape = [A.const(-1) if c == v else A.const(1) for c in canon]
                return ast.Call(ast.Attribute(A.np_call("arange", lo, hi), "reshape", ast.Load()), [A.tup(*shape)], [])
            case ir.AffConst(value=c):
                return A.const(c)
            case ir.AffShape(rank=r):
                return A.name(self.names.ranks[r])
            case ir.AffNeg(operand=o):
                return ast.UnaryOp(ast.USub(), self.affine(o, canon, k))
            case ir.AffBin(op=op, left=l, right=r):
                return A.binop(self.affine(l, canon, k), op, self.affine(r, canon, k))
        raise AssertionError(aff)


def _contributes(sem, tensor: str, group: set[str]) -> bool:
    """Is a read of `tensor` part of a recurrence step's contribution (not its state)? A tensor of
    another step that is no recurrence itself."""
    return tensor not in group and sem.tensors[tensor].iterative is None


def _both(a: ast.expr | None, b: ast.expr | None) -> ast.expr | None:
    if a is None:
        return b
    if b is None:
        return a
    return ast.BinOp(a, ast.BitAnd(), b)


_CMP = {"<": ast.Lt, "<=": ast.LtE, "==": ast.Eq, "!=": ast.NotEq, ">=": ast.GtE, ">": ast.Gt}


