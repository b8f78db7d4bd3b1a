"""`cascade sweep`: the cost of one or more (spec, mapping) pairs on a target over a range of shapes.

`--over M=P=1024,4096` sets M and P to each value in turn (ranks chained with `=` move together);
several `--over` flags with the same number of values move together too (the i-th point takes
the i-th value of each). Every point is estimated with `Spec.estimate`; a mapping that does not
fit the target at some shape (a `MappingError`) is a *refused* point, kept with its message.
With `--search`, a spec given without a mapping is searched at every point (`cascade.search`,
objective and per-point budget from `--objective` / `--budget`) and the best mapping found
there is costed and described; pairs with a mapping are swept as given, to compare against.
This module owns the parsing, the sweep and its table / JSON; the figure is `cascade.plot`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CascadeError, MappingError
from ..limits import parse_int_text, quote
from .common import add_json_option, add_shape_option, emit_json, load_spec

OVER_HELP = ("ranks and the values they take, e.g. --over M=P=1024,4096,16384 (M and P both take each "
             "value in turn: chain ranks with '=' to move them together). Repeatable: several --over with "
             "the same number of values also move together (--over M=1024,4096 --over P=512,2048 gives the "
             "points M=1024,P=512 and M=4096,P=2048)")


@dataclass(frozen=True)
class Axis:
    """Ranks that take the same value at every point, and those values in order."""

    ranks: tuple[str, ...]
    values: tuple[int, ...]


@dataclass(frozen=True)
class Pair:
    """One line of the sweep: a spec (with the `--shape` overrides) and a mapping."""

    label: str
    spec: Any  # cascade.api.Spec
    mapping: Any  # cascade.mapping.mapping_file.Mapping, or None for the default mapping
    spec_path: str
    mapping_path: str | None
    searched: bool = False  # search the best mapping at every point instead of using `mapping`


@dataclass(frozen=True)
class SweepPoint:
    """One pair at one point: its cost report, or why the mapping was refused there."""

    pair: str
    values: dict[str, int]
    report: Any = None  # a CostReport, or None when refused
    refused: str | None = None
    found: dict[str, Any] | None = None  # for a searched pair: the mapping found at this point

    def to_json(self) -> dict[str, Any]:
        out = {"pair": self.pair, "values": self.values, "refused": self.refused,
               "report": self.report.to_json() if self.report is not None else None}
        if self.found is not None:
            out["searched_mapping"] = self.found
        return out


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="cost of (spec, mapping) pairs on a target over a range of shapes; table, JSON or plot",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Estimate SPEC with MAPPING on TARGET at every point of --over (and every --pair\n"
                    "likewise), and print one row per point and pair. A mapping that does not fit the\n"
                    "target at some point is reported as refused, with the reason, and the sweep goes on.",
        epilog="example (FuseMax's 1-pass mapping against FLAT and the unfused baseline):\n"
               "  cascade sweep specs/attention/mha_1pass.einsum -m mappings/mha_1pass/fusemax.yaml \\\n"
               "      --pair specs/attention/mha_3pass.einsum:mappings/mha_3pass/flat.yaml \\\n"
               "      --pair specs/attention/mha_3pass.einsum:mappings/mha_3pass/unfused.yaml \\\n"
               "      -t fusemax --over M=P=1024,4096,16384,65536 --shape B=64 --shape H=12 --plot attention.png")
    p.add_argument("spec", metavar="SPEC", nargs="?", help="the .einsum file (optional when --pair is given)")
    p.add_argument("-m", "--mapping", metavar="MAPPING",
                   help="mapping file for SPEC (default: no partitioning, no fusion)")
    p.add_argument("--pair", action="append", default=[], metavar="SPEC[:MAPPING]",
                   help="another (spec, mapping) pair to sweep alongside (repeatable); one line per pair in the plot")
    p.add_argument("-t", "--target", metavar="TARGET", required=True,
                   help="target file, or a bundled name: fusemax, flat_cloud, flat_edge, grayskull_e150")
    p.add_argument("--over", action="append", default=[], required=True, metavar="R[=R...]=V1,V2,...", help=OVER_HELP)
    p.add_argument("--search", action="store_true",
                   help="search the best mapping at every point for a spec given without a mapping "
                        "(SPEC without -m, or --pair SPEC); pairs with a mapping are swept as given")
    p.add_argument("--objective", choices=("latency", "traffic", "energy"), default="latency",
                   help="with --search: what the search minimises (default latency)")
    p.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                   help="with --search: time budget per point (default 60 s)")
    p.add_argument("--plot", metavar="FILE", help="also draw traffic and latency against the swept value "
                                                  "(.png, .svg or .pdf; needs matplotlib)")
    add_shape_option(p)
    add_json_option(p, "the points (each with its cost report, or the reason it was refused)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    axes = parse_over(args.over)
    swept = {r for a in axes for r in a.ranks}
    clash = sorted(swept & {item.partition("=")[0].strip() for item in args.shape})
    if clash:
        raise CascadeError(f"--shape {clash[0]} and --over {clash[0]}: a rank is either fixed or swept, not both")
    if args.plot:
        from ..plot import check_plot_path

        check_plot_path(args.plot)
    from ..search.budget import check_budget

    check_budget(args.budget)
    pairs = load_pairs(args)
    if args.search and not any(p.searched for p in pairs):
        raise CascadeError("--search searches the pairs given without a mapping, and every pair here has one: "
                           "give SPEC without -m (or --pair SPEC) to have its mapping searched")
    from ..model.target import load_target

    target = load_target(args.target)
    for pair in pairs:
        check_swept_ranks(pair, swept)
    points = run_sweep(pairs, axes, target, progress=Progress.for_stderr(),
                       objective=args.objective, budget_s=args.budget)
    if args.json:
        emit_json([pt.to_json() for pt in points])
    else:
        print(format_table(pairs, axes, points, target.name))
    if args.plot:
        from ..plot import plot_sweep

        series = {pair.label: [(pt.values[axes[0].ranks[0]],
                                pt.report.dram_bytes if pt.report else None,
                                pt.report.latency_s if pt.report else None)
                               for pt in points if pt.pair == pair.label] for pair in pairs}
        plot_sweep(series, axis_label(axes), f"on {target.name}; {common_shapes(pairs, swept, points)}", args.plot)
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _whole(text: str) -> bool:
    """ASCII digits naming a shape from 1 to MAX_SHAPE (the validated-number reader's rule)."""
    try:
        parse_int_text(text, "--over", CascadeError)
    except CascadeError:
        return False
    return True


def parse_over(items: list[str]) -> list[Axis]:
    """`['M=P=1024,4096']` -> `[Axis(('M', 'P'), (1024, 4096))]`; flags with equal value lists merge."""
    axes: list[Axis] = []
    seen: set[str] = set()
    for item in items:
        *names, raw = [part.strip() for part in item.split("=")]
        values = [v.strip() for v in raw.split(",")]
        if not names or not all(n.isidentifier() for n in names) or not all(_whole(v) for v in values):
            raise CascadeError(f"--over {quote(item)}: write RANK=V1,V2,... with positive integers, or RANK=RANK=V1,V2,... "
                               "to move ranks together, e.g. --over M=P=1024,4096,16384")
        for n in names:
            if n in seen:
                raise CascadeError(f"--over {quote(item)}: rank {n} is swept twice")
            seen.add(n)
        axis = Axis(tuple(names), tuple(int(v) for v in values))
        if axes and len(axis.values) != len(axes[0].values):
            raise CascadeError(f"--over {'='.join(axes[0].ranks)} has {len(axes[0].values)} values but --over "
                               f"{'='.join(axis.ranks)} has {len(axis.values)}: several --over move together "
                               "(the i-th point takes the i-th value of each), so they need as many values")
        same = next((i for i, a in enumerate(axes) if a.values == axis.values), None)
        if same is None:
            axes.append(axis)
        else:
            axes[same] = Axis(axes[same].ranks + axis.ranks, axis.values)
    return axes


def load_pairs(args: argparse.Namespace) -> list[Pair]:
    from ..mapping.mapping_file import load_mapping

    given: list[tuple[str, str | None]] = []
    if args.spec:
        given.append((args.spec, args.mapping))
    elif args.mapping:
        raise CascadeError("-m MAPPING goes with a SPEC: give the spec first, or use --pair SPEC:MAPPING")
    for item in args.pair:
        spec_path, _, mapping_path = item.rpartition(":") if ":" in item else (item, "", "")
        if not spec_path:
            raise CascadeError(f"--pair {item!r}: write SPEC:MAPPING (or SPEC alone for the default mapping)")
        given.append((spec_path, mapping_path or None))
    if not given:
        raise CascadeError("nothing to sweep: give SPEC (with -m MAPPING) or at least one --pair SPEC:MAPPING")
    pairs: list[Pair] = []
    for spec_path, mapping_path in given:
        spec = load_spec(spec_path, args.shape)
        mapping = load_mapping(mapping_path) if mapping_path else None
        searched = args.search and mapping_path is None
        label = f"{spec.name}:{Path(mapping_path).stem if mapping_path else ('searched' if searched else 'default')}"
        taken = {p.label for p in pairs}
        label = next(f"{label}#{i}" for i in range(2, len(given) + 2) if f"{label}#{i}" not in taken) \
            if label in taken else label
        pairs.append(Pair(label, spec, mapping, spec_path, mapping_path, searched))
    return pairs


def check_swept_ranks(pair: Pair, swept: set[str]) -> None:
    from ..lang.shapes import known_ranks

    outer = {o: (r, inner) for r, (o, inner) in pair.spec.semantics.splits.items()}
    ranks = known_ranks(pair.spec.cascade)
    for r in sorted(swept):
        if r in outer:
            raise CascadeError(f"--over {r}: in {pair.spec_path}, {r} is derived as ceil({outer[r][0]} / "
                               f"{outer[r][1]}); sweep {outer[r][1]} instead")
        if r not in ranks:
            raise CascadeError(f"--over {r}: {pair.spec_path} (cascade {pair.spec.name}) has no rank {r} "
                               f"(its ranks: {', '.join(sorted(ranks))})")


def run_sweep(pairs: list[Pair], axes: list[Axis], target: Any,
              progress: Callable[[int, int, str], None] | None = None,
              objective: str = "latency", budget_s: float = 60.0) -> list[SweepPoint]:
    """Every pair at every point, points outermost; a `MappingError` at a point refuses it.
    A searched pair takes the best mapping `cascade.search` finds at each point."""
    points: list[SweepPoint] = []
    total = len(axes[0].values) * len(pairs)
    for i in range(len(axes[0].values)):
        values = {r: a.values[i] for a in axes for r in a.ranks}
        for pair in pairs:
            if progress is not None:
                progress(len(points), total, f"{pair.label} {point_label(axes, i)}")
            spec = pair.spec.with_shapes(**values)
            try:
                if pair.searched:
                    points.append(searched_point(pair.label, spec, values, target, objective, budget_s))
                else:
                    points.append(SweepPoint(pair.label, values, report=spec.estimate(pair.mapping, target)))
            except MappingError as exc:
                points.append(SweepPoint(pair.label, values, refused=str(exc)))
    if progress is not None:
        progress(total, total, "")
    return points


def searched_point(label: str, spec: Any, values: dict[str, int], target: Any, objective: str,
                   budget_s: float) -> SweepPoint:
    """The best mapping of `spec` at one point, costed by the full model, or why none fits."""
    from ..search import search

    result = search(spec, target, objective, budget_s, top=1)
    if not result.best:
        return SweepPoint(label, values, refused=f"no mapping among the {result.families_scored} families searched "
                                                 f"fits {target.name}")
    best = result.best[0]
    found = dict(best.to_json(), objective_name=objective, description=best.describe(),
                 families_scored=result.families_scored, families_total=result.families_total,
                 families_pruned=result.families_pruned, optimal=result.complete)
    return SweepPoint(label, values, report=spec.estimate(best.mapping, target), found=found)


class Progress:
    """`sweep 3/12: mha_1pass:fusemax M=P=4096` on one rewritten stderr line, shown only after
    the sweep has run for a moment and only when stderr is a terminal; erased when done."""

    DELAY_S = 0.5

    def __init__(self, stream) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.shown = False

    @classmethod
    def for_stderr(cls) -> Progress | None:
        return cls(sys.stderr) if sys.stderr.isatty() else None

    def __call__(self, done: int, total: int, what: str) -> None:
        if done >= total:
            if self.shown:
                self.stream.write("\r\033[K")
                self.stream.flush()
            return
        if time.monotonic() - self.start < self.DELAY_S:
            return
        self.shown = True
        self.stream.write(f"\r\033[Ksweep {done + 1}/{total}: {what}")
        self.stream.flush()


def point_label(axes: list[Axis], i: int) -> str:
    return " ".join(f"{'='.join(a.ranks)}={a.values[i]}" for a in axes)


def axis_label(axes: list[Axis]) -> str:
    text = " = ".join(axes[0].ranks)
    if len(axes) > 1:
        text += " (with " + ", ".join(" = ".join(a.ranks) for a in axes[1:]) + ")"
    return text


def fixed_shapes(pair: Pair, swept: set[str], points: list[SweepPoint]) -> dict[str, int]:
    """The declared ranks that are not swept, at the shapes the sweep used: after `--shape`, and
    as the mapping set them (a partitioning may fix a split's inner rank) when some point ran."""
    names = [r for r in pair.spec.cascade.shape_dict() if r not in swept]
    names += [r for r in pair.spec.overrides if r not in swept and r not in names]
    ran: dict[str, int] = next((pt.report.shapes for pt in points
                                if pt.pair == pair.label and pt.report is not None), {})
    return {r: ran.get(r, pair.spec.shapes[r]) for r in names}


def common_shapes(pairs: list[Pair], swept: set[str], points: list[SweepPoint]) -> str:
    """The fixed shapes every pair shares (for a figure's subtitle)."""
    each = [fixed_shapes(p, swept, points) for p in pairs]
    return ", ".join(f"{r}={v}" for r, v in each[0].items() if all(d.get(r) == v for d in each[1:]))


def format_seconds(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.4g} {unit}"
    return f"{s / 1e-9:.4g} ns"


def format_bytes(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:.0f} B"


def format_table(pairs: list[Pair], axes: list[Axis], points: list[SweepPoint], target: str) -> str:
    """One row per point and pair; refused points name a footnote with the reason."""
    swept = {r for a in axes for r in a.ranks}
    lines = [f"sweep on {target}: " + ", ".join(f"{'='.join(a.ranks)} in {', '.join(map(str, a.values))}"
                                                for a in axes)]
    for pair in pairs:
        fixed = ", ".join(f"{r}={v}" for r, v in fixed_shapes(pair, swept, points).items())
        how = pair.mapping_path or ("the best mapping searched at each point" if pair.searched else "the default mapping")
        lines.append(f"  {pair.label}: {pair.spec_path} with {how}; {fixed}")
    units: list[str] = []
    for pt in points:
        for u in (pt.report.utilization if pt.report else {}):
            if u not in units:
                units.append(u)
    heads = ["=".join(a.ranks) for a in axes]
    widths = [max(len(h), *(len(str(v)) for v in a.values)) for h, a in zip(heads, axes)]
    label_w = max(4, *(len(p.label) for p in pairs))
    head = "  ".join(f"{h:>{w}}" for h, w in zip(heads, widths))
    head += f"  {'pair':<{label_w}}  {'latency':>11}  {'DRAM traffic':>12}  {'bound':<8}"
    head += "".join(f"  {u + ' util':>{len(u) + 5}}" for u in units)
    lines += ["", head.rstrip()]
    notes: list[str] = []
    previous: tuple[int, ...] | None = None
    for pt in points:
        key = tuple(pt.values[a.ranks[0]] for a in axes)
        cells = "  ".join(f"{(str(v) if key != previous else ''):>{w}}" for v, w in zip(key, widths))
        if len(pairs) > 1 and previous is not None and key != previous:
            lines.append("")
        previous = key
        row = f"{cells}  {pt.pair:<{label_w}}  "
        if pt.report is None:
            if pt.refused not in notes:
                notes.append(pt.refused or "")
            row += f"refused [{notes.index(pt.refused or '') + 1}]"
        else:
            r = pt.report
            row += f"{format_seconds(r.latency_s):>11}  {format_bytes(r.dram_bytes):>12}  {r.bound:<8}"
            row += "".join(f"  {(format(r.utilization[u], '.1%') if u in r.utilization else '-'):>{len(u) + 5}}"
                           for u in units)
            if pt.found is not None:
                row += f"  searched: {pt.found['description']}"
        lines.append(row.rstrip())
    if notes:
        lines.append("")
        lines += [f"[{i}] refused: {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines)
