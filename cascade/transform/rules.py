"""The rewrite rules: for one full reduction Z over r, a `Plan` of running components and a
final expression, every identity it relies on proved by sympy on the actual body.

Symbols: x (atoms: reads that keep r, and the coordinate r itself as an index value), r (complete
full reductions), u (constants, and other ranks' coordinates). A plan is
a list of `Component`s, each a reduction over the tile of a local body (atoms and the *new*
running stabilisers) rolled across tiles, optionally rescaled by a correction T(old, new); the
final value of Z is `final`, a sympy expression in the components' final values, the r's and u's.

- P  (producer): no r in the body: roll it as is (sum, max, min, prod).
- D1 (defer, sum): g = g_s * H(r) with r's that are not max/min: sum g_s, multiply by H at the end.
- R1 (roll by scaling, sum): g_s(x, s) with stabilisers s (max/min): T = g_s(x, s')/g_s(x, s) must
  be free of x; prove T * g_s(x, s) - g_s(x, s') = 0. State' = T * state + local sum at s'.
- R2 (roll by shifting, sum; `transform.shift`): g a polynomial of degree >= 2 in one atom x:
  running count, sum and central moments about the running mean (Welford/Chan).
- PV (pivot shift, sum; only where R2 does not apply, e.g. a body reducing another rank too): one
  input atom x, g(K + y, r) a polynomial in y (K = x at r = 0): Z = sum_j c_j(K, r) * sum (x - K)^j.
- D2 (separable terms, sum): g = sum_k G_k(x) * H_k(r); a constant G_k is a count.
- D3 (monotone, max/min): g = G(x) + H(r): Z = op G + H by the lemma
  max(a + c, b + c) = max(a, b) + c (min likewise); an increasing exp (log, sqrt of a positive) is peeled.
Anything else is a `Refusal` naming the reduction and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..lang import ir
from ..lang.show import show_access, show_expr
from .algebra import SYMPY_GAVE_UP, NotAlgebraic, is_zero, shape_symbol, to_sympy
from .roles import Refusal, Roles, inline
from .shift import LEMMA_COUNT, MU, MU_F, MU_NEW, ShiftPlan, plan_shift

LEMMAS = {
    "max-shift": "max(a + c, b + c) = max(a, b) + c, min likewise (built-in lemma: sympy cannot prove it)",
    "monotone": "op(phi(a), phi(b)) = phi(op(a, b)) for increasing phi: exp, and log or sqrt of a provably "
                "positive argument (built-in lemma)",
}


@dataclass
class Component:
    hint: str
    op: str
    body: sp.Expr  # over atoms (x) and new stabilisers
    correction: sp.Expr | None = None  # over old/new stabiliser symbols
    ir_body: ir.Expr | None = None  # a producer body with no algebra (select, sigmoid): rolled as written


@dataclass
class Plan:
    target: str
    rule: str
    components: list[Component]
    final: sp.Expr  # over component symbols C0.., r and u symbols, pivot
    identities: list[str] = field(default_factory=list)
    lemmas: list[str] = field(default_factory=list)
    body: str = ""
    filters: list[ir.Compare] = field(default_factory=list)
    stabilisers: list[str] = field(default_factory=list)
    pivot: ir.Access | None = None
    symbols: Symbols | None = None  # the body's symbols (atoms stop at streams of stabilisers)
    full_symbols: Symbols | None = None  # R1: the fully inlined body's symbols
    shift: ShiftPlan | None = None  # R2: the moments kept and the reused sum


@dataclass
class Symbols:
    """The symbol table of one body: sympy symbol -> (role, access). Roles: x (an atom, varies
    along r), r (a complete full reduction), u (constant along r), pivot; an index value is an
    atom (`ix`: the coordinate of r itself) or a constant (`iu`: another rank's), with the
    `ir.IndexValue` in place of the access."""

    table: dict[sp.Symbol, tuple[str, ir.Access | ir.IndexValue]] = field(default_factory=dict)
    ir_body: ir.Expr | None = None  # the inlined IR body the sympy one came from

    def get(self, role: str, acc: ir.Access, tag: str = "") -> sp.Symbol:
        sym = sp.Symbol(f"{show_access(acc)}{tag}", real=True)
        self.table[sym] = (role, acc)
        return sym

    def index(self, var: str, reduced: str) -> sp.Symbol:
        sym = sp.Symbol(var, real=True)
        self.table[sym] = ("ix" if var == reduced else "iu", ir.IndexValue(var))
        return sym

    def of_role(self, expr: sp.Expr, *roles: str) -> list[sp.Symbol]:
        """The symbols of `expr` with one of `roles`; asking for x (u) includes ix (iu)."""
        wanted = set(roles) | {"i" + r for r in roles if r in ("x", "u")}
        return sorted((s for s in expr.free_symbols if self.table.get(s, ("",))[0] in wanted), key=str)

    def tensors(self, symbols) -> list[ir.Access]:
        """The reads among `symbols` (index values left out)."""
        return [self.table[s][1] for s in symbols if isinstance(self.table[s][1], ir.Access)]


def component_symbol(k: int) -> sp.Symbol:
    return sp.Symbol(f"__C{k}", real=True)


def old_new(sym: sp.Symbol) -> tuple[sp.Symbol, sp.Symbol]:
    return sp.Symbol(f"{sym}@old", real=True), sp.Symbol(f"{sym}@new", real=True)


def body_algebra(roles: Roles, name: str, full_inline: bool, syms: Symbols) -> tuple[sp.Expr, list[ir.Compare]]:
    """Z's body as sympy. Streams reading a non-stabiliser complete value are inlined (all
    streams with a dependence when `full_inline`); complete maps are inlined down to full ones."""
    stmt = roles.writer[name]

    def stop(t: str) -> bool:
        if full_inline:
            return not roles.deps[t]
        return all(roles.is_stabiliser(d) for d in roles.deps[t])

    expr, filters = inline(roles, stmt.expr, stop)
    syms.ir_body = expr
    try:
        return to_sympy(expr, lambda acc: _symbol(roles, acc, syms), _indexer(roles, syms)), filters
    except SYMPY_GAVE_UP as exc:  # e.g. max(a, log(0)): sympy cannot order complex infinity
        raise NotAlgebraic(f"sympy cannot build the body ({exc})") from None


def _symbol(roles: Roles, acc: ir.Access, syms: Symbols) -> sp.Expr:
    kind = roles.kind[acc.tensor]
    if kind in ("stream", "input-stream"):
        return syms.get("x", acc)
    if kind == "full":
        return syms.get("r", acc)
    if kind == "const":
        stmt = roles.writer.get(acc.tensor)
        if stmt is None or stmt.reduction is not None or _reduces(stmt):
            return syms.get("u", acc)
    stmt = roles.writer[acc.tensor]  # a map of complete values or constants: inline it
    from .roles import call_mapping, rename_expr

    if stmt.reduction is not None or _reduces(stmt):
        raise Refusal(stmt.span, f"{acc.tensor} reduces another rank over complete values: only maps of complete "
                                 "values can be inlined")
    return to_sympy(rename_expr(stmt.expr, call_mapping(stmt, acc)[0]), lambda a: _symbol(roles, a, syms),
                    _indexer(roles, syms))


def _indexer(roles: Roles, syms: Symbols):
    return lambda var: syms.index(var, roles.var)


def _reduces(stmt: ir.Einsum) -> bool:
    return bool({v for a in ir.expr_reads(stmt.expr) for v in a.variables} - set(stmt.lhs.variables))


def plan_producer(roles: Roles, name: str) -> Plan:
    """P: a reduction reading no complete value is rolled with its body as written (no algebra
    is needed, and a sympy round trip could reassociate `Y + (C + X)` and move absent points)."""
    stmt = roles.writer[name]
    op = roles.reduce_op(name)
    return Plan(name, "P", [Component(name, op, sp.Integer(0), ir_body=stmt.expr)], component_symbol(0),
                body=show_expr(stmt.expr), symbols=Symbols())


def plan_target(roles: Roles, name: str, plans: dict[str, Plan] | None = None) -> Plan:
    stmt = roles.writer[name]
    op = roles.reduce_op(name)
    syms = Symbols()
    try:
        g, filters = body_algebra(roles, name, False, syms)
    except NotAlgebraic as exc:
        raise Refusal(stmt.span, f"{name}: {exc}") from None
    if g.has(sp.nan, sp.zoo):  # log(0), 0/0 folded by sympy: no value to rewrite
        raise Refusal(stmt.span, f"{name}: sympy folds the body to {g} (an undefined value); 2 passes kept")
    _check_presence(roles, name, syms, g)
    where = f"{op} over {roles.var} of {g}"
    filters = list(stmt.filters) + filters
    if op == "sum":
        plan = _plan_sum(roles, name, g, syms, where, plans or {})
    elif op in ("max", "min"):
        plan = _plan_monotone(roles, name, op, g, syms, where)
    else:
        raise Refusal(stmt.reduction.span if stmt.reduction else stmt.span,
                      f"{where}: a {op} over complete values has no registered rescaling; 2 passes kept")
    plan.body = str(g)
    plan.filters = filters
    plan.symbols = syms
    return plan


def _check_presence(roles: Roles, name: str, syms: Symbols, g: sp.Expr) -> None:
    """Sympy's identities hold where every read is present. Where reads of r are present at
    different points (a filtered XF and an unfiltered Y) and a union-like map (+ - max min) joins
    two of them, the rewritten body could be present at other points than the original: refuse.
    So too where sympy cancels a filtered read (XF / (XF * Y) is 1 / Y, present beyond XF)."""
    from .masks import atom_presence

    kept = {show_access(a) for a in syms.tensors(syms.of_role(g, "x"))}
    for acc in ir.expr_reads(syms.ir_body):
        if roles.var in acc.variables and show_access(acc) not in kept and atom_presence(roles, acc) != ((), True):
            raise Refusal(roles.writer[name].span, f"{name}: sympy cancels the filtered read {show_access(acc)} "
                                                   f"from the body ({g}), which would then count points where it "
                                                   "is absent; 2 passes kept")
    keys = {atom_presence(roles, acc) for acc in syms.tensors(syms.of_role(sp.Add(*syms.table), "x"))}
    if len(keys) <= 1 or not _joins_atoms(roles, syms.ir_body):
        return
    raise Refusal(roles.writer[name].span, f"{name}: its reads along {roles.var} are present at different points "
                                           "(differently filtered) and a + - max or min joins them: a rewritten "
                                           "body could count other points; 2 passes kept")


def _joins_atoms(roles: Roles, expr: ir.Expr) -> bool:
    """Does a union-like map join two operands that both read along r?"""
    def along(e: ir.Expr) -> bool:
        return any(roles.var in a.variables for a in ir.expr_reads(e))

    match expr:
        case ir.Neg(operand=o):
            return _joins_atoms(roles, o)
        case ir.BinOp(op=op, left=l, right=r):
            return (op in ("+", "-") and along(l) and along(r)) or _joins_atoms(roles, l) or _joins_atoms(roles, r)
        case ir.Call(fn=fn, args=args):
            return (fn in ("max", "min") and len(args) == 2 and along(args[0]) and along(args[1])) or \
                any(_joins_atoms(roles, a) for a in args)
    return False


def _plan_sum(roles: Roles, name: str, g: sp.Expr, syms: Symbols, where: str, plans: dict[str, Plan]) -> Plan:
    stmt = roles.writer[name]
    rs = syms.of_role(g, "r")
    nonstab = [s for s in rs if not roles.is_stabiliser(syms.table[s][1].tensor)]
    identities: list[str] = []
    gs, h = g.as_independent(*nonstab, as_Add=False) if nonstab else (g, sp.Integer(1))
    if h != 1 and (syms.of_role(h, "x") or [s for s in syms.of_role(h, "r") if s not in nonstab]):
        gs, h = g, sp.Integer(1)
    if h != 1:
        if not is_zero(g - gs * h):
            raise Refusal(stmt.span, f"{where}: sympy could not prove the deferral g = g_s * H")
        identities.append(f"D1: {g} - ({gs}) * ({h}) = 0")
    left = syms.of_role(gs, "r")
    through_atoms = [a for a in syms.tensors(syms.of_role(gs, "x")) if roles.deps.get(a.tensor)]
    if not left and not through_atoms:
        return Plan(name, "D1" if h != 1 else "P", [Component(name, "sum", gs)], h * component_symbol(0),
                    identities)
    if all(roles.is_stabiliser(syms.table[s][1].tensor) for s in left):
        try:
            return _roll_scaling(roles, name, g, gs, h, syms, identities, where)
        except Refusal as refusal:
            if h != 1 or through_atoms or g.has(sp.exp):
                raise
            try:
                return _separate(roles, name, g, syms, where, plans)
            except Refusal:
                raise refusal from None
    if any(roles.is_stabiliser(syms.table[s][1].tensor) for s in rs):
        raise Refusal(stmt.span, f"{where}: mixes a max/min stabiliser with other complete values in a way "
                                 "that neither defers nor rescales; 2 passes kept")
    return _separate(roles, name, g, syms, where, plans)


def _roll_scaling(roles, name, g, gs, h, syms, identities, where) -> Plan:
    stmt = roles.writer[name]
    full = Symbols()
    try:
        gf_all, _ = body_algebra(roles, name, True, full)
    except NotAlgebraic as exc:
        raise Refusal(stmt.span, f"{name}: {exc}") from None
    # the same deferral on the fully inlined body, then the rescaling of what is left
    nonstab_full = [s for s in full.of_role(gf_all, "r") if not roles.is_stabiliser(full.table[s][1].tensor)]
    gf = gf_all / h if h != 1 else gf_all  # sympy cancels a deferred factor of a product by itself
    if h != 1 and [s for s in full.of_role(gf, "r") if s in nonstab_full]:
        gf = sp.simplify(gf)
    if [s for s in full.of_role(gf, "r") if s in nonstab_full]:
        raise Refusal(stmt.span, f"{where}: the deferred factor does not separate once maps are inlined")
    stab_full = full.of_role(gf, "r")
    olds = {s: old_new(s)[0] for s in stab_full}
    news = {s: old_new(s)[1] for s in stab_full}
    g_old, g_new = gf.subs(olds), gf.subs(news)
    try:
        t = sp.powsimp(sp.expand_power_exp(g_new / g_old), force=True)  # cheap, enough for exp bodies
        if full.of_role(t, "x"):
            t = sp.simplify(t)
    except SYMPY_GAVE_UP:
        t = sp.nan
    xs = full.of_role(t, "x")
    if not xs and not t.has(sp.nan) and not _exponential(t):
        raise Refusal(stmt.span, f"{where}: the repair {t} is not an exponential, so the body at an intermediate "
                                 "running value may leave its domain (log, division); 2 passes kept")
    if t.has(sp.nan) or xs or t.free_symbols - set(olds.values()) - set(news.values()) - _u_and_shapes(full, t):
        raise Refusal(stmt.span, f"{where}: no finite repair: g(x, s')/g(x, s) = {t} depends on "
                                 f"{', '.join(map(str, xs)) or 'more than the stabilisers'}; 2 passes kept")
    if not is_zero(t * g_old - g_new):
        raise Refusal(stmt.span, f"{where}: sympy could not prove the rescaling T * g(x, s) = g(x, s')")
    identities.append(f"R1: ({t}) * ({g_old}) - ({g_new}) = 0")
    # the first step rescales the identity state: T must be finite when the old value is -inf (max)
    at_start = t
    for s, old in olds.items():
        start = -sp.oo if roles.reduce_op(full.table[s][1].tensor) == "max" else sp.oo
        try:
            at_start = _limit(at_start, old, start)
        except SYMPY_GAVE_UP:
            at_start = sp.nan
    if not (at_start.is_finite and at_start.is_real):
        raise Refusal(stmt.span, f"{where}: the repair {t} is not finite (it is {at_start}) when the running "
                                 "stabiliser still holds its identity (the first tile); 2 passes kept")
    identities.append(f"R1 start: T at the identity = {at_start}")
    plan = Plan(name, "D1+R1" if h != 1 else "R1", [Component(name, "sum", gs, t)], h * component_symbol(0),
                identities)
    plan.stabilisers = sorted({full.table[s][1].tensor for s in stab_full})
    plan.full_symbols = full
    return plan


def _limit(t: sp.Expr, var: sp.Symbol, to: sp.Expr) -> sp.Expr:
    """lim t as var -> +-oo; for exp(c * var + rest) with a number c read off directly (0, exp(rest)
    or oo), which is what sp.limit finds, 20x faster; anything else by sp.limit."""
    t = sp.powsimp(t, force=True)
    if isinstance(t, sp.exp):
        exponent = sp.expand(t.args[0])
        c = exponent.coeff(var)
        if c.is_number and not (exponent - c * var).has(var):
            if c == 0:
                return t
            return sp.Integer(0) if (c > 0) == (to is -sp.oo) else sp.oo
    return sp.limit(t, var, to)


def _exponential(t: sp.Expr) -> bool:
    """exp(...) or a product of exps: finite and positive for every finite running value."""
    return all(isinstance(f, sp.exp) for f in sp.Mul.make_args(sp.powsimp(t, force=True)))


def _u_and_shapes(syms: Symbols, e: sp.Expr) -> set:
    return {s for s in e.free_symbols if syms.table.get(s, ("shape",))[0] in ("u", "shape")}


def _separate(roles: Roles, name: str, g: sp.Expr, syms: Symbols, where: str, plans: dict[str, Plan]) -> Plan:
    stmt = roles.writer[name]
    xs = syms.of_role(g, "x")
    rs = syms.of_role(g, "r")
    through = [a.tensor for a in syms.tensors(xs) if roles.deps.get(a.tensor)]
    if through:
        raise Refusal(stmt.span, f"{where}: {through[0]} reads {', '.join(sorted(roles.deps[through[0]]))} and is "
                                 "evaluated at its running value, which changes from tile to tile; its terms are "
                                 "not rescaled one by one; 2 passes kept")
    if len(xs) == 1 and syms.tensors(xs):
        plan = _roll_shift(roles, name, g, xs[0], syms, plans)
        if plan is not None:
            return plan
    if len(xs) == 1 and syms.tensors(xs) and roles.kind[syms.tensors(xs)[0].tensor] == "input-stream":
        plan = _pivot(roles, name, g, xs[0], rs, syms, where)
        if plan is not None:
            return plan
    if len(xs) == 1 and syms.tensors(xs):  # linear in a stream (x - GM): about the running mean, not by D2's
        plan = _roll_shift(roles, name, g, xs[0], syms, plans, 1)  # sum x - N * GM, which cancels at a large mean
        if plan is not None:
            return plan
    terms: dict[sp.Expr, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(g)):
        gk, hk = term.as_independent(*rs, as_Add=False)
        if syms.of_role(hk, "x") or syms.of_role(gk, "r"):
            raise Refusal(stmt.span, f"{where}: not a product or sum of x-only and complete-only terms, nor a "
                                     "shift form (exp or polynomial in x minus a complete value); 2 passes kept")
        terms[hk] = terms.get(hk, 0) + gk
    comps, final = [], sp.Integer(0)
    for k, (hk, gk) in enumerate(terms.items()):
        comps.append(Component(f"{name}_{k}", "sum", gk))
        final += hk * component_symbol(k)
    identities = [f"D2: {g} - ({' + '.join(f'({h}) * ({gk})' for h, gk in terms.items())}) = 0"]
    if not is_zero(g - sum(h * gk for h, gk in terms.items())):
        raise Refusal(stmt.span, f"{where}: sympy could not prove the separation into terms")
    return Plan(name, "D2", comps, final, identities)


def _roll_shift(roles: Roles, name: str, g: sp.Expr, x: sp.Symbol, syms: Symbols, plans: dict[str, Plan],
                least: int = 2) -> Plan | None:
    """R2 (`transform.shift`): components count N, sum of x, A_1..A_d; the final value is g
    re-expanded about the stored final centre MU_F. A reused producer S = sum x is read back as
    N * MU_F + A_1 (the same sum, compensated: A_1 holds what the rounded centre misses), so
    the variance comes out as A_2 - A_1^2 / N, the corrected two-pass formula."""
    found = plan_shift(roles, name, g, x, syms, plans, least)
    if found is None:
        return None
    shift, identities = found
    comps = [Component(f"{name}_n", "sum", sp.Integer(1)), Component(f"{name}_s", "sum", x)]
    comps += [Component(f"{name}_{j}", "sum", (x - MU_NEW) ** j) for j in shift.moments]
    n = component_symbol(0)
    moments = {0: n} | {j: component_symbol(2 + k) for k, j in enumerate(shift.moments)}
    lemmas = []
    from .masks import presence

    if presence(roles, name) == ([], True):
        lemmas.append(LEMMA_COUNT)
        n = shape_symbol(roles.rank)
        moments[0] = n
    replace: dict = {}
    shift.sum_final = n * MU_F + moments[1]
    if shift.count_producer is not None:
        replace |= {sym: n for sym, (role, acc) in syms.table.items()
                    if role == "r" and acc.tensor == shift.count_producer}
        identities.append(f"R2 count: {shift.count_producer} is the count N of the points of {x}")
    if shift.sum_producer is not None:
        replace |= {sym: shift.sum_final for sym, (role, acc) in syms.table.items()
                    if role == "r" and acc.tensor == shift.sum_producer}
        identities.append(f"R2 sum: {shift.sum_producer} = N * mu + A_1, as sum x - (N * mu + sum (x - mu)) = 0")
    # each coefficient factored, never expanded: (mu - GM) * N stays a difference of nearby values
    # (N * mu - N * GM would cancel at a large mean), while the variance's b_0, b_1 still cancel
    final = sp.Add(*[sp.factor(b.subs(MU, MU_F).subs(replace)) * moments[j]
                     for j, b in shift.coefficients.items()])
    names = {component_symbol(0): sp.Symbol("N"), MU_F: sp.Symbol("mu")}
    names |= {component_symbol(2 + k): sp.Symbol(f"A_{j}") for k, j in enumerate(shift.moments)}
    identities.append(f"R2 final: {name} = {final.subs(names)} with A_j = sum (x - mu)^j about the final centre mu")
    plan = Plan(name, "R2", comps, final, identities, lemmas)
    plan.shift = shift
    return plan


def _pivot(roles, name, g, x, rs, syms, where) -> Plan | None:
    acc = syms.table[x][1]
    var = roles.var
    pivot_acc = ir.Access(acc.tensor, tuple(ir.ConstIndex(0) if isinstance(i, ir.VarIndex) and i.var == var else i
                                            for i in acc.indices))
    k_sym = syms.get("pivot", pivot_acc)
    y = sp.Symbol("__y", real=True)
    shifted = sp.expand(g.subs(x, k_sym + y))
    try:
        poly = sp.Poly(shifted, y)
    except sp.PolynomialError:
        return None
    if poly.degree() < 1 or any(c.has(x) for c in poly.coeffs()):
        return None
    comps, final, check = [], sp.Integer(0), sp.Integer(0)
    for k, j in enumerate(range(poly.degree() + 1)):
        c = sp.factor(poly.coeff_monomial(y ** j))  # (x0 - mean) stays a difference, not K^2 - 2KS + S^2
        if c == 0:
            continue
        body = (x - k_sym) ** j
        comps.append(Component(f"{name}_{j}", "sum", body))
        final += c * component_symbol(len(comps) - 1)
        check += c * body
    if not is_zero(g - check):
        return None
    plan = Plan(name, "PV", comps, final, [f"PV: {g} - ({sp.expand(check)}) = 0 with K = {k_sym}"])
    plan.pivot = pivot_acc
    return plan


def _plan_monotone(roles: Roles, name: str, op: str, g: sp.Expr, syms: Symbols, where: str) -> Plan:
    stmt = roles.writer[name]
    rs = syms.of_role(g, "r")
    through = [a.tensor for a in syms.tensors(syms.of_role(g, "x")) if roles.deps.get(a.tensor)]
    if through:
        raise Refusal(stmt.reduction.span if stmt.reduction else stmt.span,
                      f"{where}: {through[0]} reads {', '.join(sorted(roles.deps[through[0]]))}, evaluated at its "
                      f"running value, which changes from tile to tile: a running {op} of it is not its {op}; "
                      "2 passes kept")
    inner, lemmas, fns = g, [], []
    while True:  # peel increasing maps; log and sqrt only where sympy proves the argument positive
        if isinstance(inner, sp.exp) or (isinstance(inner, sp.log) and inner.args[0].is_positive):
            fns.append(type(inner))
            inner = inner.args[0]
        elif inner.is_Pow and inner.exp == sp.Rational(1, 2) and inner.base.is_positive:
            fns.append(sp.sqrt)
            inner = inner.base
        else:
            break
        lemmas.append(LEMMAS["monotone"])
    gx, hr = inner.as_independent(*rs, as_Add=True)
    if syms.of_role(hr, "x") or syms.of_role(gx, "r"):
        rsx = [s for s in rs]
        if inner.is_Mul and any(f.has(*rsx) for f in inner.args) and any(syms.of_role(f, "x") for f in inner.args):
            reason = f"{where}: a product of x and a complete value under {op}: the sign of the complete value is unknown"
        else:
            reason = f"{where}: not monotone in x (not a function of x plus a function of the complete values)"
        raise Refusal(stmt.reduction.span if stmt.reduction else stmt.span, reason + "; 2 passes kept")
    if not is_zero(gx + hr - inner):
        raise Refusal(stmt.span, f"{where}: sympy could not prove the additive split")
    lemmas.append(LEMMAS["max-shift"])
    final = component_symbol(0) + hr
    for fn in reversed(fns):
        final = fn(final)
    return Plan(name, "D3", [Component(name, op, gx)], final, [f"D3: {inner} - (({gx}) + ({hr})) = 0"],
                sorted(set(lemmas)))
