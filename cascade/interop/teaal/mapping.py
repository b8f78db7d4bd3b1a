"""TeAAL's `mapping` section (rank-order, partitioning, loop-order, spacetime) -> a cascade mapping.

The result uses the same vocabulary as the cascade's own mapping files. TeAAL partitions per
Einsum, a cascade per rank, so consistent per-Einsum splits are merged (an Einsum that did not
split a rank iterates its parts in place of it: the same order). Whatever cannot be carried over
(occupancy-based or flattening partitions, `.pos`/`.coord` qualifiers, inconsistent tiles, ...)
is skipped with one report line; the mapping section never makes the import fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from itertools import pairwise
from pathlib import Path
from typing import Any

from ...errors import InternalError, MappingError
from .common import DEFAULT_SHAPE, RANK, ImportLog

MAPPING_KEYS = ("rank-order", "partitioning", "loop-order", "spacetime")
_LEVEL = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*\Z")
_UNMODELLED_PARTITIONS = {
    "uniform_occupancy": "occupancy-based partitioning (equal nonzeros per tile, for sparse tensors) is not modelled",
    "nway_shape": "nway_shape (a fixed number of tiles) is not modelled: give uniform_shape tile shapes",
    "flatten": "flatten() (merging ranks into one) is not modelled",
}


class MappingReader:
    """Reads the mapping section of a cascade whose tensors (`ranks_of`) and Einsums (`iters`) are
    known; afterwards `parts` and `tiles` hold each partitioned rank's parts and tile shapes."""

    def __init__(self, log: ImportLog, ranks_of: dict[str, tuple[str, ...]], iters: dict[str, tuple[str, ...]]):
        self.note = log.note
        self.ranks_of, self.iters = ranks_of, iters
        self.parts: dict[str, tuple[str, ...]] = {}  # partitioned rank -> its parts, outermost first
        self.tiles: dict[str, tuple[int, ...]] = {}

    def read(self, section: MappingABC[str, Any]) -> tuple[dict, dict, dict, dict]:
        """The mapping section -> (partitioning, loop-order, spacetime, rank-order) tables."""
        for key in section:
            if key not in MAPPING_KEYS:
                self.note(f"mapping.{key}: not a TeAAL mapping key ({', '.join(MAPPING_KEYS)}): skipped")
        self.partitioning(self.table("partitioning", section.get("partitioning")))
        loop_order = {}
        for einsum, names in self.per_einsum("loop-order", section.get("loop-order")):
            order = self.rank_list(f"loop-order.{einsum}", names)
            expanded = None if order is None else self.expand(f"loop-order.{einsum}", einsum, [order])
            if expanded is not None:
                loop_order[einsum] = expanded[0]
        spacetime = {}
        for einsum, entry in self.per_einsum("spacetime", section.get("spacetime")):
            if (st := self.spacetime(einsum, entry)) is not None:
                spacetime[einsum] = st
        rank_order = {}
        for tensor, names in self.table("rank-order", section.get("rank-order")).items():
            order = self.rank_list(f"rank-order.{tensor}", names)
            if order is None:
                continue
            if tensor not in self.ranks_of:
                self.note(f"rank-order.{tensor}: no tensor {tensor}: skipped")
            elif sorted(order) != sorted(self.ranks_of[tensor]):
                self.note(f"rank-order.{tensor}: [{', '.join(order)}] is not an order of "
                          f"[{', '.join(self.ranks_of[tensor])}]: skipped")
            else:
                rank_order[tensor] = order
        return dict(self.tiles), loop_order, spacetime, rank_order

    def table(self, key: str, value: Any) -> dict:
        if value is None:
            return {}
        if not isinstance(value, MappingABC):
            self.note(f"{key}: expected a table (name: value lines), got a {type(value).__name__}: skipped")
            return {}
        return {str(k): v for k, v in value.items()}

    def per_einsum(self, key: str, value: Any):
        for einsum, entry in self.table(key, value).items():
            if einsum not in self.iters:
                self.note(f"{key}.{einsum}: no expression writes {einsum}: skipped")
            else:
                yield einsum, entry

    def rank_list(self, key: str, value: Any) -> list[str] | None:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and RANK.match(v) for v in value):
            self.note(f"{key}: expected a list of rank names, got {value!r}: skipped")
            return None
        return value

    def partitioning(self, table: dict[str, Any]) -> None:
        given: dict[str, tuple[tuple[int, ...], str]] = {}
        dropped: set[str] = set()
        named: set[tuple[str, str]] = set()  # (Einsum, rank) pairs the spec partitions
        for einsum, ranks in table.items():
            if einsum not in self.iters:
                self.note(f"partitioning.{einsum}: no expression writes {einsum}: skipped")
                continue
            for rank, levels in self.table(f"partitioning.{einsum}", ranks).items():
                key = f"partitioning.{einsum}.{rank}"
                named.add((einsum, rank))
                tiles = self.levels(key, rank, einsum, levels)
                if tiles is None:
                    dropped.add(rank)
                elif rank in given and given[rank][0] != tiles:
                    other, first = given[rank]
                    self.note(f"{key}: tiles {list(tiles)} differ from {first}'s {list(other)}: a cascade splits "
                              f"a rank once for all Einsums, so {rank} is left unpartitioned")
                    dropped.add(rank)
                else:
                    given.setdefault(rank, (tiles, einsum))
        all_ranks = {r for rs in self.ranks_of.values() for r in rs}
        for rank, (tiles, einsum) in given.items():
            if rank in dropped:
                continue
            parts = tuple(f"{rank}{k}" for k in range(len(tiles), -1, -1))
            clash = [p for p in parts if p in all_ranks]
            if clash:
                self.note(f"partitioning.{einsum}.{rank}: its parts {', '.join(parts)} clash with rank "
                          f"{clash[0]} of the spec: {rank} left unpartitioned")
                continue
            self.tiles[rank], self.parts[rank] = tiles, parts
        for rank in self.parts:
            others = [e for e, rs in self.iters.items() if rank in rs and (e, rank) not in named]
            if others:
                self.note(f"partitioning.{rank}: given for {given[rank][1]}, applies to the whole cascade "
                          f"({', '.join(others)} also iterate{'s' if len(others) == 1 else ''} its parts)")

    def levels(self, key: str, rank: str, einsum: str, levels: Any) -> tuple[int, ...] | None:
        if rank.startswith("("):
            self.note(f"{key}: {_UNMODELLED_PARTITIONS['flatten']}: skipped")
            return None
        if rank not in self.iters[einsum]:
            self.note(f"{key}: {einsum} does not iterate a rank {rank}: skipped")
            return None
        levels = [levels] if isinstance(levels, str) else levels
        if not isinstance(levels, list) or not levels:
            self.note(f"{key}: expected a list of levels like [uniform_shape(4)]: {rank} left unpartitioned")
            return None
        tiles: list[int] = []
        symbolic: list[str] = []
        for level in levels:
            match = _LEVEL.match(str(level))
            style = match.group(1) if match else str(level)
            if style in _UNMODELLED_PARTITIONS:
                self.note(f"{key}: {level}: {_UNMODELLED_PARTITIONS[style]}; {rank} left unpartitioned")
                return None
            if match is None or style != "uniform_shape":
                self.note(f"{key}: {level}: not a TeAAL partitioning style the importer knows "
                          f"(uniform_shape(N)); {rank} left unpartitioned")
                return None
            arg = match.group(2).strip()
            if arg.isdigit() and int(arg) >= 1:
                tiles.append(int(arg))
            elif re.fullmatch(r"[A-Za-z_]\w*", arg):
                tiles.append(max(1, (tiles[-1] if tiles else DEFAULT_SHAPE) // 2))
                symbolic.append(f"{arg} = {tiles[-1]}")
            else:
                self.note(f"{key}: {level}: a tile shape must be a positive integer; {rank} left unpartitioned")
                return None
        if tiles != sorted(tiles, reverse=True) or any(a % b for a, b in pairwise(tiles)):
            self.note(f"{key}: tiles {tiles} must shrink outermost first, each dividing the one above; "
                      f"{rank} left unpartitioned")
            return None
        if symbolic:
            self.note(f"{key}: symbolic tile shapes set to {', '.join(symbolic)} (TeAAL leaves them as parameters)")
        return tuple(tiles)

    def expand(self, key: str, einsum: str, groups: list[list[str]]) -> list[tuple[str, ...]] | None:
        """Ranks as the mapping names them: an unsplit name of a partitioned rank -> its parts, in place."""
        expected = [p for r in self.iters[einsum] for p in self.parts.get(r, (r,))]
        outs = [[p for n in g for p in self.parts.get(n, (n,))] for g in groups]
        names, flat = [n for g in groups for n in g], [p for o in outs for p in o]
        if sorted(flat) != sorted(expected):
            unknown = [n for n in dict.fromkeys(flat) if n not in expected]
            missing = [n for n in expected if n not in flat]
            twice = [n for n in dict.fromkeys(flat) if flat.count(n) > 1]
            why = "; ".join(f"{', '.join(ns)} {what}" for ns, what in
                            ((unknown, "not among them"), (missing, "missing"), (twice, "repeated")) if ns)
            self.note(f"{key}: [{', '.join(names)}] skipped: {einsum} loops over {', '.join(expected)} ({why})")
            return None
        if flat != names:
            self.note(f"{key}: [{', '.join(names)}] read as [{', '.join(flat)}] (the whole cascade splits "
                      f"{', '.join(n for n in names if n in self.parts)}; the same order)")
        return [tuple(o) for o in outs]

    def spacetime(self, einsum: str, entry: Any) -> tuple[tuple[str, ...], ...] | None:
        key = f"spacetime.{einsum}"
        if not isinstance(entry, MappingABC) or not all(isinstance(entry.get(p) or [], list)
                                                        for p in ("space", "time")):
            self.note(f"{key}: expected {{space: [...], time: [...]}}: skipped")
            return None
        for extra in entry:
            if extra not in ("space", "time"):
                self.note(f"{key}.{extra}: {entry[extra]!r}: TeAAL spacetime optimisations are not modelled: skipped")
        lists = []
        for part in ("space", "time"):
            raw = [str(r) for r in entry.get(part) or []]
            qualified = [r for r in raw if "." in r]
            if qualified:
                self.note(f"{key}.{part}: qualifiers dropped from {', '.join(qualified)} (cascade does not "
                          "distinguish position- from coordinate-space)")
            names = self.rank_list(f"{key}.{part}", [r.split(".", 1)[0] for r in raw])
            if names is None:
                return None
            lists.append(names)
        expanded = self.expand(key, einsum, lists)
        return None if expanded is None else tuple(expanded)


def mapping_text(file: str, partitioning: dict, loop_order: dict, spacetime: dict, rank_order: dict) -> str:
    """The mapping YAML text for the tables `MappingReader.read` returns (checked by parsing it)."""
    from ...mapping.mapping_file import parse_mapping

    def names(xs) -> str:
        return f"[{', '.join(xs)}]"

    lines = [f"# Mapping imported from the TeAAL specification {Path(file).name} by `cascade import-teaal`.",
             "# Skipped or changed sections are listed in the header of the .einsum file."]
    if partitioning:
        lines.append("partitioning:")
        lines += [f"  {r}: {names(f'uniform_shape({n})' for n in tiles)}" for r, tiles in partitioning.items()]
    if loop_order:
        lines.append("loop-order:")
        lines += [f"  {e}: {names(order)}" for e, order in loop_order.items()]
    if spacetime:
        lines.append("spacetime:")
        lines += [f"  {e}: {{space: {names(s)}, time: {names(t)}}}" for e, (s, t) in spacetime.items()]
    if rank_order:
        lines.append("rank-order:")
        lines += [f"  {t}: {names(order)}" for t, order in rank_order.items()]
    text = "\n".join(lines) + "\n"
    try:
        parse_mapping(text, f"{Path(file).stem}.yaml")
    except MappingError as exc:
        raise InternalError(f"import-teaal wrote a mapping that does not parse: {exc}") from None
    return text
