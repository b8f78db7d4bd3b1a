"""Plans -> the tiled cascade: `split R = R1 * R0`, local reductions per tile, running values
with `init`, corrections shared per stabiliser, then the final values and the statements that
must wait for them (a second pass, when the lower bound is 2).

Names follow FuseMax's where the structure matches: a reduction GM or SD gets local `LM`/`SLD`,
running `RM`/`RD`, scaled previous `SPD`, the correction of stabiliser RM is `PRM`, a stream SN
evaluated at the new running values is `SLN`, and a deferred numerator is named after its atoms
(SN * V -> `SNV`, so `SLNV`, `SPNV`, `RNV`). A clash gets a numeric suffix.
"""

from __future__ import annotations

from math import comb

import sympy as sp

from ..lang import ir
from .algebra import NotAlgebraic, to_ir
from .roles import Refusal, Roles, call_mapping, map_index_values, rename_access, rename_compare, rename_expr
from ..lang.ops import REDUCE_OPS
from ..lang.show import show_compare
from .masks import guarded_value, presence
from .rules import Plan, component_symbol
from .shift import MU, MU_F, MU_NEW


def _stem(name: str) -> str:
    return name[1:] if len(name) > 1 and name[0] in "GS" else name


class Emitter:
    def __init__(self, roles: Roles, plans: dict[str, Plan], tile: int, guards: dict[str, list[ir.Compare]],
                 tiles: dict[str, list[ir.Compare]] | None = None):
        self.roles, self.plans, self.tile, self.guards = roles, plans, tile, guards
        self.tiles = tiles or {}  # per reduction, the filters of a non-empty tile (masks.tile_filter)
        c = roles.cascade
        self.r, self.r1, self.r0 = roles.rank, roles.rank + "1", roles.rank + "0"
        self.v, self.v1, self.v0 = roles.var, self.r1.lower(), self.r0.lower()
        self.taken = {d.name for d in c.inputs} | set(roles.writer)
        self.out: list[ir.Statement] = []
        self.local_stream: dict[str, str] = {}
        self.corrections: dict[tuple, tuple[str, str, int]] = {}
        self.running: dict[str, list[tuple[str, int]]] = {}  # Z -> per component (tensor, pos)
        self.named: set[str] = set()
        self.centres: dict[str, tuple[str, int]] = {}  # R2: the running centre per reduction

    # ---------------------------------------------------------------- names and indices
    def fresh(self, hint: str) -> str:
        name, k = hint, 2
        while name in self.taken:
            name, k = f"{hint}{k}", k + 1
        self.taken.add(name)
        return name

    def split_access(self, acc: ir.Access) -> ir.Access:
        out: list[ir.Index] = []
        for idx in acc.indices:
            if isinstance(idx, ir.VarIndex) and idx.var == self.v:
                out += [ir.VarIndex(self.v1), ir.VarIndex(self.v0)]
            else:
                out.append(idx)
        return ir.Access(acc.tensor, tuple(out))

    def tiled_value(self) -> ir.Expr:
        """The coordinate of r in the tiled form, as a value: `m1 * M0 + m0`."""
        return ir.BinOp("+", ir.BinOp("*", ir.IndexValue(self.v1), ir.ShapeScalar(self.r0)), ir.IndexValue(self.v0))

    def tiled_expr(self, expr: ir.Expr) -> ir.Expr:
        return map_index_values(expr, lambda iv: self.tiled_value() if iv.var == self.v else iv)

    def tiled(self, cmp: ir.Compare) -> ir.Compare:
        point = ir.AffBin("+", ir.AffBin("*", ir.AffVar(self.v1), ir.AffShape(self.r0)), ir.AffVar(self.v0))
        return rename_compare(cmp, {self.v: point})

    def position(self, name: str) -> int:
        stmt = self.roles.writer[name]
        for acc in ir.expr_reads(stmt.expr):
            for k, idx in enumerate(acc.indices):
                if isinstance(idx, ir.VarIndex) and idx.var == self.v:
                    return min(k, len(stmt.lhs.indices))
        return 0

    @staticmethod
    def at(tensor: str, indices: tuple[ir.Index, ...], pos: int, step: ir.Index) -> ir.Access:
        return ir.Access(tensor, indices[:pos] + (step,) + indices[pos:])

    def step_index(self, when: str) -> ir.Index:
        return {"old": ir.VarIndex(self.v1), "new": ir.VarIndex(self.v1, 1), "last": ir.LastIndex(self.r1),
                "zero": ir.ConstIndex(0)}[when]

    def running_read(self, name: str, acc: ir.Access, when: str, k: int = 0) -> ir.Read:
        tensor, pos = self.running[name][k]
        return ir.Read(self.at(tensor, acc.indices, pos, self.step_index(when)))

    # ---------------------------------------------------------------- pass 1
    def emit_local_stream(self, name: str) -> str:
        """A stream that reads stabilisers, evaluated at their new running values."""
        if name in self.local_stream:
            return self.local_stream[name]
        stmt = self.roles.writer[name]
        expr = self.pass1_expr(stmt.expr)
        new = self.fresh("SL" + _stem(name))
        self.out.append(ir.Einsum(self.split_access(ir.Access(new, stmt.lhs.indices)), expr, stmt.reduction,
                                  tuple(self.tiled(c) for c in stmt.filters)))
        self.local_stream[name] = new
        return new

    def pass1_expr(self, expr: ir.Expr) -> ir.Expr:
        roles = self.roles

        def read(e: ir.Read) -> ir.Expr:
            a = e.access
            kind = roles.kind[a.tensor]
            if kind == "full":
                if not roles.is_stabiliser(a.tensor):
                    raise Refusal(a.span, f"{a.tensor} is read inside the pass before it is complete")
                return self.running_read(a.tensor, a, "new")
            if kind == "stream" and roles.deps[a.tensor]:
                return ir.Read(self.split_access(ir.Access(self.emit_local_stream(a.tensor), a.indices)))
            if kind in ("stream", "input-stream"):
                return ir.Read(self.split_access(a))
            return e

        return self.tiled_expr(ir.map_reads(expr, read))

    def emit_components(self, name: str) -> None:
        plan = self.plans[name]
        if plan.shift is not None:
            return self.emit_shift(name)
        stmt = self.roles.writer[name]
        pos = self.position(name)
        o = stmt.lhs.indices
        syms = plan.symbols
        others = [v for v in (stmt.reduction.variables if stmt.reduction else
                              _reduced(stmt)) if v != self.v]
        self.running[name] = []
        for k, comp in enumerate(plan.components):
            if comp.ir_body is None and _atom_free(comp.body, syms):
                if comp.op == "sum" and (plan.filters or _has_filters(self.roles, name)):
                    self.running[name].append((self.emit_count(name, pos), pos))
                else:
                    self.running[name].append(("", pos))
                continue
            if comp.ir_body is None and not syms.tensors(syms.of_role(comp.body, "x")):
                raise Refusal(stmt.span, f"{name}: the term {comp.body} varies along {self.v} only through its "
                                         f"coordinate (sympy reduced the reads away), so no tile reads it; 2 passes kept")
            read_of = {}
            for sym, (role, acc) in syms.table.items():
                if role == "x":
                    read_of[sym] = ir.Read(self.split_access(ir.Access(self.atom_tensor(acc.tensor), acc.indices)))
                elif role == "r":
                    read_of[sym] = self.running_read(acc.tensor, acc, "new")
                elif role == "ix":
                    read_of[sym] = self.tiled_value()
                elif role == "iu":
                    read_of[sym] = acc
                else:
                    read_of[sym] = ir.Read(acc)
            body = self.pass1_expr(comp.ir_body) if comp.ir_body is not None else to_ir(comp.body, read_of)
            single = len(plan.components) == 1
            if plan.rule in ("D1+R1", "D1") and single:
                hint_stem = "".join(_stem(t) for t in _atom_names(self.roles, name))
            else:
                hint_stem = _stem(name) + ("" if single else f"_{k}")
            if comp.correction is not None:
                local, running, scaled = ("SL" + hint_stem, "R" + hint_stem, "SP" + hint_stem)
            else:
                local, running, scaled = ("L" + hint_stem, "R" + hint_stem, "")
            red_vars = tuple(others) + (self.v0,)
            reduction = None if comp.op == "sum" else ir.Reduction(comp.op, red_vars)
            lname = self.fresh(local)
            own = plan.filters if plan.rule != "P" else list(stmt.filters)
            needed = {show_compare(c) for c in presence(self.roles, name)[0]}
            if any(show_compare(c) not in needed for c in own):
                raise Refusal(stmt.span, f"{name}: a filter of a statement inlined into its body does not hold at "
                                         "every point of the body (a union with an unfiltered term); 2 passes kept")
            own = own + self.points_of(name, comp, own)
            filters = tuple(self.tiled(c) for c in own)
            filters += tuple(c for c in self.tiles.get(name, ()) if c not in filters)
            self.out.append(ir.Einsum(self.at(lname, o, pos, ir.VarIndex(self.v1)), body, reduction, filters))
            rname = self.fresh(running)
            self.running[name].append((rname, pos))
            from ..lang.ops import REDUCE_OPS

            self.out.append(ir.Init(self.at(rname, o, pos, ir.ConstIndex(0)), ir.Num(REDUCE_OPS[comp.op].identity)))
            prev = ir.Read(self.at(rname, o, pos, ir.VarIndex(self.v1)))
            local_read = ir.Read(self.at(lname, o, pos, ir.VarIndex(self.v1)))
            if comp.correction is not None:
                corr = self.correction(plan, comp.correction, syms)
                sname = self.fresh(scaled)
                self.out.append(ir.Einsum(self.at(sname, o, pos, ir.VarIndex(self.v1)), ir.BinOp("*", corr, prev)))
                value: ir.Expr = ir.BinOp("+", ir.Read(self.at(sname, o, pos, ir.VarIndex(self.v1))), local_read)
            elif comp.op in ("max", "min"):
                value = ir.Call(comp.op, (prev, local_read))
            else:
                value = ir.BinOp("+" if comp.op == "sum" else "*", prev, local_read)
            self.out.append(ir.Einsum(self.at(rname, o, pos, ir.VarIndex(self.v1, 1)), value))

    def points_of(self, name: str, comp, own: list[ir.Compare]) -> list[ir.Compare]:
        """The filters a component's local reduction needs so that it counts the original body's
        points: none when one of its reads is present at exactly those points (SN * V of causal
        attention), else the body's conditions (a term GM * Y split off Y * (XF + GM) would
        otherwise count Y where XF is absent)."""
        from .masks import expr_presence

        if comp.ir_body is not None:
            return []
        conds, exact = presence(self.roles, name)
        key = (tuple(sorted({show_compare(c) for c in conds})), exact)
        syms = self.plans[name].symbols
        original = {sym: (ir.Read(acc) if isinstance(acc, ir.Access) else acc) for sym, (_, acc) in syms.table.items()}
        try:
            term = to_ir(comp.body, original)
        except NotAlgebraic:
            term = None
        if key == ((), True) or (term is not None and expr_presence(self.roles, term) == key):
            return []
        if not exact:
            raise Refusal(self.roles.writer[name].span, f"{name}: a separated term would count points the body "
                                                        "does not have, and its points are not given by its "
                                                        "filters exactly; 2 passes kept")
        have = {show_compare(c) for c in own}
        return [c for c in conds if show_compare(c) not in have]

    def emit_count(self, name: str, pos: int) -> str:
        """The running number of points of a filtered fiber (a constant term's sum is the constant
        times it): `1 + 0 * x` over a read x whose points are the body's (every read along r
        present at the same points, exactly where its filters hold)."""
        from .masks import atom_presence

        plan, stmt = self.plans[name], self.roles.writer[name]
        atoms = [a for comp in plan.components for a in plan.symbols.tensors(plan.symbols.of_role(comp.body, "x"))]
        keys = {atom_presence(self.roles, a) for a in atoms}
        if not atoms or len(keys) != 1 or not next(iter(keys))[1]:
            raise Refusal(stmt.span, f"{name}: a constant term needs the number of points of the filtered fiber, "
                                     "and no read of the body is present at exactly those points; 2 passes kept")
        x = ir.Read(self.split_access(ir.Access(self.atom_tensor(atoms[0].tensor), atoms[0].indices)))
        filters = tuple(self.tiled(c) for c in plan.filters)
        filters += tuple(c for c in self.tiles.get(name, ()) if c not in filters)
        o = stmt.lhs.indices
        lname, rname = self.fresh("LN"), self.fresh("RN")
        one = ir.BinOp("+", ir.Num(1.0), ir.BinOp("*", ir.Num(0.0), x))
        self.out.append(ir.Einsum(self.at(lname, o, pos, ir.VarIndex(self.v1)), one, None, filters))
        self.out.append(ir.Init(self.at(rname, o, pos, ir.ConstIndex(0)), ir.Num(0.0)))
        self.out.append(ir.Einsum(self.at(rname, o, pos, ir.VarIndex(self.v1, 1)),
                                  ir.BinOp("+", ir.Read(self.at(rname, o, pos, ir.VarIndex(self.v1))),
                                           ir.Read(self.at(lname, o, pos, ir.VarIndex(self.v1))))))
        return rname

    def emit_shift(self, name: str) -> None:
        """R2 (`transform.shift`): running count, sum and central moments about the running mean."""
        plan = self.plans[name]
        shift = plan.shift
        stmt = self.roles.writer[name]
        pos, o = self.position(name), stmt.lhs.indices
        filters = tuple(self.tiled(c) for c in presence(self.roles, name)[0])
        filters += tuple(c for c in self.tiles.get(name, ()) if c not in filters)
        acc = plan.symbols.table[shift.atom][1]
        x = sp.Symbol("__x", real=True)
        x_read = ir.Read(self.split_access(ir.Access(self.atom_tensor(acc.tensor), acc.indices)))
        stem = _stem(name)
        step, old, new = ir.VarIndex(self.v1), ir.VarIndex(self.v1), ir.VarIndex(self.v1, 1)

        def running(local_hint: str, run_hint: str, body: ir.Expr, update) -> str:
            lname, rname = self.fresh(local_hint), self.fresh(run_hint)
            self.out.append(ir.Einsum(self.at(lname, o, pos, step), body, None, filters))
            self.out.append(ir.Init(self.at(rname, o, pos, ir.ConstIndex(0)), ir.Num(0.0)))
            local = ir.Read(self.at(lname, o, pos, step))
            self.out.append(ir.Einsum(self.at(rname, o, pos, new), update(ir.Read(self.at(rname, o, pos, old)), local)))
            return rname

        def add(prev, local):
            return ir.BinOp("+", prev, local)

        # a count of the points where x is present: 1 + 0 * x is absent exactly where x is
        one = ir.BinOp("+", ir.Num(1.0), ir.BinOp("*", ir.Num(0.0), x_read))
        if shift.count_producer is not None:
            count = self.running[shift.count_producer][0][0]
        else:
            count = running("LN", "RN", one, add)
        self.running[name] = [(count, pos)]
        if shift.sum_producer is not None:
            self.running[name].append(self.running[shift.sum_producer][0])
        else:
            total = running("LX", "RX", x_read, add)
            self.running[name].append((total, pos))
        sum_name = self.running[name][1][0]

        def mean(when: ir.Index) -> ir.Expr:
            n = ir.Read(self.at(count, o, pos, when))
            return ir.BinOp("/", ir.Read(self.at(sum_name, o, pos, when)), ir.Call("max", (n, ir.Num(1.0))))

        # the centre is stored once per step and read back, so every moment and the final value
        # use the same rounded centre (recomputing it could round differently: float32 at 1e4)
        centre = self.fresh("RMU")
        self.out.append(ir.Init(self.at(centre, o, pos, ir.ConstIndex(0)), ir.Num(0.0)))
        self.out.append(ir.Einsum(self.at(centre, o, pos, new), mean(new)))
        self.centres[name] = (centre, pos)
        read_of = {x: x_read, MU: ir.Read(self.at(centre, o, pos, old)),
                   MU_NEW: ir.Read(self.at(centre, o, pos, new))}
        moments = {0: count}
        for j in shift.moments:
            body = to_ir((x - MU_NEW) ** j, read_of)

            def update(prev, local, j=j):
                repair = sum(comb(j, i) * (MU - MU_NEW) ** (j - i) * sp.Symbol(f"__A{i}", real=True)
                             for i in [0, *shift.moments] if i <= j)
                refs = dict(read_of) | {sp.Symbol(f"__A{i}", real=True): ir.Read(self.at(moments[i], o, pos, old))
                                        for i in moments} | {sp.Symbol(f"__A{j}", real=True): prev}
                return ir.BinOp("+", to_ir(repair, refs), local)

            moments[j] = running(f"L{stem}{j}", f"R{stem}{j}", body, update)
            self.running[name].append((moments[j], pos))

    def shift_final(self, name: str, expr: sp.Expr) -> ir.Expr:
        """An R2 final value: components at the last step, MU_F the stored final centre."""
        plan = self.plans[name]
        lhs = self.roles.writer[name].lhs
        read_of: dict = {component_symbol(k): self.running_read(name, lhs, "last", k)
                         for k in range(len(plan.components))}
        centre, pos = self.centres[name]
        read_of[MU_F] = ir.Read(self.at(centre, lhs.indices, pos, self.step_index("last")))
        used = expr.free_symbols & set(plan.symbols.table)
        read_of.update(self.final_symbol_reads({s: plan.symbols.table[s] for s in used}))
        return to_ir(expr, read_of)

    def final_symbol_reads(self, table) -> dict:
        """What each symbol of a final value reads after the pass: a full reduction's final
        value, a plain read, or a rank value as written."""
        read_of: dict = {}
        for sym, (role, acc) in table.items():
            if role == "r":
                read_of[sym] = self.final_read(acc)
            elif role in ("u", "pivot"):
                read_of[sym] = ir.Read(acc)
            elif role == "iu":
                read_of[sym] = acc
        return read_of

    def atom_tensor(self, tensor: str) -> str:
        kind = self.roles.kind[tensor]
        return self.emit_local_stream(tensor) if kind == "stream" and self.roles.deps[tensor] else tensor

    def correction(self, plan: Plan, t: sp.Expr, syms) -> ir.Expr:
        """The shared correction statement (FuseMax's PRM) for one stabiliser, read in context."""
        full = plan.full_symbols
        stab_syms = {s for s in full.table if full.table[s][0] == "r"}
        accs = {full.table[s][1] for s in stab_syms if str(s) + "@old" in {str(x) for x in t.free_symbols}
                or str(s) + "@new" in {str(x) for x in t.free_symbols}}
        tensors = {a.tensor for a in accs}
        if len(tensors) != 1 or len(accs) != 1:
            raise Refusal(self.roles.writer[plan.target].span,
                          f"{plan.target}: a correction over several stabilisers ({', '.join(sorted(tensors))}) "
                          "is not emitted yet")
        acc = next(iter(accs))
        g = acc.tensor
        gstmt = self.roles.writer[g]
        key = (str(t), g)
        if key not in self.corrections:
            # written over the stabiliser's own variables; its reads are the running values
            own = gstmt.lhs
            inverse: dict[str, ir.Index] = {}
            for lhs_idx, idx in zip(own.indices, acc.indices):
                if isinstance(idx, ir.VarIndex):
                    inverse[idx.var] = lhs_idx
            read_of = {}
            for sym in t.free_symbols:
                when = str(sym).rpartition("@")[2]
                if when in ("old", "new"):
                    read_of[sym] = self.running_read(g, own, when)
                elif sym in full.table and isinstance(full.table[sym][1], ir.IndexValue):
                    iv = full.table[sym][1]
                    if iv.var not in inverse:
                        raise Refusal(gstmt.span, f"{plan.target}: the correction reads the coordinate {iv.var}, "
                                                  f"which {g} does not iterate")
                    read_of[sym] = ir.IndexValue(inverse[iv.var].var)
                elif sym in full.table:  # a constant read, moved to the stabiliser's variables
                    u = full.table[sym][1]
                    if set(u.variables) - set(inverse):
                        raise Refusal(gstmt.span, f"{plan.target}: the correction reads {u.tensor} over more "
                                                  f"variables than {g} has")
                    read_of[sym] = ir.Read(rename_access(u, inverse))
            if t.free_symbols - set(read_of) - {s for s in t.free_symbols if s.name.isupper()}:
                raise Refusal(gstmt.span, "a correction depends on more than the stabiliser")
            tensor, pos = self.running[g][0]
            name = self.fresh("P" + tensor)
            self.out.append(ir.Einsum(self.at(name, own.indices, pos, ir.VarIndex(self.v1)), to_ir(t, read_of)))
            self.corrections[key] = (name, g, pos)
        name, _, pos = self.corrections[key]
        return ir.Read(self.at(name, acc.indices, pos, ir.VarIndex(self.v1)))

    # ---------------------------------------------------------------- finals and pass 2
    def final_own(self, name: str) -> ir.Expr:
        """Z's final value over Z's own left-side variables."""
        for z, other in self.plans.items():
            if other.shift is not None and other.shift.sum_producer == name:
                return self.shift_final(z, other.shift.sum_final)  # the compensated sum (transform.shift)
        plan = self.plans[name]
        if plan.shift is not None:
            return self.shift_final(name, plan.final)
        stmt = self.roles.writer[name]
        syms = plan.symbols
        read_of = {}
        constant = {}
        for k, comp in enumerate(plan.components):
            if comp.ir_body is None and plan.shift is None and _atom_free(comp.body, syms):
                # no point of the fiber is read: a sum is the body times the number of points,
                # a max or min the body itself (every fiber has M >= 1 points when unfiltered)
                if self.running[name][k][0]:  # a filtered fiber's running count (emit_count)
                    n = sp.Symbol(f"__N{k}", real=True)
                    constant[component_symbol(k)] = comp.body * n
                    read_of[n] = self.running_read(name, stmt.lhs, "last", k)
                    continue
                if plan.filters or _has_filters(self.roles, name) or comp.op == "prod":
                    raise Refusal(stmt.span, f"{name}: the rewrite needs the number of points of a filtered "
                                             "fiber for a term without x (counts are kept only by R2); "
                                             "2 passes kept")
                count: sp.Expr = sp.Symbol(self.r, positive=True)
                for v in (stmt.reduction.variables if stmt.reduction else _reduced(stmt)):
                    if v != self.v:
                        count = count * sp.Symbol(v.upper(), positive=True)
                constant[component_symbol(k)] = comp.body * count if comp.op == "sum" else comp.body
            else:
                read_of[component_symbol(k)] = self.running_read(name, stmt.lhs, "last", k)
        read_of.update(self.final_symbol_reads(syms.table))
        return to_ir(plan.final.subs(constant), read_of)

    def final_read(self, acc: ir.Access) -> ir.Expr:
        """A read of full reduction `acc.tensor` after the pass."""
        if acc.tensor in self.named:
            return ir.Read(acc)
        stmt = self.roles.writer[acc.tensor]
        return rename_expr(self.final_own(acc.tensor), call_mapping(stmt, acc)[0])

    def pass2_expr(self, expr: ir.Expr) -> ir.Expr:
        def read(e: ir.Read) -> ir.Expr:
            return self.final_read(e.access) if self.roles.kind[e.access.tensor] == "full" else e

        return ir.map_reads(expr, read)

    def _guarded(self, step, name: str):
        try:
            return step(name)
        except NotAlgebraic as exc:
            raise Refusal(self.roles.writer[name].span, f"{name}: {exc} (the body is undefined or has no "
                                                        "spelling in the language); 2 passes kept") from None

    def emit(self) -> ir.Cascade:
        roles, c = self.roles, self.roles.cascade
        outputs = {d.name for d in c.outputs}
        consts = [roles.writer[t] for t in roles.order if roles.kind[t] == "const"]
        self.out.extend(consts)
        for t in roles.order:
            if roles.kind[t] == "stream" and not roles.deps[t]:
                s = roles.writer[t]
                self.out.append(ir.Einsum(self.split_access(s.lhs), self.pass1_expr(s.expr), s.reduction,
                                          tuple(self.tiled(f) for f in s.filters)))
        fulls = [t for t in roles.order if roles.kind[t] == "full"]
        for t in fulls:
            self._guarded(self.emit_components, t)
        for t in fulls:
            final = self._guarded(self.final_own, t)
            guard = tuple(self.guards.get(t, ()))
            if guard and roles.reduce_op(t) in ("max", "min"):  # the identity (+-inf) where the fiber is empty
                final, guard = guarded_value(list(guard), final, REDUCE_OPS[roles.reduce_op(t)].identity), ()
            plain = isinstance(final, ir.Read) and not guard
            if t in outputs or not plain:
                s = roles.writer[t]
                self.out.append(ir.Einsum(s.lhs, final, None, guard))
                self.named.add(t)
        for t in roles.order:
            if roles.kind[t] in ("complete",) or (roles.kind[t] == "stream" and roles.deps[t]):
                s = roles.writer[t]
                self.out.append(ir.Einsum(s.lhs, self.pass2_expr(s.expr), s.reduction, s.filters))
        statements = _live(self.out, outputs)
        shapes = c.shapes + (ir.ShapeDecl(self.r0, self.tile),)
        return ir.Cascade(c.name + "_reduced", shapes, c.splits + (ir.Split(self.r, (self.r1, self.r0)),),
                          c.inputs, c.outputs, tuple(statements), file=c.file)


def _reduced(stmt: ir.Einsum) -> tuple[str, ...]:
    lhs = set(stmt.lhs.variables)
    seen: list[str] = []
    for a in ir.expr_reads(stmt.expr):
        for v in a.variables:
            if v not in lhs and v not in seen:
                seen.append(v)
    return tuple(seen)


def _atom_names(roles: Roles, name: str) -> list[str]:
    """The streams a deferred numerator reads, in order (A = SN / SD inlined: SN, then V)."""
    from .roles import inline

    stmt = roles.writer[name]
    expr, _ = inline(roles, stmt.expr, lambda t: all(roles.is_stabiliser(d) for d in roles.deps[t]))
    out: list[str] = []
    for a in ir.expr_reads(expr):
        if roles.kind[a.tensor] in ("stream", "input-stream") and a.tensor not in out:
            out.append(a.tensor)
    return out


def _atom_free(body: sp.Expr, syms) -> bool:
    return not any(syms.table.get(s, ("",))[0] in ("x", "ix") for s in body.free_symbols)


def _has_filters(roles: Roles, name: str) -> bool:
    filters, exact = presence(roles, name)
    return bool(filters) or not exact


def _live(statements: list[ir.Statement], outputs: set[str]) -> list[ir.Statement]:
    """Statements some output needs (an init lives with its recurrence)."""
    writers: dict[str, list[ir.Statement]] = {}
    for s in statements:
        writers.setdefault(s.name, []).append(s)
    live, todo = set(), list(outputs)
    while todo:
        t = todo.pop()
        if t in live:
            continue
        live.add(t)
        for s in writers.get(t, []):
            todo.extend(a.tensor for a in ir.expr_reads(s.expr))
    return [s for s in statements if s.name in live]
