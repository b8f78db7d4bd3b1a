"""DSE config files -> a checked `DseConfig`; every mistake is an exit-2 error at file:line:col.

A config names the target, the workloads (a spec and its shapes each), how each point is mapped
(a mapping file, optionally with tile shapes that follow a varied parameter, or a `search` with an
objective and a per-point budget), the parameters to vary (numeric target fields or rank shapes,
as value lists or ranges) and the metrics to keep. Paths are relative to the config file, else
bundled (`attention/mha_1pass.einsum`, `mha_1pass/fusemax.yaml`). The config's hash covers the
config and the text of every file it names, so results know exactly what produced them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CascadeError
from .yaml_marks import MarkedDict, MarkedList, load_marked

# what a point can report; area_mm2 is empty for a target without an `area:` section (area.py)
METRICS = ("latency_s", "dram_bytes", "on_chip_bytes", "energy_j", "area_mm2")
OBJECTIVES = ("latency", "traffic", "energy")
TOP_KEYS = ("name", "target", "workloads", "mapping", "search", "vary", "metrics")
WORKLOAD_KEYS = ("name", "spec", "shapes", "mapping", "search")
INTEGER_FIELDS = ("word_bytes", "buffer.capacity_bytes")  # and every units.<u>.shape entry


@dataclass(frozen=True)
class Parameter:
    """A varied quantity: target fields (dotted paths) or ranks that all take each value in turn."""

    name: str
    kind: str  # "target" or "shape"
    fields: tuple[str, ...]
    values: tuple[int | float, ...]
    where: str = field(default="", compare=False)  # file:line:col of its fields, for errors
    scales: tuple[float, ...] = ()  # per field, the factor its value is set to times (`{field: F, times: K}`); () all 1

    def scale(self, k: int) -> float:
        return self.scales[k] if self.scales else 1


@dataclass(frozen=True)
class SearchChoice:
    objective: str
    budget_s: float


@dataclass(frozen=True)
class Workload:
    name: str
    spec_file: str
    spec_text: str
    shapes: dict[str, int]
    mapping: Any = None  # a cascade Mapping, or None for the default mapping
    tiles: dict[str, tuple[int | str, ...]] = field(default_factory=dict)  # rank -> tiles; str = a parameter
    search: SearchChoice | None = None
    splits: dict[str, tuple[str, str]] = field(default_factory=dict)  # the cascade's `split R = R1 * R0`s


@dataclass(frozen=True)
class DseConfig:
    name: str
    file: str
    target_file: str
    target_text: str
    target_data: dict[str, Any]
    workloads: tuple[Workload, ...]
    parameters: tuple[Parameter, ...]
    metrics: tuple[str, ...]
    hash: str


def load_config(path: str | Path) -> DseConfig:
    from ..yaml_text import read_input

    return parse_config(read_input(path, "DSE config", CascadeError), str(path))


def parse_config(text: str, file: str) -> DseConfig:
    data = load_marked(text, file)
    if not isinstance(data, MarkedDict):
        raise CascadeError(f"{file}:1:1: a DSE config is a YAML mapping with keys {', '.join(TOP_KEYS)}")
    _known(data, TOP_KEYS, "a DSE config")
    base = Path(file).resolve().parent
    files: dict[str, str] = {}
    target_file, target_text, target_data = _target(data, base)
    files["target"] = target_text
    parameters = tuple(_parameters(data, target_data))
    workloads = tuple(_workloads(data, base, parameters, files))
    metrics = _metrics(data)
    digest = hashlib.sha256(json.dumps({"config": data, "files": files}, sort_keys=True, default=str)
                            .encode()).hexdigest()[:16]
    return DseConfig(str(data.get("name") or Path(file).stem), file, target_file, target_text, target_data,
                     workloads, parameters, metrics, digest)


def _known(table: MarkedDict, keys: tuple[str, ...], what: str) -> None:
    for key in table:
        if key not in keys:
            raise CascadeError(f"{table.where(key)}: unknown key '{key}' in {what}: the keys are {', '.join(keys)}")


def _require(table: MarkedDict, key: str, what: str) -> Any:
    if table.get(key) is None:
        raise CascadeError(f"{table.where()}: {what} needs '{key}:'")
    return table[key]


def _locate(raw: Any, base: Path, bundled) -> Path | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    local = base / raw
    if local.is_file():
        return local
    try:
        found = bundled(raw)
    except (CascadeError, KeyError):
        return None
    return found if found.is_file() else None


def _target(data: MarkedDict, base: Path) -> tuple[str, str, dict[str, Any]]:
    from ..model.target import bundled_targets, parse_target
    from ..yaml_text import load_yaml, read_input

    raw = _require(data, "target", "a DSE config")
    changes = None
    if isinstance(raw, MarkedDict):  # {file: NAME, set: {FIELD: number}}: a study's fixed changes to the target
        _known(raw, ("file", "set"), "target")
        changes = raw.get("set") or MarkedDict()
        if not isinstance(changes, MarkedDict) or not all(_number(v) for v in changes.values()):
            raise CascadeError(f"{raw.where('set')}: target.set is a table FIELD: number (a dotted path of the "
                               "target, e.g. area.units.array2d.per_pe.reg_file: 16814.3)")
        raw = _require(raw, "file", "target")
    path = _locate(raw, base, lambda name: bundled_targets()[name])
    if path is None:
        raise CascadeError(f"{data.where('target')}: target {raw!r}: no such file next to the config, nor a bundled "
                           f"target (bundled: {', '.join(bundled_targets())})")
    text = read_input(path, "target", CascadeError)
    try:
        parse_target(text, str(path))
    except CascadeError as exc:
        raise CascadeError(f"{data.where('target')}: target {raw!r} is not valid:\n{exc}") from None
    target = load_yaml(text, str(path), CascadeError)
    if changes:
        import yaml

        for f, v in changes.items():
            try:
                current = field_value(target, f)
            except KeyError:
                raise CascadeError(f"{changes.where(f)}: target.set: the target has no field {f}") from None
            if not _number(current):
                raise CascadeError(f"{changes.where(f)}: target.set: target field {f} is {current!r}, not a number")
            set_field(target, f, int(v) if integer_field(f) else v)
        text = yaml.safe_dump(target, sort_keys=False)  # what the points are costed with
        try:
            parse_target(text, str(path))
        except CascadeError as exc:
            raise CascadeError(f"{data.where('target')}: target.set makes target {raw!r} invalid:\n{exc}") from None
    return str(path), text, target


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _values(spec: MarkedDict, name: str) -> tuple[int | float, ...]:
    where = spec.where()
    if ("values" in spec) == ("range" in spec):
        raise CascadeError(f"{where}: parameter {name}: give either 'values: [...]' or "
                           "'range: {from: A, to: B, step: S}' (or 'times: F' for a geometric range)")
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, MarkedList) or not values or not all(_number(v) for v in values):
            raise CascadeError(f"{spec.where('values')}: parameter {name}: values is a non-empty list of numbers")
        return tuple(values)
    rng = spec["range"]
    if not isinstance(rng, MarkedDict):
        raise CascadeError(f"{spec.where('range')}: parameter {name}: range is {{from: A, to: B, step: S}} "
                           "or {from: A, to: B, times: F}")
    _known(rng, ("from", "to", "step", "times"), f"the range of {name}")
    lo, hi = rng.get("from"), rng.get("to")
    if not (_number(lo) and _number(hi) and 0 < lo <= hi):
        raise CascadeError(f"{rng.where()}: parameter {name}: range needs numbers 0 < from <= to")
    step, times = rng.get("step"), rng.get("times")
    if (step is None) == (times is None) or not _number(step if step is not None else times):
        raise CascadeError(f"{rng.where()}: parameter {name}: give one of 'step: S' (from, from+S, ...) "
                           "or 'times: F' (from, from*F, ...)")
    if (step is not None and step <= 0) or (times is not None and times <= 1):
        raise CascadeError(f"{rng.where()}: parameter {name}: step must be positive and times above 1")
    out: list[int | float] = []
    v = lo
    while v <= hi * (1 + 1e-12) and len(out) <= 100_000:
        out.append(v)
        v = v + step if step is not None else v * times
    if len(out) > 100_000:
        raise CascadeError(f"{rng.where()}: parameter {name}: the range has over 100000 values")
    return tuple(out)


def field_value(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a target's data (`units.array2d.shape.0`), or KeyError."""
    node: Any = data
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


def set_field(data: dict[str, Any], path: str, value: float) -> None:
    """Set a dotted path of target data; a list field (a unit's shape) given one number has every
    entry set to it (`units.array2d.shape: 64` is a 64x64 array)."""
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if isinstance(node[key], list):
        node[key] = [value] * len(node[key])
    else:
        node[key] = value


def integer_field(path: str) -> bool:
    return path in INTEGER_FIELDS or (path.startswith("units.") and ".shape" in path)


def _parameters(data: MarkedDict, target: dict[str, Any]):
    vary = data.get("vary") or MarkedDict()
    if not isinstance(vary, MarkedDict):
        raise CascadeError(f"{data.where('vary')}: vary is a table: NAME: {{target: FIELD or shape: RANK, "
                           "values: [...]}}")
    for name, spec in vary.items():
        if not isinstance(spec, MarkedDict):
            raise CascadeError(f"{vary.where(name)}: parameter {name}: expected {{target: FIELD, values: [...]}} "
                               "or {shape: RANK, values: [...]}")
        _known(spec, ("target", "shape", "values", "range"), f"parameter {name}")
        if ("target" in spec) == ("shape" in spec):
            raise CascadeError(f"{spec.where()}: parameter {name}: give one of 'target: FIELD' (a numeric target "
                               "field, e.g. units.array2d.shape or dram.bandwidth_bytes_per_s) or 'shape: RANK'")
        kind = "target" if "target" in spec else "shape"
        raw = spec[kind]
        entries = tuple(raw) if isinstance(raw, list) else (raw,)
        fields, scales = _scaled_fields(entries, kind, name, spec.where(kind))
        values = _values(spec, name)
        integral = kind == "shape" or any(integer_field(f) and k == 1 for f, k in zip(fields, scales))
        for f, k in zip(fields, scales):
            if integer_field(f) and not float(k).is_integer():
                raise CascadeError(f"{spec.where(kind)}: parameter {name}: {f} takes integers: give it an "
                                   f"integer factor (times: {k!r})")
        if integral and not all(float(v).is_integer() and v > 0 for v in values):
            raise CascadeError(f"{spec.where('values' if 'values' in spec else 'range')}: parameter {name}: "
                               f"{', '.join(fields)} take positive integers")
        if integral:
            values = tuple(int(v) for v in values)
        if kind == "target":
            for f in fields:
                try:
                    current = field_value(target, f)
                except KeyError:
                    raise CascadeError(f"{spec.where('target')}: parameter {name}: the target has no field {f} "
                                       "(write a dotted path such as units.array2d.shape, units.array2d.shape.0, "
                                       "buffer.capacity_bytes, dram.bandwidth_bytes_per_s, clock_hz)") from None
                if not (_number(current) or (isinstance(current, list) and current and all(map(_number, current)))):
                    raise CascadeError(f"{spec.where('target')}: parameter {name}: target field {f} is "
                                       f"{current!r}, not a number")
        yield Parameter(str(name), kind, fields, values, spec.where(kind),
                        scales if any(k != 1 for k in scales) else ())


def _scaled_fields(entries: tuple, kind: str, name: str, where: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """A parameter's fields and their factors: a name is set to the value, `{field: F, times: K}`
    to the value times K (a quantity that scales with the parameter: a buffer's area with PE_dim)."""
    fields, scales = [], []
    for e in entries:
        if isinstance(e, str) and e:
            fields.append(e)
            scales.append(1)
        elif kind == "target" and isinstance(e, dict) and set(e) == {"field", "times"} \
                and isinstance(e["field"], str) and e["field"] and _number(e["times"]) and e["times"] > 0:
            fields.append(e["field"])
            scales.append(e["times"])
        else:
            raise CascadeError(f"{where}: parameter {name}: {kind} is a name or a list of names"
                               + (" or {field: FIELD, times: K} (set to the value times K, K > 0)"
                                  if kind == "target" else ""))
    if not fields:
        raise CascadeError(f"{where}: parameter {name}: {kind} is a name or a list of names")
    return tuple(fields), tuple(scales)


def _bundled_mapping(find, raw: str) -> Path:
    parts = Path(raw).with_suffix("").parts
    if len(parts) != 2:
        raise CascadeError(raw)
    return find(*parts)


def _mapping_choice(table: MarkedDict, base: Path, names: set[str], files: dict[str, str], label: str):
    """(Mapping or None, tiles, SearchChoice or None) from a table's 'mapping:' / 'search:'."""
    from ..mapping.mapping_file import parse_mapping
    from ..resources import bundled_mapping
    from ..yaml_text import read_input

    if "mapping" in table and "search" in table:
        raise CascadeError(f"{table.where('search')}: give 'mapping:' or 'search:', not both")
    if "search" in table:
        s = table["search"]
        if not isinstance(s, MarkedDict):
            raise CascadeError(f"{table.where('search')}: search is {{objective: latency, budget_s: 10}}")
        _known(s, ("objective", "budget_s"), "search")
        objective, budget = s.get("objective", "latency"), s.get("budget_s", 10.0)
        if objective not in OBJECTIVES:
            raise CascadeError(f"{s.where('objective')}: objective {objective!r}: choose {', '.join(OBJECTIVES)}")
        if not _number(budget) or budget <= 0:
            raise CascadeError(f"{s.where('budget_s')}: budget_s is a positive number of seconds per point")
        return None, {}, SearchChoice(objective, float(budget))
    raw = table.get("mapping", "default")
    tiles_raw: Any = None
    where = table.where("mapping")
    if isinstance(raw, MarkedDict):
        _known(raw, ("file", "tiles"), "mapping")
        tiles_raw, where, raw = raw.get("tiles"), raw.where("file"), raw.get("file", "default")
    if raw == "default":
        mapping = None
    else:
        path = _locate(raw, base, lambda r: _bundled_mapping(bundled_mapping, r))
        if path is None:
            raise CascadeError(f"{where}: mapping {raw!r}: no such file next to the config, nor a bundled mapping "
                               "(write FOLDER/NAME.yaml, e.g. mha_1pass/fusemax.yaml)")
        text = read_input(path, "mapping", CascadeError)
        files[f"mapping {label}"] = text
        try:
            mapping = parse_mapping(text, str(path))
        except CascadeError as exc:
            raise CascadeError(f"{where}: mapping {raw!r} is not valid:\n{exc}") from None
    tiles: dict[str, tuple[int | str, ...]] = {}
    if tiles_raw is not None:
        if not isinstance(tiles_raw, MarkedDict):
            raise CascadeError(f"{where}: tiles is a table RANK: [tile, ...] (numbers or parameter names)")
        for rank, levels in tiles_raw.items():
            ok = isinstance(levels, list) and levels and all(
                (isinstance(t, int) and not isinstance(t, bool) and t > 0) or (isinstance(t, str) and t in names)
                for t in levels)
            if not ok:
                raise CascadeError(f"{tiles_raw.where(rank)}: tiles of {rank}: a list of positive integers or names "
                                   f"of integer parameters ({', '.join(sorted(names)) or 'none declared'})")
            tiles[str(rank)] = tuple(levels)
    return mapping, tiles, None


def _workloads(data: MarkedDict, base: Path, parameters: tuple[Parameter, ...], files: dict[str, str]):
    from ..api import loads
    from ..lang.shapes import known_ranks
    from ..yaml_text import read_input

    items = _require(data, "workloads", "a DSE config")
    if not isinstance(items, MarkedList) or not items:
        raise CascadeError(f"{data.where('workloads')}: workloads is a list of {{name, spec, shapes}}")
    integer_names = {p.name for p in parameters if all(isinstance(v, int) for v in p.values)}
    swept = {r: p for p in parameters if p.kind == "shape" for r in p.fields}
    seen: set[str] = set()
    for i, w in enumerate(items):
        if not isinstance(w, MarkedDict):
            raise CascadeError(f"{items.where(i)}: a workload is {{name: ..., spec: FILE.einsum, shapes: {{...}}}}")
        _known(w, WORKLOAD_KEYS, "a workload")
        spec_raw = _require(w, "spec", "a workload")
        from ..resources import bundled_path

        path = _locate(spec_raw, base, lambda r: bundled_path(*Path(r).parts))
        if path is None:
            raise CascadeError(f"{w.where('spec')}: spec {spec_raw!r}: no such file next to the config, nor a bundled "
                               "spec (e.g. attention/mha_1pass.einsum)")
        name = str(w.get("name") or path.stem)
        if name in seen:
            raise CascadeError(f"{w.where('name')}: workload name {name!r} is used twice")
        seen.add(name)
        shapes = w.get("shapes") or {}
        if not isinstance(shapes, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                   for v in shapes.values()):
            raise CascadeError(f"{w.where('shapes')}: shapes is a table RANK: positive integer")
        text = read_input(path, "spec", CascadeError)
        files[f"spec {name}"] = text
        try:
            spec = loads(text, {str(k): v for k, v in shapes.items()}, file=str(path))
        except CascadeError as exc:
            raise CascadeError(f"{w.where('shapes' if 'shapes' in w else 'spec')}: workload {name}:\n{exc}") from None
        ranks = known_ranks(spec.cascade) - {outer for outer, _ in spec.semantics.splits.values()}
        missing = sorted(set(swept) - ranks)
        if missing:
            raise CascadeError(f"{swept[missing[0]].where}: parameter {swept[missing[0]].name} sweeps rank "
                               f"{missing[0]}, which workload {name} ({path.name}) does not have (its ranks: "
                               f"{', '.join(sorted(ranks))})")
        own = w if ("mapping" in w or "search" in w) else data
        mapping, tiles, search = _mapping_choice(own, base, integer_names, files, name)
        yield Workload(name, str(path), text, {str(k): v for k, v in shapes.items()}, mapping, tiles, search,
                       dict(spec.semantics.splits))


def _metrics(data: MarkedDict) -> tuple[str, ...]:
    raw = data.get("metrics")
    if raw is None:
        return METRICS
    if not isinstance(raw, MarkedList) or not raw:
        raise CascadeError(f"{data.where('metrics')}: metrics is a list from {', '.join(METRICS)}")
    for i, m in enumerate(raw):
        if m not in METRICS:
            raise CascadeError(f"{raw.where(i)}: unknown metric {m!r}: choose from {', '.join(METRICS)}")
    return tuple(dict.fromkeys(raw))
