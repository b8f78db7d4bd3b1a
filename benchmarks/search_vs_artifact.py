"""Mapping search beside the published mappings: FuseMax's (artifact) and FLAT's (validation).

Part 1: `mha_1pass` on the fusemax target at BERT shapes (B = 64, H = 12, E = F = 64) for every
sequence length of ../shared/external/fusemax/attn-binding.csv: `cascade.search` with the traffic
objective, its DRAM traffic and latency beside the artifact's (FuseMax's hand-derived mapping),
with the compulsory floor (Q, K, V read once, AV written once) and the mapping found.

Part 2: `mha_3pass` on flat_cloud at the BERT rows of flat_validation.csv: FLAT's granularity
choice there (head: a whole head's P x M scores fused on chip; row: blocks of P1 query rows),
written as mappings/mha_3pass/flat.yaml with that row block and costed by our model (when our
model's buffer refuses it, FLAT's own rule is applied: the largest row block that fits), beside
the best mapping the latency search finds, under the same model and target.

    python benchmarks/search_vs_artifact.py [--budget S] [--lengths 1K,4K,...] [--part 1|2] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fusemax_table import EXTERNAL, LENGTHS, ROOT, artifact, row_block_mapping  # noqa: E402

BERT = {"B": 64, "H": 12, "E": 64, "F": 64}
VALIDATION_LENGTHS = {"512": 512, **{f"{k}K": k * 1024 for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)},
                      "1M": 1 << 20}


def part1(lengths: list[str], budget: float) -> list[dict]:
    import cascade
    from cascade.search import search

    spec = cascade.load(ROOT / "specs" / "attention" / "mha_1pass.einsum")
    published = artifact("binding")
    rows = []
    for length in lengths:
        if ("BERT", length) not in published:
            continue
        n = LENGTHS[length]
        art = published[("BERT", length)]
        sized = spec.with_shapes(**BERT, M=n, P=n)
        start = time.perf_counter()
        result = search(sized, "fusemax", "traffic", budget, top=1)
        seconds = time.perf_counter() - start
        best = result.best[0]
        rows.append({"seq_len": length, "artifact_traffic": float(art["traffic"]),
                     "artifact_latency": float(art["latency"]), "traffic": best.dram_bytes,
                     "latency": best.latency_s, "compulsory": result.compulsory_bytes, "mapping": best.describe(),
                     "families": f"{result.families_scored}/{result.families_total}",
                     "pruned": result.families_pruned, "optimal": result.complete,
                     "candidates": result.candidates_scored, "seconds": seconds,
                     "per_second": result.candidates_scored / seconds})
    return rows


def flat_choice(length: str) -> tuple[str, int] | None:
    with open(EXTERNAL / "flat_validation.csv") as fh:
        for r in csv.DictReader(fh):
            if r["platform"] == "cloud" and r["models"] == "BERT" and r["seq_len"] == length:
                return r["fusion_granularity"], int(r["P1"])
    return None


def flat_estimate(spec, granularity: str, p1: int, n: int, target):
    """FLAT's choice as a mapping costed by our model: (report, rows, note); FLAT's fitting rule
    (the largest row block, halving from FLAT's, that fits) when our buffer refuses the choice."""
    from cascade.errors import MappingError

    rows = n if granularity == "head" else min(p1, n)
    first = rows
    while rows >= 1:
        try:
            report = spec.estimate(row_block_mapping("flat", rows), target)
            note = "" if rows == first else f"{first} rows do not fit our buffer; {rows} do"
            return report, rows, note
        except MappingError:
            rows //= 2
    return None, None, "no row block fits the buffer"


def part2(lengths: list[str], budget: float) -> list[dict]:
    import cascade
    from cascade.model.target import load_target
    from cascade.search import search

    target = load_target("flat_cloud")
    spec = cascade.load(ROOT / "specs" / "attention" / "mha_3pass.einsum")
    flat_art = artifact("flat")
    rows = []
    for length in lengths:
        choice = flat_choice(length)
        if choice is None:
            continue
        granularity, p1 = choice
        n = VALIDATION_LENGTHS[length]
        sized = spec.with_shapes(**BERT, M=n, P=n)
        report, block, note = flat_estimate(sized, granularity, p1, n, target)
        start = time.perf_counter()
        result = search(sized, target, "latency", budget, top=1)
        seconds = time.perf_counter() - start
        best = result.best[0] if result.best else None
        art = flat_art.get(("BERT", length))
        rows.append({"seq_len": length, "flat_granularity": granularity, "flat_p1": p1,
                     "flat_rows_costed": block, "flat_note": note,
                     "flat_latency": report.latency_s if report else None,
                     "flat_traffic": report.dram_bytes if report else None,
                     "artifact_flat_latency": float(art["latency"]) if art else None,
                     "search_latency": best.latency_s if best else None,
                     "search_traffic": best.dram_bytes if best else None,
                     "search_mapping": best.describe() if best else None,
                     "search_granularity": granularity_of(best, n) if best else None,
                     "families": f"{result.families_scored}/{result.families_total}",
                     "pruned": result.families_pruned, "optimal": result.complete, "seconds": seconds})
    return rows


def granularity_of(candidate, n: int) -> str:
    """'head' when a fused group holds whole heads (P unsplit or one tile of P), else 'row (t)'."""
    p = candidate.tiles.get("P")
    fused = "fused" if len(candidate.family.fusion) == 1 else (
        "unfused" if not candidate.family.fusion else f"{len(candidate.family.fusion)} groups")
    if not p or p[-1] >= n:
        return f"head, {fused}"
    return f"row ({p[-1]}), {fused}"


def ratio(a, b) -> str:
    return f"{a / b:7.3f}" if a is not None and b else "     - "


def ms(x, missing: str = "refused") -> str:
    return f"{x * 1e3:12.3f}" if x is not None else f"{missing:>12}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="search budget per point, seconds (default 60)")
    parser.add_argument("--lengths", help="comma-separated sequence lengths (default: every one of the files)")
    parser.add_argument("--part", choices=("1", "2"), help="only part 1 (FuseMax) or part 2 (FLAT)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not EXTERNAL.is_dir():
        print(f"the FuseMax artifact results are not at {EXTERNAL}", file=sys.stderr)
        return 2
    wanted = args.lengths.split(",") if args.lengths else None
    one = part1(wanted or list(LENGTHS), args.budget) if args.part in (None, "1") else []
    two = part2(wanted or list(VALIDATION_LENGTHS), args.budget) if args.part in (None, "2") else []
    if args.json:
        print(json.dumps({"fusemax": one, "flat": two}, indent=2))
        return 0
    if one:
        print("Part 1: mha_1pass on fusemax, BERT (B=64, H=12, E=F=64), search objective = DRAM traffic")
        print("traffic in GB (1e9 B), latency in ms; ratios are searched / artifact\n")
        head = (f"{'len':>5} {'artifact GB':>12} {'searched GB':>12} {'ratio':>7} {'x floor':>7} | {'artifact ms':>12}"
                f" {'searched ms':>12} {'ratio':>7} | {'families':>8} {'cand./s':>10} {'s':>5}  mapping found")
        print(head)
        print("-" * len(head))
        for r in one:
            print(f"{r['seq_len']:>5} {r['artifact_traffic'] / 1e9:12.4f} {r['traffic'] / 1e9:12.4f}"
                  f" {ratio(r['traffic'], r['artifact_traffic'])} {r['traffic'] / r['compulsory']:7.3f} |"
                  f" {ms(r['artifact_latency'])} {ms(r['latency'])} {ratio(r['latency'], r['artifact_latency'])} |"
                  f" {r['families']:>8} {r['per_second']:10.3g} {r['seconds']:5.1f}  {r['mapping']}")
        worse = [r["seq_len"] for r in one if r["traffic"] > r["artifact_traffic"] * (1 + 1e-9)]
        print(f"\nsearched traffic <= artifact traffic at {len(one) - len(worse)} of {len(one)} lengths"
              + (f"; above it at {', '.join(worse)}" if worse else ""))
    if two:
        print("\nPart 2: mha_3pass on flat_cloud, BERT; FLAT's granularity (flat_validation.csv) costed by our model")
        print("beside the best mapping of the latency search (same model, same target); latency in ms;")
        print("'art. ms' is attn-flat.csv's FLAT latency where the artifact has that length\n")
        head = (f"{'len':>5} {'FLAT choice':>12} {'FLAT ms':>12} {'art. ms':>12} | {'searched ms':>12} {'ratio':>7}"
                f" {'families':>8} {'s':>5}  searched granularity / mapping")
        print(head)
        print("-" * len(head))
        for r in two:
            choice = f"{r['flat_granularity']} {r['flat_rows_costed'] or ''}".strip()
            print(f"{r['seq_len']:>5} {choice:>12} {ms(r['flat_latency'])} {ms(r['artifact_flat_latency'], '-')} |"
                  f" {ms(r['search_latency'])} {ratio(r['search_latency'], r['flat_latency'])}"
                  f" {r['families']:>8} {r['seconds']:5.1f}  {r['search_granularity']} / {r['search_mapping']}")
        notes = [f"  {r['seq_len']}: {r['flat_note']}" for r in two if r["flat_note"]]
        if notes:
            print("\nFLAT's choice adjusted to our buffer:")
            print("\n".join(notes))
        fits = [r for r in two if r["flat_latency"] is not None]
        ok = [r for r in fits if r["search_latency"] is not None
              and r["search_latency"] <= r["flat_latency"] * (1 + 1e-9)]
        print(f"\nsearch at least as good as FLAT's choice at {len(ok)} of the {len(fits)} lengths where it fits "
              f"our buffer; at {len(two) - len(fits)} more FLAT's choice does not fit (FLAT spills part of it to "
              "DRAM, which our model does not do) and the search gives the best mapping that fits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
