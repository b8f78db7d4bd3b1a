"""A design point's silicon area: `point_area(target data) -> mm^2 or None`.

The area is `cascade.model.area`'s (the target's `area:` section, Accelergy ART style: per unit,
its PE count times the sum of its per-PE components plus `other`; plus the buffer), evaluated on
the point's own target data, so a PE_dim sweep scales every array's PE count. Component sizes
stay as the section gives them: a register file or buffer is not resized with the array (vary
`area.<...>` fields to do that). None when the target gives no area.
"""

from __future__ import annotations

import math
from typing import Any

from ..model.area import area_breakdown


def point_area(target_data: dict[str, Any] | None) -> float | None:
    """Area of the target described by `target_data` in mm^2; None without an `area:` section."""
    section = (target_data or {}).get("area")
    if not section:
        return None
    units = target_data.get("units") or {}
    pes = {u: math.prod(int(n) for n in (spec.get("shape") or [1])) for u, spec in units.items()}
    return area_breakdown(section, pes)["total"] * 1e-6
