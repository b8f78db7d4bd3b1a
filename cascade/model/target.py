"""Target (hardware) files -> typed, validated `Target`s; every problem is a `TargetError`.

A spatial target (kind: spatial) has compute units that are PE arrays (`shape: [rows, cols]`
or `[width]`) supporting operation kinds (mac, add, max, divide, exp), a global buffer, DRAM
bandwidth, a clock and the cost of map operators in unit operations (`op_costs`); `buffer.bypass:
true` says operands may stream from DRAM past the buffer into the units (cascade.model.spill);
`buffer.in_place: true` that a fusion group's intermediates share storage once dead
(cascade.model.sharing).
An optional `energy:` section gives picojoules per action (checked by `energy_problems`, used by
cascade.model.energy); an optional `area:` section square micrometres per component
(cascade.model.area).
A grid target (kind: grid, e.g. Tenstorrent Grayskull) adds a `grid:` section (core grid, L1,
tile, DRAM banks and achieved efficiency, NoC, cycles per tile operation, dispatch), checked by
`grid_problems` and read by cascade.model.grayskull.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TargetError
from ..limits import MAX_SHAPE, is_int, quote, read_bool, read_int, read_real
from .area import area_problems

OP_KINDS = ("mac", "add", "max", "divide", "exp")
ENERGY_ACTIONS = (*OP_KINDS, "reg_read", "reg_write", "leak")  # per unit, picojoules (cascade.model.energy)


@dataclass(frozen=True)
class Unit:
    name: str
    shape: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def pes(self) -> int:
        out = 1
        for n in self.shape:
            out *= n
        return out


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    clock_hz: float
    word_bytes: int
    dram_bandwidth: float  # bytes per second
    buffer_bytes: int
    units: dict[str, Unit]
    op_costs: dict[str, dict[str, float]] = field(default_factory=dict)  # op -> {kind: count}
    exp_absorbs_subtract: bool = False
    latency_rule: str = "max_per_group"
    energy: dict[str, Any] = field(default_factory=dict)
    area: dict[str, Any] = field(default_factory=dict)  # cascade.model.area
    extra: dict[str, Any] = field(default_factory=dict)
    file: str = "<target>"
    buffer_bypass: bool = False  # operands may stream from DRAM past the buffer (cascade.model.spill)
    buffer_in_place: bool = False  # intermediates share storage once dead (cascade.model.sharing)


def bundled_targets() -> dict[str, Path]:
    """The targets `-t` accepts by name (specs/targets/*.yaml), name -> file."""
    from ..errors import CascadeError
    from ..resources import bundled_path

    try:
        folder = bundled_path("targets")
    except CascadeError:
        return {}
    return {f.stem: f for f in sorted(folder.glob("*.yaml"))}


def load_target(path: str | Path) -> Target:
    from ..yaml_text import read_input

    if not isinstance(path, (str, Path)):
        from ..limits import quote

        raise TargetError(f"target {quote(path)}: give a target file path or a bundled name such as 'fusemax'")
    p = Path(path)
    if not p.exists() and not p.suffix:
        bundled = bundled_targets()
        if str(path) not in bundled:
            names = ", ".join(bundled) or "none found: is the package installed with its data?"
            raise TargetError(f"{path}: no such target file, nor a bundled target of that name "
                              f"(bundled: {names})")
        p = bundled[str(path)]
    return parse_target(read_input(p, "target", TargetError), str(p))


def parse_target(text: str, file: str = "<target>") -> Target:
    from ..yaml_text import load_yaml

    data = load_yaml(text, file, TargetError)
    if not isinstance(data, dict):
        raise TargetError(f"{file}: a target file is a YAML mapping (name, kind, clock_hz, units, ...)")
    problems: list[str] = []
    read = _FieldReader(file, problems)
    unknown = [k for k in data if k not in _KNOWN_KEYS]
    if unknown:
        problems.append(f"{file}: {', '.join(quote(k) for k in unknown)}: not a target field "
                        f"(the fields: {', '.join(sorted(_KNOWN_KEYS))})")
    kind = data.get("kind", "spatial")
    if kind == "gpu":  # read by cascade.model.gpu, which only `estimate` uses
        raise TargetError(f"{file}: a `kind: gpu` target is costed by `cascade estimate` only; search, sweep and "
                          "dse take spatial and grid targets")
    if kind not in ("spatial", "grid"):
        problems.append(f"{file}: kind: {quote(kind)} is not one of spatial, grid")
    clock = read.real("clock_hz", data.get("clock_hz"))
    word = read.integer("word_bytes", data.get("word_bytes"), maximum=1024)
    dram = read.table("dram", data.get("dram"), required=True)
    bandwidth = read.real("dram.bandwidth_bytes_per_s", dram.get("bandwidth_bytes_per_s")) if dram else None
    read.no_other_keys("dram", dram, {"bandwidth_bytes_per_s"})
    buffer = read.table("buffer", data.get("buffer"), required=kind == "spatial")
    capacity = read.integer("buffer.capacity_bytes", buffer.get("capacity_bytes")) if kind == "spatial" else None
    read.no_other_keys("buffer", buffer, {"capacity_bytes", "bypass", "in_place"})
    bypass = read.boolean("buffer.bypass", buffer.get("bypass", False)) if buffer else False
    in_place = read.boolean("buffer.in_place", buffer.get("in_place", False)) if buffer else False
    units: dict[str, Unit] = {}
    unit_table = read.table("units", data.get("units"), required=True)
    for name, spec in unit_table.items():
        if not isinstance(spec, dict):
            problems.append(f"{file}: units.{quote(name)}: expected {{shape: [...], ops: [...]}}")
            continue
        read.no_other_keys(f"units.{name}", spec, {"shape", "ops"})
        shape = spec.get("shape", [1])
        ops = spec.get("ops", [])
        if not (isinstance(shape, list) and 0 < len(shape) <= 4
                and all(is_int(n) and 0 < n <= MAX_SHAPE for n in shape)):
            problems.append(f"{file}: units.{name}.shape: expected a list of positive integers like [256, 256], "
                            f"got {quote(shape)}")
            continue
        if not isinstance(ops, list) or not ops or not all(isinstance(o, str) for o in ops):
            problems.append(f"{file}: units.{name}.ops: expected a non-empty list of operation kinds "
                            f"({', '.join(OP_KINDS)}), got {quote(ops)}")
            continue
        bad = [o for o in ops if o not in OP_KINDS]
        if bad:
            problems.append(f"{file}: units.{name}.ops: unknown {', '.join(str(b)[:40] for b in bad)}; "
                            f"the operation kinds are {', '.join(OP_KINDS)}")
            continue
        units[str(name)] = Unit(str(name), tuple(int(n) for n in shape), tuple(ops))
    op_costs: dict[str, dict[str, float]] = {}
    for op, cost in read.table("op_costs", data.get("op_costs")).items():
        if not isinstance(cost, dict) or any(k not in OP_KINDS for k in cost):
            problems.append(f"{file}: op_costs.{quote(op)}: expected {{kind: count}} with kinds from "
                            f"{', '.join(OP_KINDS)}")
            continue
        counts = {k: read.real(f"op_costs.{op}.{k}", v, minimum=0, above=False) for k, v in cost.items()}
        if all(v is not None for v in counts.values()):
            op_costs[str(op)] = {k: int(v) if float(v).is_integer() else float(v) for k, v in counts.items()}
    absorbs = read.boolean("exp_absorbs_subtract", data.get("exp_absorbs_subtract", False))
    latency = data.get("latency", "max_per_group")
    if latency != "max_per_group":
        problems.append(f"{file}: latency: {quote(latency)} is not a latency rule (the rule: max_per_group)")
    problems.extend(energy_problems(data.get("energy"), units, file))
    problems.extend(area_problems(data.get("area"), units, file))
    if not isinstance(data.get("name", ""), (str, type(None))):
        problems.append(f"{file}: name: expected a string, got {quote(data.get('name'))}")
    if kind == "grid":
        problems.extend(grid_problems(data.get("grid"), units, file))
    if problems:
        raise TargetError("\n".join(problems))
    return Target(
        name=str(data.get("name") or Path(file).stem), kind=kind, clock_hz=float(clock), word_bytes=int(word),
        dram_bandwidth=float(bandwidth), buffer_bytes=int(capacity or 0), units=units, op_costs=op_costs,
        exp_absorbs_subtract=bool(absorbs), latency_rule=str(latency),
        energy=dict(data.get("energy") or {}), area=dict(data.get("area") or {}),
        extra={k: v for k, v in data.items() if k not in _TYPED_KEYS}, file=file, buffer_bypass=bool(bypass),
        buffer_in_place=bool(in_place),
    )


_TYPED_KEYS = {"name", "kind", "clock_hz", "word_bytes", "dram", "buffer", "units", "op_costs",
               "exp_absorbs_subtract", "latency", "energy", "area"}
_KNOWN_KEYS = _TYPED_KEYS | {"grid"}


class _Bad(Exception):
    pass


class _FieldReader:
    """Reads one target file's fields through the validated-number reader, collecting problems."""

    def __init__(self, file: str, problems: list[str]):
        self.file, self.problems = file, problems

    def _take(self, reader: Any, key: str, value: Any, **kw: Any) -> Any:
        if value is None:
            self.problems.append(f"{self.file}: {key}: missing")
            return None
        try:
            return reader(value, f"{self.file}: {key}", _Bad, **kw)
        except _Bad as exc:
            self.problems.append(str(exc))
            return None

    def real(self, key: str, value: Any, minimum: float = 0.0, above: bool = True) -> float | None:
        return self._take(read_real, key, value, minimum=minimum, above=above)

    def integer(self, key: str, value: Any, maximum: int = 1 << 62) -> int | None:
        return self._take(read_int, key, value, minimum=1, maximum=maximum)

    def boolean(self, key: str, value: Any) -> bool | None:
        return self._take(read_bool, key, value)

    def table(self, key: str, value: Any, required: bool = False) -> dict:
        if value is None and not required:
            return {}
        if not isinstance(value, dict) or (required and not value):
            got = "missing" if value is None else f"got {quote(value)}"
            self.problems.append(f"{self.file}: {key}: expected a mapping of fields, {got}")
            return {}
        return value

    def no_other_keys(self, key: str, table: dict, allowed: set[str]) -> None:
        unknown = [k for k in table if k not in allowed]
        if unknown:
            self.problems.append(f"{self.file}: {key}: {', '.join(quote(k) for k in unknown)} not a field here "
                                 f"(the fields: {', '.join(sorted(allowed))})")


def energy_problems(section: Any, units: dict, file: str) -> list[str]:
    """What is wrong with a target's `energy:` section (the nested or the flat form)."""
    if section is None:
        return []
    if not isinstance(section, dict):
        return [f"{file}: energy: expected a mapping (dram, buffer, units), got {section!r}"]
    out = []

    def numbers(where: str, table: Any, allowed: tuple[str, ...]) -> None:
        if not isinstance(table, dict):
            out.append(f"{file}: {where}: expected {{action: picojoules}}, got {table!r}")
            return
        for k, v in table.items():
            if k not in allowed:
                out.append(f"{file}: {where}.{k}: unknown action; the actions are {', '.join(allowed)}")
            elif not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                out.append(f"{file}: {where}.{k}: expected a non-negative number, got {v!r}")

    for key, value in section.items():
        if key == "dram":
            numbers("energy.dram", value, ("read", "write", "bytes_per_action"))
        elif key == "buffer":
            numbers("energy.buffer", value, ("read", "write", "words_per_action", "leak"))
        elif key == "units":
            if not isinstance(value, dict):
                out.append(f"{file}: energy.units: expected {{unit: {{action: picojoules}}}}")
                continue
            for unit, table in value.items():
                if unit not in units:
                    out.append(f"{file}: energy.units.{unit}: not a unit of this target (its units: {', '.join(units)})")
                else:
                    numbers(f"energy.units.{unit}", table, ENERGY_ACTIONS)
        elif key == "dram_byte_pj" or (key.endswith("_pj") and key[:-3] in OP_KINDS):
            numbers("energy", {key: value}, (key,))
        else:
            out.append(f"{file}: energy.{key}: unknown; give dram, buffer and units (picojoules per action)")
    return out


def grid_problems(grid: Any, units: dict[str, Unit], file: str) -> list[str]:
    """What is wrong with the `grid:` section of a `kind: grid` target (a core grid such as
    Tenstorrent Grayskull's): shapes, L1, tile, DRAM banks, NoC, per-tile cycles, dispatch."""
    if not isinstance(grid, dict):
        return [(f"{file}: grid: missing: a grid target needs a 'grid:' section (shape, compute, l1_bytes, tile, "
                 "dram_banks, dram_efficiency, noc, tile_cycles, dispatch_s)")]
    out: list[str] = []

    def positive(key: str, value: Any, integer: bool = False, zero_ok: bool = False) -> bool:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (value >= 0 if zero_ok else value > 0))
        if ok and integer and not float(value).is_integer():
            ok = False
        if not ok:
            what = "a non-negative" if zero_ok else "a positive"
            out.append(f"{file}: grid.{key}: expected {what} {'integer' if integer else 'number'}, got {quote(value)}")
        return ok

    def pair(key: str) -> tuple[int, int] | None:
        value = grid.get(key)
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)):
            out.append(f"{file}: grid.{key}: expected [rows, columns] of positive integers, got {quote(value)}")
            return None
        return value[0], value[1]

    shape, compute = pair("shape"), pair("compute")
    if shape and compute and (compute[0] > shape[0] or compute[1] > shape[1]):
        out.append(f"{file}: grid.compute: {list(compute)} compute cores do not fit the {list(shape)} grid")
    pair("tile")
    positive("l1_bytes", grid.get("l1_bytes"), integer=True)
    positive("dram_banks", grid.get("dram_banks"), integer=True)
    eff: Any = grid.get("dram_efficiency")
    if positive("dram_efficiency", eff) and eff > 1:
        out.append(f"{file}: grid.dram_efficiency: {eff} is a fraction of the peak bandwidth, at most 1")
    positive("dispatch_s", grid.get("dispatch_s"), zero_ok=True)
    noc = grid.get("noc")
    if not isinstance(noc, dict):
        out.append(f"{file}: grid.noc: expected {{count, core_bandwidth_bytes_per_s, round_trip_cycles}}")
    else:
        positive("noc.count", noc.get("count"), integer=True)
        positive("noc.core_bandwidth_bytes_per_s", noc.get("core_bandwidth_bytes_per_s"))
        positive("noc.round_trip_cycles", noc.get("round_trip_cycles"), zero_ok=True)
    for key, required in (("tile_cycles", True), ("reduce_tile_cycles", False)):
        table = grid.get(key)
        if table is None and not required:
            continue
        if not isinstance(table, dict):
            out.append(f"{file}: grid.{key}: expected {{unit: {{kind: cycles per 32x32 tile}}}}")
            continue
        for unit, costs in table.items():
            if unit not in units:
                out.append(f"{file}: grid.{key}.{unit}: not a unit of this target (its units: {', '.join(units)})")
            elif not isinstance(costs, dict):
                out.append(f"{file}: grid.{key}.{unit}: expected {{kind: cycles}}")
            else:
                for op, cycles in costs.items():
                    if op not in units[unit].ops:
                        out.append(f"{file}: grid.{key}.{unit}.{op}: {unit} does not do '{op}' "
                                   f"(its ops: {', '.join(units[unit].ops)})")
                    else:
                        positive(f"{key}.{unit}.{op}", cycles)
        if required:
            for unit, spec in units.items():
                given: Any = table.get(unit) if isinstance(table.get(unit), dict) else {}
                missing = [op for op in spec.ops if op not in given]
                if missing:
                    out.append(f"{file}: grid.tile_cycles.{unit}: missing the cycles of {', '.join(missing)}")
    return out
