"""`cascade passes SPEC [--json]`: passes per rank, the boundaries between them and what they hold.

The readable report is a summary line, then a table per rank with more than one pass (each
Einsum's pass, what it writes, what it waits for), the boundaries with their cause and live
footprint, and one line per single-pass rank. `--json` prints `PassReport.as_dict()`:
"passes" ({RANK: count}) and "boundaries" as DESIGN.md section 7 asks, plus per-rank detail.
"""

from __future__ import annotations

import argparse

from .common import add_json_option, add_shape_option, emit_json, load_spec


def register(sub) -> None:
    p = sub.add_parser("passes", help="count the passes over every rank and explain each extra pass")
    p.add_argument("spec", metavar="SPEC")
    add_shape_option(p)
    add_json_option(p, "the pass report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.shape)
    report = spec.passes()
    if args.json:
        emit_json(report.as_dict())
    else:
        print(format_report(report), end="")
    return 0


def format_report(report) -> str:
    """The readable pass report (plain text, one trailing newline)."""
    shapes = ", ".join(f"{r}={n}" for r, n in report.shapes)
    lines = [f"cascade {report.cascade}  ({shapes})",
             "passes: " + (", ".join(f"{r} {n}" for r, n in report.passes.items()) or "no Einsum iterates a rank")]
    single = []
    for r in report.ranks:
        if r.passes <= 1:
            single.append(r)
            continue
        lines += ["", _heading(r)]
        lines += _table(r)
        lines.append("")
        for b in r.boundaries:
            lines += _boundary(b)
        if r.grows_with:
            lines.append(f"  ... one more pass per step of the recurrence along {r.grows_with.lower()}; "
                         "the boundaries above are its first steps")
    if single:
        lines.append("")
        for r in single:
            users = [e.name for e in r.einsums if e.iterates]
            lines.append(f"{_title(r)}: 1 pass ({', '.join(users)})")
    return "\n".join(lines) + "\n"


def _title(r) -> str:
    if r.split_of is None:
        return r.rank
    what = ("passes over the whole fiber" if r.part == "outer"
            else "revisits within one tile, absorbed by a buffer of that tile")
    return f"{r.rank} ({r.part} part of {r.split_of}: {what})"


def _heading(r) -> str:
    text = f"{_title(r)}: {r.passes} passes"
    if r.grows_with:
        text += f" (grows with {r.grows_with}: every step of a recurrence waits for a complete value)"
    return text


def _table(r) -> list[str]:
    rows = [("pass", "Einsum", "writes", "waits for")]
    for e in r.einsums:
        if e.iterates:
            when = str(e.number)
            writes = "streaming" if e.writes == "streaming" else f"complete after pass {e.number}"
        else:
            when = f"after {e.number}" if e.number else "before 1"
            writes = f"complete after pass {e.number}" if e.number else "-"
        waits = "; ".join(f"{w.tensor}, complete after pass {w.after} ({w.detail})" for w in e.waits)
        rows.append((when, e.name, writes, waits))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [("  " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3]).rstrip()
            for row in rows]


def _boundary(b) -> list[str]:
    w = b.wait
    lines = [(f"  pass {b.number} starts because {b.einsum} waits for {w.tensor} "
              f"(complete after pass {w.after}: {w.detail})")]
    for einsum, other in b.causes[1:]:
        lines.append(f"    also {einsum} waits for {other.tensor} (complete after pass {other.after}: {other.detail})")
    held = ", ".join(f"{t.shape_text} = {t.size_text}" for t in b.live) or "nothing"
    lines.append(f"    held across: {held}")
    lines.append(f"    footprint: {b.footprint_text} = {b.footprint:,} elements")
    return lines
