"""Partitions of one fusion group's own: a mapping's `partitioning` entries keyed by an Einsum.

`partitioning: {P: [uniform_shape(256)], QK: {P: [uniform_shape(131072), uniform_shape(256)]}}`
tiles P in tiles of 256 for the cascade and in QK's fusion group as 131072-row blocks of 256.
Between fusion groups every intermediate goes through DRAM and each group runs its own loop
nest, so a group may partition a rank its own way without changing anything another group
sees: this module checks the entries against the cascade and binds the cascade once per
distinct partitioning, each binding serving the groups that run under it
(`MappedCascade.variants`, `owner`, `bindings`). Consumers cost or generate each group from its
owner binding; the group's statements, loads and storage there are exactly those of a cascade
partitioned that way throughout.

Refused (exit 2, naming the entry): an unknown Einsum; a rank the Einsum does not iterate; a
rank the cascade splits itself (`split M = M1 * M0`, or a part of one: the split is part of the
math, one shape for every statement); and an Einsum whose fusion group has another member that
iterates the rank without the same entry (one loop nest serves the whole group).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from ..errors import MappingError
from ..lang.semantics import Semantics
from .mapping_file import Mapping, SpaceTime


def bind_variants(sem: Semantics, mapping: Mapping, shapes: dict[str, int], bind_one: Callable[[Mapping], Any],
                  groups: list[list[int]]) -> Any:
    """The `MappedCascade` of `bind_one(mapping)` for the groups under the cascade's partitioning,
    with `variants` for the rest; `groups` are the statements of each fusion group
    (`schedule.bind_mapping` passes its binder, so this module needs nothing of `schedule`)."""
    check_entries(sem, mapping)
    einsums = [list(dict.fromkeys(sem.statements[k].name for k in ks if not sem.statements[k].is_init))
               for ks in groups]
    by_partitioning: dict[tuple, list[int]] = {}
    base = _key(mapping.partitioning)
    for gi, names in enumerate(einsums):
        by_partitioning.setdefault(_key(group_partitioning(sem, mapping, names)), []).append(gi)
    by_partitioning.setdefault(base, [])
    bound: dict[tuple, Any] = {}
    elsewhere = set().union(*(level_names(sem, dict(key)) for key in by_partitioning))
    for key, members in by_partitioning.items():
        owned = [n for gi in members for n in einsums[gi]]
        mc = bind_one(restricted(sem, mapping, dict(key), owned, elsewhere))
        bound[key] = replace(mc, mapping=replace(mc.mapping, einsum_partitioning=mapping.einsum_partitioning))
    variants = tuple((tuple(members), bound[key]) for key, members in by_partitioning.items() if key != base)
    return replace(bound[base], variants=variants)


def check_entries(sem: Semantics, mapping: Mapping) -> None:
    where = mapping.file
    info = {s.name: s for s in sem.statements if not s.is_init}
    split_parts = {p: r for r, parts in sem.splits.items() for p in parts}
    for einsum, entry in mapping.einsum_partitioning.items():
        key = f"{where}: partitioning.{einsum}"
        if einsum not in info:
            raise MappingError(f"{key}: unknown Einsum {einsum}: the Einsums are {', '.join(sorted(info))} "
                               "(a list of levels partitions a rank; a table, an Einsum's fusion group)")
        iterated = sorted({v.upper() for v in info[einsum].variables})
        for rank in entry:
            if rank in sem.splits or rank in split_parts:
                whole = split_parts.get(rank, rank)
                raise MappingError(f"{key}.{rank}: the cascade splits {whole} itself ('split {whole} = "
                                   f"{' * '.join(sem.splits[whole])}'), one shape for every statement: partition it "
                                   f"at the top of `partitioning` for the whole cascade, not per Einsum")
            if rank not in iterated:
                raise MappingError(f"{key}.{rank}: {einsum} does not iterate {rank}; it iterates {', '.join(iterated)}")


def group_partitioning(sem: Semantics, mapping: Mapping, names: list[str]) -> dict[str, tuple[int, ...]]:
    """The partitioning one fusion group (its Einsums' names) runs under; refuses members that
    disagree on a rank they share."""
    iterates = {s.name: {v.upper() for v in s.variables} for s in sem.statements if not s.is_init}
    out = dict(mapping.partitioning)
    for einsum in names:
        for rank, tiles in mapping.einsum_partitioning.get(einsum, {}).items():
            for other in names:
                if rank in iterates[other] and mapping.einsum_partitioning.get(other, {}).get(rank) != tiles:
                    raise MappingError(
                        f"{mapping.file}: partitioning.{einsum}.{rank}: {einsum} shares {rank} with {other} in fusion "
                        f"group [{', '.join(names)}], whose one loop nest runs both: an Einsum's own partition is "
                        f"for a rank its group's other Einsums do not iterate; give {other} the same entry, or put "
                        f"{einsum} in a fusion group of its own")
            out[rank] = tiles
    return out


def level_names(sem: Semantics, partitioning: dict[str, tuple[int, ...]]) -> set[str]:
    """The rank and level names a loop order may list under `partitioning`."""
    ranks = {v.upper() for s in sem.statements for v in s.variables}
    known = {r for r in ranks if r not in partitioning}
    known |= {f"{r}{j}" for r, tiles in partitioning.items() for j in range(len(tiles) + 1)}
    return known | {p for parts in sem.splits.values() for p in parts}


def restricted(sem: Semantics, mapping: Mapping, partitioning: dict[str, tuple[int, ...]], owned: list[str],
               elsewhere: set[str]) -> Mapping:
    """The mapping for a binding under `partitioning`: the per-Einsum loop orders and spacetimes
    of the Einsums it serves only, and the `default` entries without the levels of another
    binding's partitioning (`elsewhere`: a group's own levels), so that the Einsums another
    binding runs are bound by defaults and never checked against levels not theirs; a name no
    binding knows stays, for binding to refuse."""
    known = level_names(sem, partitioning)

    def here(r: str) -> bool:
        return r in known or r not in elsewhere

    order = {e: o for e, o in mapping.loop_order.items() if e in owned}
    if "default" in mapping.loop_order:
        order["default"] = tuple(r for r in mapping.loop_order["default"] if here(r))
    space = {e: st for e, st in mapping.spacetime.items() if e in owned}
    if "default" in mapping.spacetime:
        st = mapping.spacetime["default"]
        space["default"] = SpaceTime(tuple(r for r in st.space if here(r)), tuple(r for r in st.time if here(r)))
    return replace(mapping, partitioning=partitioning, einsum_partitioning={}, loop_order=order, spacetime=space)


def _key(partitioning: dict[str, tuple[int, ...]]) -> tuple:
    return tuple(sorted(partitioning.items()))


def refuse_variants(mc: Any, what: str) -> None:
    """Exit-2 refusal where a consumer costs or generates one loop nest per rank for the whole
    cascade (`what` names it) and the mapping gives fusion groups partitions of their own."""
    if mc.variants:
        own = ", ".join(mc.mapping.einsum_partitioning)
        raise MappingError(f"{mc.mapping.file}: partitioning: {what} takes one partitioning for the whole cascade, "
                           f"and {own} partition ranks their own way; use `cascade estimate` / the NumPy executor "
                           "(which take each fusion group's own), or move the entries to the top of `partitioning`")
