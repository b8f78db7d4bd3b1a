"""The points of a DSE: every workload at every combination of the varied parameters, and what
each point needs (its shapes, its target data, its mapping) resolved from the config.

A point's key (`BERT|PE_dim=64|bw=4e+11`) is stable across runs of the same config, which is
what `--resume` matches finished points by.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, replace
from typing import Any

from .config import DseConfig, Parameter, Workload, field_value, integer_field, set_field

# target fields the cost formulas take as symbols: a point that varies only these (on a spatial
# target, with a given mapping) is evaluated from formulas built once per (workload, mapping)
SYMBOLIC_TOP = ("clock_hz", "word_bytes", "dram.bandwidth_bytes_per_s", "buffer.capacity_bytes")


@dataclass(frozen=True)
class Point:
    key: str
    workload: Workload
    params: dict[str, int | float]


def format_value(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:.12g}"


def enumerate_points(config: DseConfig) -> list[Point]:
    """Workloads outermost, then the parameters in the config's order (the last varies fastest)."""
    names = [p.name for p in config.parameters]
    combos = list(itertools.product(*(p.values for p in config.parameters)))
    points = []
    for w in config.workloads:
        for combo in combos:
            params = dict(zip(names, combo))
            key = "|".join([w.name, *(f"{n}={format_value(v)}" for n, v in params.items())])
            points.append(Point(key, w, params))
    return points


def point_shapes(config: DseConfig, point: Point) -> dict[str, int]:
    shapes = dict(point.workload.shapes)
    for p in config.parameters:
        if p.kind == "shape":
            shapes.update({r: int(point.params[p.name]) for r in p.fields})
    return shapes


def point_target_data(config: DseConfig, point: Point) -> dict[str, Any]:
    data = copy.deepcopy(config.target_data)
    for p in config.parameters:
        if p.kind == "target":
            for k, f in enumerate(p.fields):
                value = point.params[p.name] * p.scale(k)
                set_field(data, f, int(value) if integer_field(f) else value)
    return data


def point_mapping(point: Point) -> Any:
    """The workload's mapping with its parameter-following tiles filled in (None: the default)."""
    from ..mapping.mapping_file import Mapping

    w = point.workload
    if not w.tiles:
        return w.mapping
    tiles = {r: tuple(int(point.params[t]) if isinstance(t, str) else t for t in levels)
             for r, levels in w.tiles.items()}
    base = w.mapping or Mapping()
    return replace(base, partitioning={**base.partitioning, **tiles})


def tile_symbols(point: Point) -> dict[str, int]:
    """The tile-shape symbols of the cost formulas that follow a parameter, at this point: for
    `P: [T1, T0]` (levels P2, P1, P0) P1 = T1 // T0 and P0 = T0, as a bound mapping counts them;
    for a rank the cascade splits (`split M = M1 * M0`), `M: [T]` sets M0 = T. Empty when the
    point's tiles do not each divide the one above: such a point is costed directly."""
    out: dict[str, int] = {}
    for rank, levels in point.workload.tiles.items():
        if not any(isinstance(t, str) for t in levels):
            continue
        tiles = [int(point.params[t]) if isinstance(t, str) else t for t in levels]
        if rank in point.workload.splits:
            out[point.workload.splits[rank][1]] = tiles[0]
            continue
        if any(a % b for a, b in itertools.pairwise(tiles)):
            return {}
        k = len(tiles)
        extents = [a // b for a, b in itertools.pairwise(tiles)] + [tiles[-1]]
        out.update({f"{rank}{k - j}": e for j, e in enumerate(extents, 1)})
    return out


def follows_parameters(workload: Workload) -> bool:
    return any(isinstance(t, str) for levels in workload.tiles.values() for t in levels)


def symbolic_fields(data: dict[str, Any]) -> tuple[str, ...]:
    """The target fields the plan's formulas take as arguments: clock, word, bandwidth, buffer and
    every entry of every unit's shape, in a fixed order."""
    units = [f"units.{u}.shape.{i}" for u, spec in (data.get("units") or {}).items()
             for i in range(len(spec.get("shape", [1])))]
    return (*SYMBOLIC_TOP, *units)


def uses_formulas(config: DseConfig, workload: Workload) -> bool:
    """Whether a workload's points can be evaluated from formulas: a spatial target, a given
    mapping and every varied target field a formula argument (the formulas give latency, traffic,
    on-chip size and energy; varying an energy figure costs each point directly)."""
    data = config.target_data
    if workload.search is not None or data.get("kind", "spatial") != "spatial":
        return False
    allowed = set(symbolic_fields(data))
    for p in config.parameters:
        for f in p.fields if p.kind == "target" else ():
            if f == "area" or f.startswith("area."):  # area is the point's own target data (area.py)
                continue
            covered = {a for a in allowed if a == f or a.startswith(f + ".")}
            if not covered:
                return False
    return True


def formula_arguments(data: dict[str, Any]) -> dict[str, float]:
    """The values of the formula arguments in a point's target data."""
    return {f: float(field_value(data, f)) for f in symbolic_fields(data)}


def parameter_columns(params: tuple[Parameter, ...]) -> list[str]:
    return [p.name for p in params]
