"""Mapping files (YAML, TeAAL's vocabulary) -> a typed, validated `Mapping`.

A mapping says in which order and where a cascade is computed, never what: `partitioning`
(rank splits, `uniform_shape(n)` per level, outermost first; an entry keyed by an Einsum's name,
`QK: {P: [uniform_shape(4096)]}`, partitions ranks for that Einsum's fusion group alone, see
`cascade.mapping.variants`), `loop-order` (per Einsum, with a
`default`), `spacetime` (space / time ranks per Einsum, with a `default`), `fusion` (groups of
Einsums sharing one outer loop nest), `binding` (compute unit per Einsum, with a `default`) and
`rank-order` (storage order per tensor) and `accumulate` (per Einsum, with a `default`: where the
partial results of a reduction live while a loop over the reduced rank runs, `on-chip` or
`dram`; see `cascade.mapping.accumulate`), `pipeline` (per fused tile, the phases its Einsums
run in, one after another, the units overlapping inside a phase; `{drain: LM}` waits for LM's
reduction across the array; see `cascade.model.pipeline`), `reload` (per DRAM-resident tensor,
the loops across which it is not kept on chip: its tile is loaded anew at each of their
iterations, as an operand that bypasses the buffer is re-read per pass of the array) and `keep`
(the converse: loops of a mapping partition across which a loaded tensor stays on chip, its load
moved above them and widened to what they cover; see `cascade.mapping.schedule`) and `overlap`
(sets of whole fusion groups that run concurrently, as a pipelined dataflow overlaps its kernels:
their latency is one max(memory, each unit) over the set; see `cascade.model.spatial`) and
`multiple-buffering` (how many copies of each loaded tile the buffer holds, 1 by default; 2 is
double buffering, the next tile fetched while the current one is used, as Timeloop's
`multiple_buffering`: the footprint that decides spilling counts them; see `cascade.model.spill`)
and `buffer-reads` (per tensor the global buffer holds, the Einsums that read it from there, tile
by tile: the buffer's energy is then charged per word moved between it and the arrays; see
`cascade.model.buffer_access`).
Anything left out gets a stated default. This module only reads and checks the file's own
structure; `cascade.mapping.schedule.bind_mapping` checks it against a cascade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MappingError
from ..limits import MAX_SHAPE, quote

KNOWN_KEYS = ("partitioning", "loop-order", "spacetime", "fusion", "binding", "rank-order", "accumulate", "pipeline",
              "reload", "keep", "overlap", "multiple-buffering", "buffer-reads")
MAX_BUFFERING = 8
ACCUMULATE = ("on-chip", "dram")
_UNIFORM = re.compile(r"\s*uniform_shape\(\s*(-?[0-9]{1,20})\s*\)\s*\Z")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class SpaceTime:
    space: tuple[str, ...] = ()
    time: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase of a `pipeline`: Einsums that run together (each unit its own back to back), or
    `drain`: the wait for an Einsum's reduction across the array to leave it."""

    einsums: tuple[str, ...] = ()
    drain: str | None = None


@dataclass(frozen=True)
class Mapping:
    """A mapping file's content. Per-Einsum tables use the key 'default' for the rest."""

    partitioning: dict[str, tuple[int, ...]] = field(default_factory=dict)
    loop_order: dict[str, tuple[str, ...]] = field(default_factory=dict)
    spacetime: dict[str, SpaceTime] = field(default_factory=dict)
    fusion: tuple[tuple[str, ...], ...] = ()
    binding: dict[str, str] = field(default_factory=dict)
    rank_order: dict[str, tuple[str, ...]] = field(default_factory=dict)
    file: str = "<default mapping>"
    accumulate: dict[str, str] = field(default_factory=dict)  # Einsum or 'default' -> 'on-chip' | 'dram'
    pipeline: tuple[Phase, ...] = ()  # per fused tile, in order; empty: the units of a group overlap whole
    reload: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tensor -> loops it is re-loaded in
    keep: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tensor -> loops it stays on chip across
    overlap: tuple[tuple[str, ...], ...] = ()  # sets of Einsums whose fusion groups run concurrently
    multiple_buffering: int = 1  # copies of each loaded tile held on chip (2: double buffering)
    buffer_reads: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tensor -> its readers from the buffer
    einsum_partitioning: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)  # Einsum -> its group's own

    def partitioning_for(self, einsum: str) -> dict[str, tuple[int, ...]]:
        """The partitioning an Einsum's fusion group runs under: the cascade's, with the ranks the
        Einsum's own `partitioning` entry names replaced."""
        return {**self.partitioning, **self.einsum_partitioning.get(einsum, {})}

    def order_for(self, einsum: str) -> tuple[str, ...] | None:
        return self.loop_order.get(einsum, self.loop_order.get("default"))

    def spacetime_for(self, einsum: str) -> SpaceTime:
        return self.spacetime.get(einsum, self.spacetime.get("default", SpaceTime()))

    def unit_for(self, einsum: str) -> str | None:
        return self.binding.get(einsum, self.binding.get("default"))

    def accumulate_for(self, einsum: str) -> str | None:
        """'on-chip', 'dram', or None where the mapping leaves it to the default."""
        return self.accumulate.get(einsum, self.accumulate.get("default"))


def load_mapping(path: str | Path) -> Mapping:
    from ..yaml_text import read_input

    return parse_mapping(read_input(path, "mapping", MappingError), str(path))


def parse_mapping(text: str, file: str = "<mapping>") -> Mapping:
    from ..yaml_text import load_yaml

    data = load_yaml(text, file, MappingError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MappingError(f"{file}: a mapping file is a YAML mapping with keys {', '.join(KNOWN_KEYS)}")
    if "mapping" in data and isinstance(data["mapping"], dict) and not (set(data) & set(KNOWN_KEYS)):
        data = data["mapping"]  # a TeAAL-style file with a top-level 'mapping:' section
    problems: list[str] = []
    for key in data:
        if key not in KNOWN_KEYS:
            problems.append(f"{file}: unknown key {quote(key)}: the keys are {', '.join(KNOWN_KEYS)}")
    reader = _Reader(file, problems)
    ranks, own = reader.partitioning(data.get("partitioning"))
    mapping = Mapping(
        partitioning=ranks,
        einsum_partitioning=own,
        loop_order=reader.name_lists("loop-order", data.get("loop-order")),
        spacetime=reader.spacetime(data.get("spacetime")),
        fusion=reader.fusion(data.get("fusion")),
        binding=reader.binding(data.get("binding")),
        rank_order=reader.name_lists("rank-order", data.get("rank-order")),
        file=file,
        accumulate=reader.accumulate(data.get("accumulate")),
        pipeline=reader.pipeline(data.get("pipeline")),
        reload=reader.name_lists("reload", data.get("reload")),
        keep=reader.name_lists("keep", data.get("keep")),
        overlap=reader.fusion(data.get("overlap"), "overlap"),
        multiple_buffering=reader.buffering(data.get("multiple-buffering", 1)),
        buffer_reads=reader.name_lists("buffer-reads", data.get("buffer-reads")),
    )
    if problems:
        raise MappingError("\n".join(problems))
    return mapping


class _Reader:
    def __init__(self, file: str, problems: list[str]):
        self.file, self.problems = file, problems

    def bad(self, key: str, message: str) -> None:
        self.problems.append(f"{self.file}: {key}: {message}")

    def table(self, key: str, value: Any) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad(key, "expected a table (name: value lines)")
            return {}
        return value

    def names(self, key: str, value: Any) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and _NAME.match(v) for v in value):
            self.bad(key, f"expected a list of names like [P1, M1, P0], got {quote(value)}")
            return None
        if len(set(value)) != len(value):
            repeated = sorted({v for v in value if value.count(v) > 1})
            self.bad(key, f"{', '.join(repeated)} repeated in [{', '.join(value)}]")
            return None
        return tuple(value)

    def partitioning(self, value: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, dict[str, tuple[int, ...]]]]:
        """(rank -> levels for the whole cascade, Einsum -> rank -> levels for its fusion group): a
        list of levels is a rank's, a table of ranks an Einsum's own."""
        ranks: dict[str, tuple[int, ...]] = {}
        own: dict[str, dict[str, tuple[int, ...]]] = {}
        for name, levels in self.table("partitioning", value).items():
            if isinstance(levels, dict):
                if not isinstance(name, str) or not _NAME.match(name):
                    self.bad(f"partitioning.{quote(name)}", "an Einsum's own partitioning is keyed by its name")
                    continue
                entry = {}
                for rank, inner in levels.items():
                    tiles = self.levels(f"partitioning.{name}.{rank}", inner)
                    if tiles is not None:
                        entry[str(rank)] = tiles
                if not levels:
                    self.bad(f"partitioning.{name}", "expected ranks and their levels, e.g. {P: [uniform_shape(4096)]}")
                own[name] = entry
                continue
            tiles = self.levels(f"partitioning.{name}", levels)
            if tiles is not None:
                ranks[str(name)] = tiles
        return ranks, own

    def levels(self, key: str, levels: Any) -> tuple[int, ...] | None:
        if not isinstance(levels, list) or not levels:
            self.bad(key, "expected a list of levels, outermost first, e.g. [uniform_shape(256)]")
            return None
        shapes = []
        for level in levels:
            match = _UNIFORM.match(level) if isinstance(level, str) else None
            if match is None:
                self.bad(key, f"{quote(level)} is not supported: write uniform_shape(N) with N a tile shape")
                return None
            n = int(match.group(1))
            if not 1 <= n <= MAX_SHAPE:
                self.bad(key, f"uniform_shape({n}): a tile shape must be at least 1 and at most {MAX_SHAPE}")
                return None
            shapes.append(n)
        if any(a % b for a, b in zip(shapes, shapes[1:])) or shapes != sorted(shapes, reverse=True):
            self.bad(key, f"levels {shapes} must shrink outermost first and each divide the one above")
            return None
        return tuple(shapes)

    def name_lists(self, key: str, value: Any) -> dict[str, tuple[str, ...]]:
        out = {}
        for name, ranks in self.table(key, value).items():
            names = self.names(f"{key}.{name}", ranks)
            if names is not None:
                out[str(name)] = names
        return out

    def spacetime(self, value: Any) -> dict[str, SpaceTime]:
        out = {}
        for name, entry in self.table("spacetime", value).items():
            key = f"spacetime.{name}"
            if not isinstance(entry, dict) or set(entry) - {"space", "time"}:
                self.bad(key, "expected {space: [...], time: [...]}")
                continue
            space = self.names(f"{key}.space", _strip_qualifiers(entry.get("space")))
            time = self.names(f"{key}.time", _strip_qualifiers(entry.get("time")))
            if space is not None and time is not None:
                if set(space) & set(time):
                    self.bad(key, f"{', '.join(sorted(set(space) & set(time)))} both space and time")
                    continue
                out[str(name)] = SpaceTime(space, time)
        return out

    def fusion(self, value: Any, key: str = "fusion") -> tuple[tuple[str, ...], ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.bad(key, "expected a list of groups, e.g. [[QK, GM, SN]]")
            return ()
        groups = []
        for k, group in enumerate(value):
            names = self.names(f"{key}[{k}]", group)
            if names is not None:
                groups.append(names)
        seen: dict[str, int] = {}
        for k, group in enumerate(groups):
            for name in group:
                if name in seen:
                    self.bad(key, f"{name} is in two groups ({seen[name]} and {k})")
                seen[name] = k
        return tuple(groups)

    def buffering(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BUFFERING:
            self.bad("multiple-buffering", f"expected a whole number of copies from 1 to {MAX_BUFFERING} "
                                           f"(2: double buffering), got {quote(value)}")
            return 1
        return value

    def accumulate(self, value: Any) -> dict[str, str]:
        out = {}
        for name, where in self.table("accumulate", value).items():
            if where not in ACCUMULATE:
                self.bad(f"accumulate.{name}", f"expected {' or '.join(ACCUMULATE)}, got {where!r}")
                continue
            out[str(name)] = where
        return out

    def pipeline(self, value: Any) -> tuple[Phase, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.bad("pipeline", "expected a list of phases, e.g. [[QK, LM], {drain: LM}, [RM]]")
            return ()
        phases = []
        for k, entry in enumerate(value):
            if isinstance(entry, dict):
                drain = entry.get("drain")
                if set(entry) != {"drain"} or not isinstance(drain, str) or not _NAME.match(drain):
                    self.bad(f"pipeline[{k}]", f"expected {{drain: EINSUM}}, got {quote(entry)}")
                    continue
                phases.append(Phase(drain=drain))
                continue
            names = self.names(f"pipeline[{k}]", entry)
            if names is not None:
                phases.append(Phase(einsums=names))
        listed = [n for p in phases for n in p.einsums]
        twice = sorted({n for n in listed if listed.count(n) > 1})
        if twice:
            self.bad("pipeline", f"{', '.join(twice)} in two phases: an Einsum runs in one phase")
        return tuple(phases)

    def binding(self, value: Any) -> dict[str, str]:
        out = {}
        for name, unit in self.table("binding", value).items():
            if not isinstance(unit, str) or not _NAME.match(unit):
                self.bad(f"binding.{name}", f"expected a compute unit name, got {quote(unit)}")
                continue
            out[str(name)] = unit
        return out


def _strip_qualifiers(ranks: Any) -> Any:
    """A spacetime list with qualifiers stripped; anything but a list is passed on for `names` to refuse."""
    if ranks is None:
        return []
    return [_strip_qualifier(r) for r in ranks] if isinstance(ranks, list) else ranks


def _strip_qualifier(rank: Any) -> Any:
    """TeAAL writes `K.pos` / `M.coord` in spacetime; the qualifier does not change the order."""
    if isinstance(rank, str) and "." in rank:
        return rank.split(".", 1)[0]
    return rank


def dump_mapping(mapping: Mapping, comment: str = "") -> str:
    """A mapping as YAML in the file format `load_mapping` reads (comment lines first)."""
    lines = [f"# {line}" for line in comment.splitlines()]

    def shapes(tiles: tuple[int, ...]) -> str:
        return f"[{', '.join(f'uniform_shape({t})' for t in tiles)}]"

    def named_lists(key: str, table: dict[str, tuple[str, ...]]) -> None:  # `key:` then `name: [a, b]` rows
        if table:
            lines.append(f"{key}:")
            lines.extend(f"  {name}: [{', '.join(items)}]" for name, items in table.items())

    def groups(key: str, sets: tuple[tuple[str, ...], ...]) -> None:  # `key:` then `- [a, b]` rows
        if sets:
            lines.append(f"{key}:")
            lines.extend(f"  - [{', '.join(group)}]" for group in sets)

    if mapping.partitioning or mapping.einsum_partitioning:
        lines.append("partitioning:")
        lines.extend(f"  {rank}: {shapes(tiles)}" for rank, tiles in mapping.partitioning.items())
        lines.extend(f"  {einsum}: {{{', '.join(f'{rank}: {shapes(tiles)}' for rank, tiles in entry.items())}}}"
                     for einsum, entry in mapping.einsum_partitioning.items())
    named_lists("loop-order", mapping.loop_order)
    named_lists("rank-order", mapping.rank_order)
    if mapping.spacetime:
        lines.append("spacetime:")
        for name, st in mapping.spacetime.items():
            lines.append(f"  {name}: {{space: [{', '.join(st.space)}], time: [{', '.join(st.time)}]}}")
    groups("fusion", mapping.fusion)
    if mapping.binding:
        lines.append("binding:")
        lines.extend(f"  {name}: {unit}" for name, unit in mapping.binding.items())
    if mapping.accumulate:
        lines.append("accumulate:")
        lines.extend(f"  {name}: {where}" for name, where in mapping.accumulate.items())
    if mapping.pipeline:
        lines.append("pipeline:")
        lines.extend(f"  - {{drain: {p.drain}}}" if p.drain else f"  - [{', '.join(p.einsums)}]"
                     for p in mapping.pipeline)
    named_lists("reload", mapping.reload)
    groups("overlap", mapping.overlap)
    named_lists("keep", mapping.keep)
    named_lists("buffer-reads", mapping.buffer_reads)
    if mapping.multiple_buffering != 1:
        lines.append(f"multiple-buffering: {mapping.multiple_buffering}")
    return "\n".join(lines) + "\n"
