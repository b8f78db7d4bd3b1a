"""The place for a design point's silicon area: `point_area(target data) -> mm^2 or None`.

The area model is issue 15's (the fidelity issue, another branch): until it lands this returns
None, so the `area_mm2` column of a DSE stays empty and `cascade dse --plot` says so when asked to
plot area. When it lands, call it here: every point passes its own target data (with the varied
fields set), so PE-array and buffer sweeps get their area with no other change.
"""

from __future__ import annotations

from typing import Any


def point_area(target_data: dict[str, Any] | None) -> float | None:
    """Area of the target described by `target_data` in mm^2; None while no area model exists."""
    return None
