"""Figures of a shape sweep: DRAM traffic and latency against the swept value, one line per
(spec, mapping) pair, on log-log axes, with the points where a mapping was refused marked.

matplotlib is optional (`pip install 'cascade[plot]'`): it is imported only when a figure is
drawn, without pyplot, so no backend or other global matplotlib state is touched. The input is
plain numbers (`plot_sweep`'s `series`), so this module knows nothing of specs or cost reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import CascadeError

FORMATS = (".png", ".svg", ".pdf")
INSTALL_HINT = "install matplotlib (pip install 'cascade[plot]') to draw plots"

# (swept value, DRAM bytes or None when refused, latency in seconds or None when refused)
Point = tuple[int, "float | None", "float | None"]


def check_plot_path(path: str | Path) -> None:
    """Fail early, before any work: a known suffix, and matplotlib importable."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise CascadeError(f"--plot {path}: unknown figure format '{suffix or '(none)'}': "
                           f"use one of {', '.join(FORMATS)}")
    parent = Path(path).parent
    if not parent.is_dir():
        raise CascadeError(f"--plot {path}: no folder {parent} to write the figure in")
    _figure_class()


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CascadeError(INSTALL_HINT) from None
    return Figure


def plot_sweep(series: Mapping[str, Sequence[Point]], xlabel: str, subtitle: str, path: str | Path) -> None:
    """Write a two-panel figure (traffic, latency) to `path`; the suffix picks PNG, SVG or PDF."""
    check_plot_path(path)
    from matplotlib.ticker import EngFormatter, FixedLocator, NullLocator
    from matplotlib.transforms import blended_transform_factory

    Figure = _figure_class()
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax_traffic, ax_latency = fig.subplots(1, 2)
    panels = ((ax_traffic, 1, "DRAM traffic", EngFormatter(unit="B")),
              (ax_latency, 2, "latency", EngFormatter(unit="s")))
    xs = sorted({p[0] for pts in series.values() for p in pts})
    markers, dashes = "osD^vP*X", ("-", "--", "-.", ":")
    any_refused = False
    for k, (label, pts) in enumerate(series.items()):
        ordered = sorted(pts, key=lambda p: p[0])
        # hollow markers and distinct dashes keep lines that coincide (equal traffic) both visible
        style: dict[str, Any] = {"marker": markers[k % len(markers)], "color": f"C{k}", "markersize": 6,
                                 "markerfacecolor": "none", "markeredgewidth": 1.5,
                                 "linestyle": dashes[k % len(dashes)]}
        for ax, field, _, _ in panels:
            ok = [(p[0], p[field]) for p in ordered if p[field] is not None]
            ax.plot([x for x, _ in ok], [y for _, y in ok], label=label, **style)
            refused = [p[0] for p in ordered if p[field] is None]
            if refused:
                any_refused = True
                # at the bottom edge of the panel: refused points have no value to plot
                where = blended_transform_factory(ax.transData, ax.transAxes)
                ax.plot(refused, [0.03 + 0.035 * k] * len(refused), linestyle="none", marker="x", color=f"C{k}",
                        markersize=8, markeredgewidth=2, transform=where, clip_on=False)
    for ax, field, title, fmt in panels:
        ax.set_xscale("log", base=2)
        if any(p[field] is not None for pts in series.values() for p in pts):
            ax.set_yscale("log")
        else:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no point fits the target", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.yaxis.set_major_formatter(fmt)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", axis="y", alpha=0.12)
        if xs and len(xs) <= 16:
            ax.xaxis.set_major_locator(FixedLocator(xs))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([_tick(x) for x in xs], rotation=45 if len(xs) > 8 else 0)
    handles, labels = ax_traffic.get_legend_handles_labels()
    if any_refused:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], linestyle="none", marker="x", color="0.3", markersize=8, markeredgewidth=2))
        labels.append("refused (does not fit)")
    # one legend for both panels, under them, so it never hides a point (needs matplotlib >= 3.7)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize="small",
               frameon=False)
    fig.suptitle(f"traffic and latency vs {xlabel}  ({subtitle})", fontsize="medium")
    try:
        fig.savefig(path, dpi=130)
    except OSError as exc:
        raise CascadeError(f"{path}: cannot write the figure: {exc.strerror or exc}") from None


def _tick(x: int) -> str:
    """Sequence lengths as papers write them: 512, 1K, 64K, 1M."""
    if x >= 2**20 and x % 2**20 == 0:
        return f"{x // 2**20}M"
    if x >= 2**10 and x % 2**10 == 0:
        return f"{x // 2**10}K"
    return str(x)
