"""`cascade search SPEC -t TARGET`: the best mappings of a cascade on a target."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CascadeError
from .common import add_json_option, add_shape_option, emit_json, load_spec


def register(sub) -> None:
    p = sub.add_parser("search", help="search mappings (splits, loop orders, fusion) for the best cost on a target")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-t", "--target", metavar="TARGET", required=True, help="target file or bundled name (e.g. fusemax)")
    p.add_argument("--objective", choices=("latency", "traffic", "energy"), default="latency")
    p.add_argument("--budget", type=float, default=60.0, metavar="SECONDS", help="time budget (default 60 s)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many mappings to list (default 5)")
    p.add_argument("-o", "--output", metavar="MAPPING.yaml", help="write the best mapping here")
    add_shape_option(p)
    add_json_option(p, "the best mappings")
    p.set_defaults(func=run)


class ProgressLine:
    """The search's progress on stderr: families done of all, the incumbent and the best bound
    left; one rewritten line on a terminal, otherwise a plain line every `EVERY_S` seconds;
    nothing when `quiet` (--json)."""

    EVERY_S = 5.0

    def __init__(self, stream, objective: str, quiet: bool) -> None:
        self.stream, self.objective, self.quiet = stream, objective, quiet
        self.tty = stream.isatty()
        self.last = -self.EVERY_S
        self.shown = False

    def __call__(self, p) -> None:
        if self.quiet or (not self.tty and p.seconds - self.last < self.EVERY_S):
            return
        self.last = p.seconds
        line = (f"search {p.seconds:5.1f} s: {p.done}/{p.total} families done, incumbent "
                f"{_value(p.incumbent, self.objective)}, best bound left {_value(p.best_bound, self.objective)}")
        if self.tty:
            print(f"\r{line}\033[K", end="", file=self.stream, flush=True)
            self.shown = True
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.shown:
            print(file=self.stream, flush=True)


def _value(v: float | None, objective: str) -> str:
    if v is None:
        return "none"
    return f"{v * 1e3:.6g} ms" if objective == "latency" else f"{v:,.0f} B"


def run(args: argparse.Namespace) -> int:
    from ..mapping.mapping_file import dump_mapping
    from ..search import search

    from ..search.budget import Deadline, check_budget

    budget = check_budget(args.budget)
    if args.top < 1:
        raise CascadeError(f"--top {args.top}: must be positive (how many mappings to list)")
    deadline = Deadline(budget)  # the whole command: loading the spec counts too
    spec = load_spec(args.spec, args.shape, needs_einsums="search")
    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise CascadeError(f"-o {args.output}: its folder does not exist (checked before searching)")
    line = ProgressLine(sys.stderr, args.objective, args.json)
    try:
        result = search(spec, args.target, args.objective, max(deadline.left(), 1e-3), args.top, line)
    finally:
        line.close()
    if not result.best:
        if not result.complete:
            raise CascadeError(f"--budget {args.budget:g}: the budget ran out after {result.families_scored} of "
                               f"{result.families_total} mapping families of {spec.name}, none of whose mappings fits "
                               f"{args.target}: give a larger --budget")
        raise CascadeError(f"no mapping of {spec.name} fits {args.target} among its {result.families_total} families: "
                           "try smaller shapes")
    best = result.best[0]
    if args.output:
        shapes = ", ".join(f"{r}={n}" for r, n in spec.shapes.items())
        comment = (f"found by cascade search for {spec.name} on {args.target} ({shapes}); objective "
                   f"{args.objective}: latency {best.latency_s:.6g} s, DRAM {best.dram_bytes:,.0f} B")
        try:
            Path(args.output).write_text(dump_mapping(best.mapping, comment))
        except OSError as exc:
            raise CascadeError(f"{args.output}: cannot write: {exc.strerror}") from None
    if args.json:
        emit_json({"cascade": spec.name, "target": args.target, "objective": args.objective,
                   "families_scored": result.families_scored, "families_total": result.families_total,
                   "candidates_scored": result.candidates_scored, "seconds": result.seconds,
                   "compulsory_bytes": result.compulsory_bytes, "written": args.output,
                   "families_pruned": result.families_pruned, "optimal": result.complete,
                   "best_bound": result.best_bound, "gap": result.gap(), "seconds_to_best": result.seconds_to_best,
                   "best": [dict(c.to_json(), traffic_over_compulsory=c.dram_bytes / result.compulsory_bytes)
                            for c in result.best]})
        return 0
    print(f"cascade {spec.name} on {args.target}, objective {args.objective}: "
          f"{result.families_scored} of {result.families_total} mapping families scored "
          f"({result.candidates_scored:,} tile-shape candidates) in {result.seconds:.1f} s")
    if result.complete:
        print(f"optimal within the model: every family was scored or its lower bound cannot beat the best "
              f"({result.families_pruned} pruned by bound)")
    else:
        gap = result.gap()
        left = "unknown" if gap is None else f"{gap:.2%} (best bound left {_value(result.best_bound, args.objective)})"
        print(f"budget cut the search short ({result.families_pruned} families pruned by bound); gap to the "
              f"optimum at most {left}")
    print(f"floor: compulsory DRAM traffic {result.compulsory_bytes:,.0f} B (every input read once, every output "
          "written once)\n")
    print(f"{'#':>2} {'latency (ms)':>13} {'DRAM (B)':>16} {'x floor':>8} {'on chip':>10}  tiles / loop order / fusion")
    for i, c in enumerate(result.best, 1):
        print(f"{i:>2} {c.latency_s * 1e3:>13.4f} {c.dram_bytes:>16,.0f} {c.dram_bytes / result.compulsory_bytes:>8.3f}"
              f" {c.footprint_bytes / 2**20:>8.2f}Mi  {c.describe()}")
    if args.output:
        print(f"\nwrote the best mapping to {args.output} (cascade estimate / compile accept it)")
    return 0
