"""The Pareto front of a DSE's results per workload, for any two metrics (both minimised), as a
table and a figure (matplotlib, optional, imported only to draw; no pyplot state touched).

A point is on the front when no other point of its workload is at most as large in both metrics
and smaller in one. Refused points and points with an empty metric take no part.
"""

from __future__ import annotations

from typing import Any

from ..errors import CascadeError
from .store import LEAD, TAIL


def front(points: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """The non-dominated (x, y, payload) triples, by increasing x (and decreasing y)."""
    out: list[tuple[float, float, Any]] = []
    for x, y, payload in sorted(points, key=lambda p: (p[0], p[1])):
        if not out or y < out[-1][1]:  # a smaller y than every point at most as large in x
            out.append((x, y, payload))
    return out


def fronts_of(columns: list[str], rows: list[dict[str, Any]], x: str, y: str, file: str) -> dict[str, list[dict]]:
    """Workload -> its front's rows (by increasing x)."""
    metrics = [c for c in columns if c not in LEAD and c not in TAIL]
    for m in (x, y):
        if m not in columns or m in LEAD or m in TAIL:
            raise CascadeError(f"--axes {m}: {file} has no metric {m} (its columns: {', '.join(metrics)})")
        if not any(r[m] is not None for r in rows if r["status"] == "ok"):
            why = (" (its target has no `area:` section: give its components in square micrometres, see "
                   "cascade/model/area.py)" if m == "area_mm2" else "")
            raise CascadeError(f"--axes {m}: no point of {file} has a value for {m}{why}")
    out: dict[str, list[dict]] = {}
    for w in dict.fromkeys(r["workload"] for r in rows):
        pts = [(r[x], r[y], r) for r in rows
               if r["workload"] == w and r["status"] == "ok" and r[x] is not None and r[y] is not None]
        out[w] = [r for _, _, r in front(pts)]
    return out


def format_fronts(columns: list[str], fronts: dict[str, list[dict]], x: str, y: str) -> str:
    params = [c for c in columns[len(LEAD): columns.index("status")]]
    lines = [f"Pareto front per workload, minimising {x} and {y}"]
    for w, rows in fronts.items():
        lines += ["", f"{w}: {len(rows)} point{'s' if len(rows) != 1 else ''} on the front"]
        head = [*params, x, y, "mapping"]
        table = [[_fmt(r[c]) for c in head[:-1]] + [str(r.get("mapping") or "")[:60]] for r in rows]
        widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(head)]
        lines.append("  " + "  ".join(f"{h:>{wd}}" for h, wd in zip(head, widths)).rstrip())
        lines += ["  " + "  ".join(f"{c:>{wd}}" for c, wd in zip(t, widths)).rstrip() for t in table]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def draw_fronts(rows: list[dict[str, Any]], fronts: dict[str, list[dict]], x: str, y: str, path: str) -> None:
    """Every point faint, each workload's front as a line, log-log axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for i, (w, pts) in enumerate(fronts.items()):
        colour = f"C{i % 10}"
        every = [(r[x], r[y]) for r in rows if r["workload"] == w and r["status"] == "ok"
                 and r[x] is not None and r[y] is not None]
        if every:
            ax.scatter(*zip(*every), s=10, alpha=0.3, color=colour)
        if pts:
            ax.plot([r[x] for r in pts], [r[y] for r in pts], "o-", color=colour, label=f"{w} (front)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    try:
        fig.savefig(path, bbox_inches="tight")
    except OSError as exc:
        raise CascadeError(f"{path}: cannot write the figure: {exc.strerror}") from None
