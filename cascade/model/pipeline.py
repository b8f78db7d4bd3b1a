"""A fused group's compute cycles under the mapping's `pipeline`: phases per tile, one after another.

Without a `pipeline` a group's units overlap whole: the group takes its slowest unit's cycles
(`spatial.estimate_spatial`). A mapping's `pipeline` lists the phases each tile of the group
goes through; a phase ends when its slowest unit ends, and the next starts then:

    pipeline:
      - [QK, LM, RD, AV]     # the 2D array runs QK then LM while the 1D array runs RD then AV
      - {drain: LM}          # then wait for LM's reduction to leave the array
      - [RM]
      - [SLN, SLD, PRM, SPD]
      - [SLNV, SPNV, RNV]

so the group's compute is the sum over phases of max over units (each unit's Einsums of the
phase back to back). Summing each phase over all tiles equals summing per tile and over tiles,
as every tile runs the same phases.

`{drain: X}` is the wait for X's reduction across the array: X reduces a rank that the mapping
lays across an array axis of n PEs (LM's max over the keys M0, across 256 PEs), and when the
next phase needs X's result (RM needs LM), each of X's array steps ends only when its partial
results have passed along the chain of n PEs: n cycles per step, X's cycles times the product
of n over its reduced space axes. This is FuseMax's ablation step before its binding
(the artifact's `StallProposal`: a stall of LM's 2D latency x PE_dim per tile).
"""

from __future__ import annotations

from typing import Any

from ..errors import MappingError
from ..mapping.schedule import Group, MappedCascade
from .target import Target


def drain_chain(mc: MappedCascade, target: Target, name: str, unit: str, axes: list) -> int:
    """The PEs X's partial results pass along: the product of the array axes that hold a rank X
    reduces; `axes` are X's space ranks, each with the rank it tiles (`spatial.space_axes`)."""
    info = next(s for s in mc.semantics.statements if s.name == name and not s.is_init)
    reduced = set(info.reduced)
    chain = 1
    for (rank, whole), n in zip(axes, target.units[unit].shape):
        if rank.lower() in reduced or (whole is not None and whole.lower() in reduced):
            chain *= n
    if chain == 1:
        raise MappingError(f"{mc.mapping.file}: pipeline: {{drain: {name}}}: {name} reduces no rank across the "
                           f"array (its space ranks: {', '.join(r for r, _ in axes) or 'none'}); a drain waits "
                           f"for a reduction along a chain of PEs: drop it or map the reduced rank to space")
    return chain


def pipelined_cycles(mc: MappedCascade, target: Target, group: Group, einsum_cycles: dict[str, tuple[str, float]],
                     axes_of: dict[str, list]) -> tuple[float, list[dict[str, Any]]] | None:
    """(the group's compute cycles, per phase {phase, cycles, unit_cycles}) under the mapping's
    pipeline; None when the pipeline names none of the group's Einsums. `einsum_cycles` maps
    each of the group's Einsums to (unit, cycles): numbers, or sympy expressions (the symbolic
    model's formulas); `axes_of` each to its space axes (`spatial.space_axes`)."""
    names = set(einsum_cycles)
    phases = [p for p in mc.mapping.pipeline if set(p.einsums) & names or p.drain in names]
    if not phases:
        return None
    where = f"{mc.mapping.file}: pipeline"
    listed = {n for p in phases for n in p.einsums}
    for p in phases:
        outside = sorted(set(p.einsums) - names)
        if outside:
            raise MappingError(f"{where}: [{', '.join(p.einsums)}] mixes fusion groups ({', '.join(outside)} is not "
                               f"in group {group.name}); a phase lists Einsums of one group")
    missing = sorted(names - listed)
    if missing:
        raise MappingError(f"{where}: group {group.name}'s {', '.join(missing)} in no phase; list every Einsum "
                           f"of a pipelined group in one phase")
    total = 0.0
    detail = []
    for p in phases:
        if p.drain:
            unit, cycles = einsum_cycles[p.drain]
            steps = cycles * drain_chain(mc, target, p.drain, unit, axes_of[p.drain])
            total += steps
            detail.append({"phase": f"drain {p.drain}", "cycles": steps, "unit_cycles": {unit: steps}})
            continue
        per_unit: dict[str, float] = {}
        for name in p.einsums:
            unit, cycles = einsum_cycles[name]
            per_unit[unit] = per_unit.get(unit, 0.0) + cycles
        longest = _longest(list(per_unit.values()))
        total += longest
        detail.append({"phase": ", ".join(p.einsums), "cycles": longest, "unit_cycles": per_unit})
    return total, detail


def _longest(values: list) -> Any:
    if any(hasattr(v, "free_symbols") for v in values):
        import sympy as sp

        return sp.Max(*values)
    return max(values, default=0.0)
