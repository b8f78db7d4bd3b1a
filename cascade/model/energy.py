"""Energy of a mapped cascade from the target's energy per action (Accelergy ERT style).

A target's `energy:` section gives picojoules per action:

    energy:
      dram:   {read: 249.6, write: 249.6, bytes_per_action: 8}
      buffer: {read: 484.97, write: 451.30, words_per_action: 256, leak: 0.844}
      units:
        array2d: {mac: 17.1645, add: 8.3395, max: 0.028, reg_write: 0.5696, leak: 0.18}

The model charges: DRAM, one action per `bytes_per_action` bytes read or written; the global
buffer, every word read from DRAM written into it once and read out of it once, and every word
written to DRAM written into it once and read out once (the fill and the drain, in actions of
`words_per_action` words), or, where the mapping says which tensors the buffer holds for which
readers (`buffer-reads`), the words moved between it and the arrays (`buffer_access`); each
unit's operations by kind, and one register-file write (`reg_write`) and `reg_read` per
operation (each PE keeps its result in its register file);
leakage (`leak`, per PE or per buffer, per cycle) over the whole latency. Every term is reported
per level and unit, numerically and as a formula in the action counts. The older flat form
(`dram_byte_pj`, `<kind>_pj`) is still read: DRAM per byte and operations per kind.
"""

from __future__ import annotations

from typing import Any

from ..errors import TargetError
from .target import Target


def energy_breakdown(target: Target, read_bytes: Any, write_bytes: Any, unit_ops: dict[str, dict[str, Any]],
                     cycles: Any, buffer_words: tuple[Any, Any] | None = None
                     ) -> dict[str, dict[str, Any]] | None:
    """{level or unit: {term: picojoules}} from byte counts, operation counts per unit and kind,
    and the latency in cycles; numbers or sympy expressions alike. None without energies.
    `buffer_words` (words read from and written into the buffer, `buffer_access.buffer_words`,
    where the mapping gives `buffer-reads`) replaces the default buffer count."""
    e = target.energy
    if not e:
        return None
    out: dict[str, dict[str, Any]] = {}
    if "dram_byte_pj" in e or any(k.endswith("_pj") for k in e):  # the flat form
        out["dram"] = {"bytes": (read_bytes + write_bytes) * e.get("dram_byte_pj", 0.0)}
        for unit, ops in unit_ops.items():
            out[unit] = {kind: n * e.get(f"{kind}_pj", 0.0) for kind, n in ops.items()}
        return out
    dram = e.get("dram") or {}
    if dram:
        per = dram.get("bytes_per_action", 1)
        out["dram"] = {"read": read_bytes / per * dram.get("read", 0.0),
                       "write": write_bytes / per * dram.get("write", 0.0)}
    buf = e.get("buffer") or {}
    if buf:
        per = buf.get("words_per_action", 1)
        if buffer_words is not None:
            out["buffer"] = {"write": buffer_words[1] / per * buf.get("write", 0.0),
                             "read": buffer_words[0] / per * buf.get("read", 0.0)}
        else:
            words = (read_bytes + write_bytes) / target.word_bytes / per
            out["buffer"] = {"write": words * buf.get("write", 0.0), "read": words * buf.get("read", 0.0)}
        if buf.get("leak"):
            out["buffer"]["leak"] = cycles * buf["leak"]
    for unit, table in (e.get("units") or {}).items():
        ops = unit_ops.get(unit, {})
        missing = [k for k, n in ops.items() if k not in table and not _is_zero(n)]
        if missing:
            raise TargetError(f"{target.file}: energy.units.{unit}: no energy for {', '.join(missing)}, "
                              f"which this mapping runs on {unit}; add it (picojoules per operation)")
        terms = {kind: n * table[kind] for kind, n in ops.items() if kind in table}
        total_ops = sum(ops.values()) if ops else 0
        if table.get("reg_write"):
            terms["reg_write"] = total_ops * table["reg_write"]
        if table.get("reg_read"):
            terms["reg_read"] = total_ops * table["reg_read"]
        if table.get("leak"):
            terms["leak"] = cycles * target.units[unit].pes * table["leak"]
        out[unit] = terms
    return out


def total_joules(breakdown: dict[str, dict[str, Any]]) -> Any:
    return sum(sum(terms.values()) for terms in breakdown.values()) * 1e-12


def _is_zero(n: Any) -> bool:
    try:
        return float(n) == 0.0
    except TypeError:
        return False


def energy_formula(target: Target, traffic, ops, word: int, buffer_words: tuple[Any, Any] | None = None) -> str:
    """The total picojoules as a formula in the rank and tile shapes (and `cycles`, the latency
    in cycles, for leakage): the same terms as `energy_breakdown`, on the symbolic counts."""
    import sympy as sp

    reads = sum((tt.reads for tt in traffic.per_tensor.values()), sp.Integer(0)) * word
    writes = sum((tt.writes for tt in traffic.per_tensor.values()), sp.Integer(0)) * word
    unit_ops: dict[str, dict[str, Any]] = {}
    for so in ops:
        for kind, expr in so.ops.items():
            unit_ops.setdefault(so.unit, {})
            unit_ops[so.unit][kind] = unit_ops[so.unit].get(kind, 0) + expr
    breakdown = energy_breakdown(target, reads, writes, unit_ops, sp.Symbol("cycles", positive=True),
                                 buffer_words) or {}
    total = sum((sum(terms.values()) for terms in breakdown.values()), sp.Integer(0))
    return str(sp.nsimplify(total, rational=False))
