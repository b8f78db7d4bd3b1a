"""What a worker runs: build a workload's cost plan once, and evaluate one point.

A `Plan` is the spatial cost model of one (cascade at its shapes, mapping) as sympy formulas,
latency, DRAM bytes, the largest group's footprint and (when the target gives energies) energy, whose
only free symbols are target fields (clock, word size, bandwidth, every PE-array dimension) and
the tiles that follow a parameter: `cost_formulas` is run on a target whose fields are symbols,
and energy is `energy_breakdown` of its symbolic counts, as `Spec.estimate` charges it. It is
built once, in a task of its own, shipped to the workers that need it (and rebuilt by Dask from
its recipe if a worker holding it dies), and lambdified once per worker process (`_compiled`).
A point is then one NumPy call. Points the formulas cannot cover (a searched mapping, a grid
target, a varied field outside the formulas, a group whose footprint exceeds the buffer: it
spills or is refused) are costed directly with `Spec.estimate` / `search`.
Every function returns plain rows (dicts) and never raises a `CascadeError`: a point that cannot
be mapped is a `refused` row with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import CascadeError
from .area import point_area


@dataclass(frozen=True)
class PlanRequest:
    key: str
    spec_file: str
    spec_text: str
    shapes: dict[str, int]
    mapping: Any
    target_file: str
    target_text: str
    free_tiles: tuple[str, ...] = ()  # tile-shape symbols left free: they follow a parameter


@dataclass(frozen=True)
class Plan:
    key: str
    args: tuple[str, ...]  # target field paths, then 'tile:<symbol>': the formulas' arguments, in order
    symbols: tuple[Any, ...] = ()  # the sympy symbol of each argument
    latency_s: Any = None  # sympy expressions in the argument symbols
    dram_bytes: Any = None
    footprint: Any = None  # the largest group's on-chip elements (times word_bytes: bytes)
    energy_j: Any = None  # None when the target gives no energies
    mapping_file: str = ""
    error: str | None = None  # why the family's first mapping cannot be bound or costed


@dataclass(frozen=True)
class Job:
    """One point: everything a worker needs, in plain picklable values."""

    key: str
    spec_file: str
    spec_text: str
    shapes: dict[str, int]
    mapping: Any
    target_file: str
    target_data: dict[str, Any]  # the target with this point's fields set
    arguments: dict[str, float]  # formula arguments (target fields, 'tile:<symbol>'), for plan points
    search: Any = None  # a SearchChoice, or None


def symbol_name(i: int) -> str:
    return f"t{i}"


def build_plan(request: PlanRequest) -> Plan:
    """The plan of one (workload at its shapes, mapping family): formulas in the target fields and
    the tile shapes that follow a parameter, bound once at the family's first mapping."""
    import sympy as sp

    from ..api import loads
    from ..model.symbolic import cost_formulas, footprint_formula
    from ..model.symbols import SymbolTable
    from ..model.target import Unit, parse_target
    from ..yaml_text import load_yaml
    from .points import symbolic_fields

    data = load_yaml(request.target_text, request.target_file, CascadeError)
    fields = symbolic_fields(data)
    symbol = {f: sp.Symbol(symbol_name(i), positive=True) for i, f in enumerate(fields)}
    try:
        target = parse_target(request.target_text, request.target_file)
        spec = loads(request.spec_text, request.shapes, file=request.spec_file)
        mc = spec.bind(request.mapping)
        units = {u: Unit(u, tuple(symbol[f"units.{u}.shape.{i}"] for i in range(len(spec_u.shape))), spec_u.ops)
                 for u, spec_u in target.units.items()}
        symbolic = replace(target, clock_hz=symbol["clock_hz"], word_bytes=symbol["word_bytes"],
                           dram_bandwidth=symbol["dram.bandwidth_bytes_per_s"], units=units)
        formulas = cost_formulas(mc, symbolic)
        table = SymbolTable(mc)
        table.symbols.update(formulas.symbols)
        table.values.update(formulas.values)
        footprint = footprint_formula(mc, table, target.buffer_in_place)
        missing = [t for t in request.free_tiles if t not in table.symbols]
        if missing:  # a tile the formulas do not name: this family cannot be costed from them
            return Plan(request.key, tuple(fields), error=f"tile {missing[0]} is not a symbol of the cost formulas")
        values = {table.symbols[n]: v for n, v in table.values.items() if n not in request.free_tiles}
        energy = _energy_formula(symbolic, formulas, values)
    except CascadeError as exc:
        return Plan(request.key, tuple(fields), error=str(exc))
    args = (*fields, *(f"tile:{t}" for t in request.free_tiles))
    symbols = (*(symbol[f] for f in fields), *(table.symbols[t] for t in request.free_tiles))
    return Plan(request.key, args, symbols, formulas.latency_s.subs(values), formulas.dram_bytes.subs(values),
                sp.sympify(footprint).subs(values), None if energy is None else energy.subs(values),
                mc.mapping.file)


def _energy_formula(target: Any, formulas: Any, subs: dict[Any, int]) -> Any:
    """Joules as `Spec.estimate` charges them (`model.energy.energy_breakdown`), on the formulas'
    counts: DRAM reads and writes, operations per unit, and the latency in cycles for leakage.
    Counts are first bound to the shapes (`subs`) so that an operation a point never runs is 0."""
    import sympy as sp

    from ..model.energy import energy_breakdown, total_joules

    if not target.energy:
        return None
    ops = {u: {k: sp.sympify(n).subs(subs) for k, n in kinds.items()} for u, kinds in (formulas.unit_ops or {}).items()}
    reads = sp.sympify(formulas.dram_read_bytes)
    writes = formulas.dram_bytes - reads
    words = None if formulas.buffer_words is None else tuple(sp.sympify(w).subs(subs) for w in formulas.buffer_words)
    breakdown = energy_breakdown(target, reads, writes, ops, formulas.latency_s * target.clock_hz, words)
    return sp.sympify(total_joules(breakdown)) if breakdown else None


_COMPILED: dict[str, Callable[..., tuple]] = {}


def _compiled(plan: Plan) -> Callable[..., tuple]:
    """The plan's formulas as one NumPy function, lambdified once per worker process."""
    fn = _COMPILED.get(plan.key)
    if fn is None:
        import sympy as sp

        energy = sp.Integer(0) if plan.energy_j is None else plan.energy_j
        from ..model.tilesum import NUMPY as TILESUM_NUMPY

        fn = sp.lambdify(list(plan.symbols), (plan.latency_s, plan.dram_bytes, plan.footprint, energy),
                         modules=[TILESUM_NUMPY, "numpy"])
        _COMPILED[plan.key] = fn
    return fn


def _row(job: Job, start: float, how: str, **fields: Any) -> dict[str, Any]:
    row = {"key": job.key, "status": "ok", "how": how, "latency_s": None, "dram_bytes": None,
           "on_chip_bytes": None, "energy_j": None, "area_mm2": None, "mapping": "", "message": ""}
    row.update(fields)
    row["seconds"] = time.perf_counter() - start
    return row


def _refused(job: Job, start: float, how: str, why: str) -> dict[str, Any]:
    return _row(job, start, how, status="refused", message=why)


def evaluate_with_plan(plan: Plan, job: Job) -> dict[str, Any]:
    """A point from its family's formulas; when the family's first mapping could not be bound,
    a point of a parameter-following family is costed directly (its own tiles may be fine)."""
    start = time.perf_counter()
    if plan.error is not None:
        if any(a.startswith("tile:") for a in plan.args) or any(k.startswith("tile:") for k in job.arguments):
            return evaluate_direct(job)
        return _refused(job, start, "formula", plan.error)
    a = job.arguments
    latency, traffic, elements, joules = _compiled(plan)(*(a[f] for f in plan.args))
    on_chip = float(elements) * a["word_bytes"]
    buffer = a["buffer.capacity_bytes"]
    if buffer and on_chip > buffer:  # a group spills (its traffic grows) or is refused: as estimate does it
        return evaluate_direct(job)
    return _row(job, start, "formula", latency_s=float(latency), dram_bytes=float(traffic), on_chip_bytes=on_chip,
                energy_j=None if plan.energy_j is None else float(joules), area_mm2=point_area(job.target_data),
                mapping=plan.mapping_file)


def _report_row(job: Job, start: float, how: str, report: Any, mapping: str) -> dict[str, Any]:
    return _row(job, start, how, latency_s=float(report.latency_s), dram_bytes=float(report.dram_bytes),
                on_chip_bytes=float(report.on_chip_bytes),
                energy_j=None if report.energy_j is None else float(report.energy_j),
                area_mm2=point_area(job.target_data), mapping=mapping)


def evaluate_direct(job: Job) -> dict[str, Any]:
    """A point costed with `Spec.estimate` (mapping given) or `search` (then the best one costed)."""
    import yaml

    from ..api import loads
    from ..model.target import parse_target
    from ..search import search

    start = time.perf_counter()
    how = "search" if job.search is not None else "estimate"
    try:
        spec = loads(job.spec_text, job.shapes, file=job.spec_file)
        target = parse_target(yaml.safe_dump(job.target_data, sort_keys=False), job.target_file)
        if job.search is None:
            report = spec.estimate(job.mapping, target)
            return _report_row(job, start, how, report, job.mapping.file if job.mapping is not None else "default")
        result = search(spec, target, job.search.objective, job.search.budget_s, top=1)
        if not result.best:
            return _refused(job, start, how, f"no mapping among the {result.families_scored} families searched "
                                             f"fits {target.name}")
        best = result.best[0]
        return _report_row(job, start, how, spec.estimate(best.mapping, target), best.describe())
    except CascadeError as exc:
        return _refused(job, start, how, str(exc))
