"""`cascade dse CONFIG.yaml`: a design-space exploration on Dask; `cascade dse --plot RESULTS`: its
Pareto front per workload, as a table (or JSON) and a figure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CascadeError
from .common import add_json_option, emit_json


def register(sub) -> None:
    p = sub.add_parser(
        "dse", help="design-space exploration on Dask: workloads x target parameters, results to a CSV; "
                    "--plot RESULTS for the Pareto front",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every point of CONFIG (workloads x varied target fields and shapes) as Dask tasks,\n"
                    "appending one CSV row per point as it finishes. With no --scheduler, a LocalCluster of\n"
                    "--workers processes on this machine. Ctrl-C keeps every finished row; --resume skips them.",
        epilog="examples:\n  cascade dse specs/dse/fusemax_pareto.yaml -o pareto.csv\n"
               "  cascade dse --plot pareto.csv --axes dram_bytes,latency_s --figure pareto.png")
    p.add_argument("config", metavar="CONFIG.yaml", nargs="?", help="the DSE config (see README, 'Design-space "
                                                                    "exploration')")
    p.add_argument("-o", "--output", metavar="RESULTS.csv", help="results file (default: <config name>.csv here)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="worker processes of the local cluster (default 2; ignored with --scheduler)")
    p.add_argument("--resume", action="store_true", help="continue RESULTS: skip the points already in it")
    p.add_argument("--plot", metavar="RESULTS.csv", help="instead of running: the Pareto front of a results file")
    p.add_argument("--axes", default="dram_bytes,latency_s", metavar="X,Y",
                   help="with --plot: the two metrics to minimise (default dram_bytes,latency_s)")
    p.add_argument("--figure", metavar="FILE", help="with --plot: figure file (.png/.svg/.pdf; default "
                                                    "RESULTS with .png; needs matplotlib)")
    add_json_option(p, "the run's summary (with --plot: the fronts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.plot:
        if args.config:
            raise CascadeError("give CONFIG.yaml to run a study, or --plot RESULTS to draw one, not both")
        return plot(args)
    if not args.config:
        raise CascadeError("cascade dse needs CONFIG.yaml (or --plot RESULTS.csv)")
    from ..dse.config import load_config
    from ..dse.progress import Progress
    from ..dse.runner import open_client, require_dask, run_dse

    require_dask()
    config = load_config(args.config)
    output = args.output or f"{config.name}.csv"
    from ..dse.points import enumerate_points

    total = len(enumerate_points(config))
    progress = Progress(total)
    try:
        with open_client(args.scheduler, args.workers) as client:
            summary = run_dse(config, output, client, args.resume, progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the finished points are in {output}; add --resume to continue", file=sys.stderr)
        raise
    progress.finish()
    if args.json:
        emit_json({"config": config.file, "name": config.name, "hash": config.hash, "results": output,
                   **summary.to_json()})
    else:
        print(f"dse {config.name} (config hash {config.hash}): {summary.written} points written to {output}"
              f" ({summary.refused} refused), {summary.skipped} already there; {summary.plans} cost plans; "
              f"{summary.workers} workers; {summary.seconds:.1f} s")
    if summary.failed:
        raise CascadeError(f"{len(summary.failed)} points killed every worker they ran on (first: "
                           f"{summary.failed[0]}); the others are saved: --resume retries these")
    return 0


def plot(args: argparse.Namespace) -> int:
    from ..dse.pareto import draw_fronts, format_fronts, fronts_of
    from ..dse.store import read_results

    axes = [a.strip() for a in args.axes.split(",")]
    if len(axes) != 2 or axes[0] == axes[1]:
        raise CascadeError(f"--axes {args.axes}: give two different metrics, e.g. --axes dram_bytes,latency_s")
    figure = args.figure or str(Path(args.plot).with_suffix(".png"))
    from ..plot import check_plot_path

    check_plot_path(figure)
    columns, rows = read_results(args.plot)
    fronts = fronts_of(columns, rows, axes[0], axes[1], args.plot)
    draw_fronts(rows, fronts, axes[0], axes[1], figure)
    if args.json:
        emit_json({"results": args.plot, "x": axes[0], "y": axes[1], "figure": figure, "fronts": fronts})
    else:
        print(format_fronts(columns, fronts, axes[0], axes[1]))
        print(f"\nwrote {figure}")
    return 0
