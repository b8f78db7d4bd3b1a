"""Spilling: the part of a fusion group's on-chip data that does not fit the buffer.

A group keeps its loaded tiles (each as many times as the mapping's `multiple-buffering` says:
2 for double buffering) and its on-chip intermediates (tensors no other group reads) in the
global buffer. When that footprint F exceeds the buffer B, the group spills, as the FuseMax
artifact's FLAT and softmax models do (`proportion_spilled`): a fraction
s = (F - B) / I of its intermediates (I elements on chip) does not fit, so s of every write of
an intermediate goes to DRAM and s of every later read of it comes back from DRAM.

A loaded tile cannot be spilled that way (it is already in DRAM). When the loaded tiles alone
fill the buffer of a target whose operands may bypass it (`buffer: {bypass: true}`, as Timeloop's
`bypass` lets the artifact's FLAT stream its `offchip` Q, K and V into the array), the largest
are streamed until the rest fits: a streamed tile is not kept on chip between its uses, so each
statement that reads it fetches its own tile from DRAM at every iteration of its loops. On other
targets such a mapping is refused (smaller tiles fix it), as is one whose on-chip accumulators
alone overflow. The extra traffic is counted access by access over the loops around each
statement, the same count the executor's trace makes when generated for the same target
(`Spec.executor(mapping, target=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import MappingError
from ..mapping.schedule import MappedCascade
from .footprint import load_elements, storage_elements
from .sharing import storage_classes
from .target import Target
from .traffic import Traffic, _Counter


@dataclass(frozen=True)
class GroupSpill:
    group: str
    fraction: float  # s: the part of each intermediate access that goes to DRAM
    footprint_bytes: float  # F: loads plus intermediates, as if the buffer were unbounded
    intermediate_bytes: float  # I
    tensors: tuple[str, ...]  # the group's on-chip intermediates, each spilled by `fraction`
    streamed: tuple[int, ...] = ()  # indices into mc.loads: tiles re-fetched at each use
    streamed_bytes: float = 0.0  # their tiles' size, no longer kept on chip
    streamed_tensors: tuple[str, ...] = ()


def group_footprints(mc: MappedCascade, in_place: bool = False) -> list[tuple[int, int, tuple[str, ...]]]:
    """Per fusion group: (intermediate elements, pinned elements, the on-chip intermediates); pinned
    are the loaded tiles and the on-chip accumulators of DRAM-resident results, never spilled.
    With `in_place` (the target's `buffer.in_place`) intermediates share storage by liveness
    (cascade.model.sharing): the intermediates' part is the largest over the group's steps.
    Loaded tiles count once per copy the mapping's `multiple-buffering` holds."""
    if mc.variants:  # each group from the binding that runs it (cascade.mapping.variants)
        return [_footprints(mc.owner(gi), in_place)[gi] for gi in range(len(mc.groups))]
    return _footprints(mc, in_place)


def _footprints(mc: MappedCascade, in_place: bool) -> list[tuple[int, int, tuple[str, ...]]]:
    """`group_footprints` of one binding, every group as that binding runs it."""
    accumulators = _on_chip_accumulators(mc)
    copies = mc.mapping.multiple_buffering
    out = []
    for group in mc.groups:
        names = list(dict.fromkeys(mc.semantics.statements[k].name for k in group.statements))
        kept = tuple(t for t in names if not mc.storage[t].dram)

        def size(t: str) -> int:
            return storage_elements(mc, t) * (2 if "ring" in mc.storage[t].axes else 1)

        inter = max(sum(max(size(t) for t in cls) for cls in live)
                    for live in storage_classes(mc, group, kept, in_place))
        loads = copies * sum(load_elements(mc, ld) for ld in mc.loads if ld.statements[0] in group.statements)
        loads += sum(accumulators.get(k, 0) for k in group.statements)
        out.append((inter, loads, kept))
    return out


def _on_chip_accumulators(mc: MappedCascade) -> dict[int, int]:
    """statement -> elements of its on-chip accumulator (`traffic.accumulator_elements`)."""
    on_chip = [k for k, where in mc.accumulators.items() if where == "on-chip"]
    if not on_chip:
        return {}
    from .symbols import SymbolTable
    from .traffic import accumulator_elements

    table = SymbolTable(mc)
    for k in mc.accumulators:
        accumulator_elements(mc, table, k)  # create the symbols before substituting
    subs = table.substitutions()
    return {k: int(accumulator_elements(mc, table, k).subs(subs)) for k in on_chip}


def plan_spills(mc: MappedCascade, target: Target, only: tuple[int, ...] | None = None) -> tuple[list[GroupSpill], float]:
    """The groups that spill or stream on `target` and by how much, and the largest footprint
    (bytes, as if unbounded). Refuses a group whose on-chip accumulators alone fill the buffer.
    `only` (group indices) plans those groups alone (a binding that runs only some of them,
    `cascade.mapping.variants`); left out, a mapping with per-group partitions is planned group
    by group from each group's own binding."""
    if only is None and mc.variants:
        spills, worst = [], 0.0
        for binding, groups in mc.bindings():
            part, most = plan_spills(binding, target, groups)
            spills, worst = spills + part, max(worst, most)
        order = [g.name for g in mc.groups]
        return sorted(spills, key=lambda s: order.index(s.group)), worst
    word, buffer = target.word_bytes, target.buffer_bytes
    accumulators = _on_chip_accumulators(mc)
    spills, worst = [], 0.0
    for gi, (group, (inter, loads, kept)) in enumerate(zip(mc.groups, _footprints(mc, target.buffer_in_place))):
        if only is not None and gi not in only:
            continue
        size = (inter + loads) * word
        worst = max(worst, size)
        if not buffer or size <= buffer:
            continue
        streamed: list[int] = []
        if (loads * word >= buffer or not inter) and not target.buffer_bypass:
            if any(mc.accumulators.get(k) == "on-chip" for k in group.statements):
                raise MappingError(f"{mc.mapping.file}: group {group.name} keeps {_size(loads * word)} on chip in "
                                   f"loaded tiles and on-chip accumulators, but {target.name}'s buffer holds "
                                   f"{_size(buffer)}; neither is spilled: use smaller tiles or `accumulate: dram`")
            raise MappingError(f"{mc.mapping.file}: group {group.name} loads {_size(loads * word)} of tiles, "
                               f"but {target.name}'s buffer holds {_size(buffer)} (with its intermediates: "
                               f"{_size(size)}); loaded tiles are not spilled and {target.name} has no "
                               f"`buffer: {{bypass: true}}` to stream them: use smaller tiles")
        if loads * word >= buffer or not inter:  # the loaded tiles must make room: stream the largest
            tiles = sorted(((mc.mapping.multiple_buffering * load_elements(mc, ld), i) for i, ld in enumerate(mc.loads)
                            if ld.statements[0] in group.statements), reverse=True)
            for n, i in tiles:
                if (loads * word < buffer if inter else (inter + loads) * word <= buffer):
                    break
                streamed.append(i)
                loads -= n
            pinned = sum(accumulators.get(k, 0) for k in group.statements)
            if loads * word >= buffer and (inter or loads * word > buffer):
                raise MappingError(f"{mc.mapping.file}: group {group.name} keeps {_size(pinned * word)} on chip in "
                                   f"on-chip accumulators, but {target.name}'s buffer holds {_size(buffer)}; "
                                   f"they are not spilled: use smaller tiles or `accumulate: dram`")
        rest = (inter + loads) * word
        fraction = (rest - buffer) / (inter * word) if inter and rest > buffer else 0.0
        streamed_bytes = size - rest
        spills.append(GroupSpill(group.name, fraction, size, inter * word, kept if fraction else (),
                                 tuple(streamed), streamed_bytes, tuple(mc.loads[i].tensor for i in streamed)))
    return spills, worst


def spill_fractions(spills: list[GroupSpill]) -> dict[str, float]:
    """tensor -> the fraction of its accesses that go to DRAM (what the executor is given)."""
    return {t: s.fraction for s in spills for t in s.tensors if s.fraction}


def streamed_loads(spills: list[GroupSpill]) -> set[int]:
    """Indices into mc.loads of the tiles re-fetched at each use (what the executor is given)."""
    return {i for s in spills for i in s.streamed}


def spill_traffic(mc: MappedCascade, spills: list[GroupSpill]) -> tuple[dict[tuple[int, str, str], Any], _Counter]:
    """(group index, tensor, 'read' | 'write') -> spilled elements (sympy), with the symbol table
    that names its shapes, for the spilled
    intermediates: s times every write of the tensor (and read-modify-write of an accumulation)
    and s times every read of it, each over the loops around its statement."""
    counter = _Counter(mc)
    if not spills:
        return {}, counter
    out: dict[tuple[int, str, str], Any] = {}
    group_of = {k: gi for gi, g in enumerate(mc.groups) for k in g.statements}
    for i in sorted(streamed_loads(spills)):  # each reader fetches its tile at every iteration of its loops
        ld = mc.loads[i]
        if not ld.hoisted:  # a tensor the group writes itself is read at each use already
            continue
        once = counter.count(ld.axes, ld.tensor, ld.path)
        for k in ld.statements:
            key = (group_of[k], ld.tensor, "read")
            share = once if k == ld.statements[0] else 0
            out[key] = out.get(key, 0) + counter.count(ld.axes, ld.tensor, mc.paths[k]) - share
    sp = counter.sp
    fractions = spill_fractions(spills)
    exact = {t: sp.Rational(f) for t, f in fractions.items()}  # the float's exact value, as the executor uses it

    def add(k: int, tensor: str, direction: str, n) -> None:
        key = (group_of[k], tensor, direction)
        out[key] = out.get(key, 0) + exact[tensor] * n

    for k, info in enumerate(mc.semantics.statements):
        path = mc.paths[k]
        for read in info.reads:
            tensor = read.access.tensor
            if tensor in fractions:  # an on-chip tensor is read only inside its own group
                add(k, tensor, "read", counter.count(read.axes, tensor, path))
        if info.name not in fractions:
            continue
        n = counter.count(info.write.axes, info.name, path)
        add(k, info.name, "write", n)
        acc = counter.accumulation_families(info, path)
        if acc:
            loops: dict[str, list[str]] = {}
            for lid in path:
                rank = mc.loop_of[lid]
                loops.setdefault(counter.family(rank), []).append(rank)
            first = sp.Integer(1)
            for fam in acc:
                first = first * counter.family_sum(fam, loops[fam], [], mc.semantics.tensors[info.name])
            add(k, info.name, "read", n - n / first)
    return out, counter


def with_spills(traffic: Traffic, mc: MappedCascade, spills: list[GroupSpill]) -> Traffic:
    """`traffic` plus the spilled elements, per group and per tensor."""
    extra, counter = spill_traffic(mc, spills)
    if not extra:
        return traffic
    from .traffic import TensorTraffic

    by_group = dict(traffic.by_group)
    per = dict(traffic.per_tensor)
    for (gi, tensor, direction), n in extra.items():
        by_group[(gi, tensor, direction)] = by_group.get((gi, tensor, direction), 0) + n
        old = per.get(tensor, TensorTraffic(tensor, 0, 0))
        per[tensor] = TensorTraffic(tensor, old.reads + (n if direction == "read" else 0),
                                    old.writes + (n if direction == "write" else 0))
    return Traffic(per, {**counter.symbols, **traffic.symbols}, {**counter.values, **traffic.values}, by_group)


def spill_lines(spills: list[GroupSpill], per_tensor: dict[str, dict[str, float]]) -> list[str]:
    """For a report: per spilling group, how much does not fit, then 'spilled QK: 96.00 MiB
    written and 192.00 MiB re-read' per tensor."""
    lines = []
    for s in spills:
        if s.streamed:
            names = ", ".join(dict.fromkeys(s.streamed_tensors))
            lines.append(f"group {s.group} needs {_size(s.footprint_bytes)} on chip: its loaded tiles fill the "
                         f"buffer, so {names} ({_size(s.streamed_bytes)}) stream from DRAM, re-read at each use")
            for t in dict.fromkeys(s.streamed_tensors):
                lines.append(f"  streamed {t}: {_size(per_tensor.get(t, {}).get('read_bytes', 0.0))} read in all")
        if not s.fraction:
            continue
        lines.append(f"group {s.group} needs {_size(s.footprint_bytes - s.streamed_bytes)} on chip: {s.fraction:.1%} "
                     f"of its {_size(s.intermediate_bytes)} of intermediates spills to DRAM")
        for t in s.tensors:
            moved = per_tensor.get(t, {})
            lines.append(f"  spilled {t}: {_size(moved.get('write_bytes', 0.0))} written and "
                         f"{_size(moved.get('read_bytes', 0.0))} re-read")
    return lines


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:,.0f} B"
