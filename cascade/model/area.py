"""Area of a target from its `area:` section (Accelergy ART style, square micrometres):

    area:
      buffer: 94176255.9664                        # the global buffer
      units:
        array2d: {per_pe: {reg_file: 4255.93, mac: 1545.0, max: 49.29}, other: 257.0}

A unit's area is its PE count times the sum of its per-PE components, plus `other` (its
interconnect); the target's is the buffer's plus its units'. `area_problems` checks the section.
"""

from __future__ import annotations

from typing import Any


def area_problems(section: Any, units: dict, file: str) -> list[str]:
    if section is None:
        return []
    if not isinstance(section, dict):
        return [f"{file}: area: expected a mapping (buffer, units), got {section!r}"]
    out = []

    def number(where: str, value: Any) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            out.append(f"{file}: {where}: expected a non-negative number of square micrometres, got {value!r}")

    for key, value in section.items():
        if key == "buffer":
            number("area.buffer", value)
        elif key == "units" and isinstance(value, dict):
            for unit, spec in value.items():
                where = f"area.units.{unit}"
                if unit not in units:
                    out.append(f"{file}: {where}: not a unit of this target (its units: {', '.join(units)})")
                elif not isinstance(spec, dict) or set(spec) - {"per_pe", "other"}:
                    out.append(f"{file}: {where}: expected {{per_pe: {{component: um2}}, other: um2}}")
                else:
                    for comp, a in (spec.get("per_pe") or {}).items():
                        number(f"{where}.per_pe.{comp}", a)
                    if "other" in spec:
                        number(f"{where}.other", spec["other"])
        else:
            out.append(f"{file}: area.{key}: unknown; give buffer and units (square micrometres)")
    return out


def area_breakdown(section: dict, unit_pes: dict[str, int]) -> dict[str, float]:
    """{'buffer': um2, <unit>: um2, ..., 'total': um2} for a checked `area:` section."""
    out: dict[str, float] = {}
    if "buffer" in section:
        out["buffer"] = float(section["buffer"])
    for unit, spec in (section.get("units") or {}).items():
        out[unit] = unit_pes[unit] * sum(float(a) for a in (spec.get("per_pe") or {}).values()) + float(spec.get("other", 0))
    out["total"] = sum(out.values())
    return out
