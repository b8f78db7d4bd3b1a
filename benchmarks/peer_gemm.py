"""Plain GEMM on one output-stationary 2D array: our cost model beside SCALE-Sim (a peer).

For a few GEMMs Z[m, n] = A[k, m] * B[k, n] (written M x K x N) this runs SCALE-Sim v3 and
`Spec.estimate` on the same array (the fusemax target's 256 x 256 `array2d`) with the same
dataflow, and prints side by side: compute cycles, DRAM traffic per tensor (words; bytes at the
target's 2-byte words) and end-to-end cycles, with ratios peer / cascade, and notes on why they
differ.

    python benchmarks/peer_gemm.py [--json] [--gemm MxKxN ...] [--venv DIR] [--no-install]

The peer lives in its own virtual environment, never in the project's: on first use this script
creates DIR (default ~/.cache/cascade-bench/scalesim-3.0.0) and pip-installs `scalesim==3.0.0`
there (with numpy<2: SCALE-Sim 3.0.0 calls int() on one-element arrays, which NumPy 2 refuses;
pandas<3, which needs NumPy 2). `--no-install` exits with a message instead when it is missing.
Each run writes SCALE-Sim's config, GEMM topology and (unused) layout file into a temporary
directory and reads its COMPUTE_REPORT.csv and DETAILED_ACCESS_REPORT.csv.

The correspondence (peer configuration <- target file, so the numbers have one source):
- array: ArrayHeight x ArrayWidth = the target's array2d shape (256 x 256).
- dataflow: SCALE-Sim 'os' (output stationary) maps GEMM rows M onto the array rows, columns N
  onto the array columns and streams K in time; its folds run column folds (N) outside row folds
  (M). Ours: spacetime space [M, N0], time [N1, K], loop order [N1, M, N0, K] (mapping
  `os-resident` below). M is not partitioned: a space rank longer than the array folds onto it
  in time (occupancy), and A's whole M extent is one on-chip tile, which is what SCALE-Sim's
  ifmap SRAM does when A fits. `os-streamed` partitions M too (loop order [N1, M1, M0, N0, K],
  SCALE-Sim's literal fold order): A's tile is reloaded for every column fold, what an ifmap
  SRAM too small for A would do; only its traffic is printed, for contrast.
- words: SCALE-Sim's memory model has 1-byte words hard-wired (single_layer_sim: word_size = 1),
  so its "kB" SRAM sizes and its access counts are read as (K)words of the target's word_bytes.
- SRAM: the target's 16 MiB buffer = 8 Mi words, split ifmap 1/4, filter 1/4, ofmap 1/2.
- DRAM bandwidth (USER mode): the target's 400 GiB/s at 940 MHz is 228.4 words per cycle;
  SCALE-Sim gives each of its three DRAM ports (ifmap, filter, ofmap) its own bandwidth, so each
  gets a third, rounded down (76 words/cycle; the three together 99.8% of the target's).
"""

from __future__ import annotations

import argparse
import configparser
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = "fusemax"
UNIT = "array2d"
PEER_VERSION = "3.0.0"
PEER_PACKAGES = (f"scalesim=={PEER_VERSION}", "numpy<2", "pandas<3")
DEFAULT_VENV = Path.home() / ".cache" / "cascade-bench" / f"scalesim-{PEER_VERSION}"
# (M, K, N): square; rectangular; a wide one with a short K; a transformer QK^T (sequence 1024,
# head dimension 64); and one whose M and N do not fold evenly onto 256 x 256 (partial folds).
GEMMS = ((256, 256, 256), (512, 256, 1024), (1024, 64, 4096), (1024, 64, 1024), (384, 128, 640))

MAPPINGS = {
    # SCALE-Sim 'os' with an ifmap SRAM holding A: M folds onto the rows in time, A stays on chip.
    "os-resident": """
partitioning:
  N: [uniform_shape({cols})]
loop-order:
  default: [N1, M, N0, K]
spacetime:
  default: {{space: [M, N0], time: [N1, K]}}
binding:
  default: {unit}
""",
    # SCALE-Sim's fold order, each fold's A and B tiles loaded for that fold.
    "os-streamed": """
partitioning:
  M: [uniform_shape({rows})]
  N: [uniform_shape({cols})]
loop-order:
  default: [N1, M1, M0, N0, K]
spacetime:
  default: {{space: [M0, N0], time: [N1, M1, K]}}
binding:
  default: {unit}
""",
}

# Run by the peer's own interpreter: sys.argv = [config, topology, layout, output dir].
PEER_DRIVER = """
import sys
from scalesim.scale_sim import scalesim
config, topology, layout, out = sys.argv[1:5]
sim = scalesim(save_disk_space=True, verbose=False, config=config, topology=topology, layout=layout,
               input_type_gemm=True)
sim.run_scale(top_path=out)
"""


class PeerUnavailable(Exception):
    pass


def peer_python(venv: Path, install: bool) -> tuple[Path, str]:
    """The peer's interpreter and SCALE-Sim's version, creating the environment if allowed."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import scalesim, numpy, importlib.metadata as m; print(m.version('scalesim'))"]
    if python.exists():
        done = subprocess.run(probe, check=False, capture_output=True, text=True)
        if done.returncode == 0:
            return python, done.stdout.strip()
    if not install:
        raise PeerUnavailable(
            f"SCALE-Sim is not installed in {venv}. Create it with\n"
            f"  python -m venv {venv} && {python} -m pip install {' '.join(repr(p) for p in PEER_PACKAGES)}\n"
            "or run without --no-install to let this script do it.")
    print(f"installing SCALE-Sim {PEER_VERSION} into {venv} (once) ...", file=sys.stderr)
    steps = ([sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_PACKAGES])
    for step in steps:
        done = subprocess.run(step, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise PeerUnavailable(f"`{' '.join(step)}` failed:\n{(done.stderr or done.stdout).strip()[-2000:]}")
    done = subprocess.run(probe, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"SCALE-Sim installed in {venv} but does not import:\n{done.stderr.strip()[-2000:]}")
    return python, done.stdout.strip()


def peer_config(target) -> dict:
    """SCALE-Sim's architecture, derived from the cascade target (see the module docstring)."""
    rows, cols = target.units[UNIT].shape
    words_per_cycle = target.dram_bandwidth / target.clock_hz / target.word_bytes
    kwords = target.buffer_bytes // target.word_bytes // 1024
    return {"rows": rows, "cols": cols, "dataflow": "os", "port_words_per_cycle": int(words_per_cycle // 3),
            "target_words_per_cycle": words_per_cycle, "ifmap_kwords": kwords // 4, "filter_kwords": kwords // 4,
            "ofmap_kwords": kwords // 2}


def write_peer_files(folder: Path, cfg: dict, m: int, k: int, n: int) -> tuple[Path, Path, Path]:
    bw = str(cfg["port_words_per_cycle"])
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep SCALE-Sim's key spelling
    parser["general"] = {"run_name": "gemm"}
    parser["run_presets"] = {"InterfaceBandwidth": "USER", "UseRamulatorTrace": "False"}
    parser["architecture_presets"] = {
        "ArrayHeight": str(cfg["rows"]), "ArrayWidth": str(cfg["cols"]),
        "ifmapsramszkB": str(cfg["ifmap_kwords"]), "filtersramszkB": str(cfg["filter_kwords"]),
        "ofmapsramszkB": str(cfg["ofmap_kwords"]),
        "IfmapOffset": "0", "FilterOffset": "100000000", "OfmapOffset": "200000000",
        "Bandwidth": bw,  # the ofmap port; USER mode takes the ifmap and filter ports' from [layout]
        "Dataflow": cfg["dataflow"], "ReadRequestBuffer": "32", "WriteRequestBuffer": "32"}
    parser["layout"] = {"IfmapCustomLayout": "False", "FilterCustomLayout": "False",
                        "IfmapSRAMBankBandwidth": bw, "IfmapSRAMBankNum": "1", "IfmapSRAMBankPort": "2",
                        "FilterSRAMBankBandwidth": bw, "FilterSRAMBankNum": "1", "FilterSRAMBankPort": "2"}
    parser["sparsity"] = {"SparsitySupport": "false", "SparseRep": "ellpack_block", "OptimizedMapping": "false",
                          "BlockSize": "8", "RandomNumberGeneratorSeed": "40"}
    config, topology, layout = folder / "scale.cfg", folder / "gemm.csv", folder / "layout.csv"
    with open(config, "w") as fh:
        parser.write(fh)
    topology.write_text(f"Layer, M, N, K,\ngemm, {m}, {n}, {k},\n")  # SCALE-Sim's GEMM topology format
    layout.write_text("Layer,\ngemm, 1,\n")  # required by SCALE-Sim, read only with a custom layout
    return config, topology, layout


def read_report(path: Path) -> dict[str, float]:
    with open(path) as fh:
        row = next(csv.DictReader(fh, skipinitialspace=True))
    return {key.strip(): float(value) for key, value in row.items() if key and key.strip() and value}


def run_peer(python: Path, cfg: dict, m: int, k: int, n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cascade-peer-gemm-") as tmp:
        folder = Path(tmp)
        files = write_peer_files(folder, cfg, m, k, n)
        start = time.perf_counter()
        done = subprocess.run([str(python), "-c", PEER_DRIVER, *map(str, files), str(folder / "out")],
                              check=False, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"SCALE-Sim failed on {m}x{k}x{n}:\n{(done.stderr or done.stdout).strip()[-3000:]}")
        compute = read_report(folder / "out" / "gemm" / "COMPUTE_REPORT.csv")
        access = read_report(folder / "out" / "gemm" / "DETAILED_ACCESS_REPORT.csv")
    first_read = min(access["DRAM IFMAP Start Cycle"], access["DRAM Filter Start Cycle"])
    return {"cycles": compute["Total Cycles"], "stall_cycles": compute["Stall Cycles"],
            "cycles_incl_dram": compute["Total Cycles (incl. prefetch)"],
            "prefetch_cycles": max(0.0, -first_read),  # DRAM reads before compute starts at cycle 0
            "writeback_tail_cycles": max(0.0, access["DRAM OFMAP Stop Cycle"] - compute["Total Cycles"]),
            "compute_util": compute["Compute Util %"] / 100, "mapping_efficiency": compute["Mapping Efficiency %"] / 100,
            "words": {"A": access["DRAM IFMAP Reads"], "B": access["DRAM Filter Reads"], "Z": access["DRAM OFMAP Writes"]},
            "seconds": time.perf_counter() - start}


def run_cascade(target, m: int, k: int, n: int) -> dict:
    import cascade
    from cascade.mapping.mapping_file import parse_mapping

    rows, cols = target.units[UNIT].shape
    spec = cascade.load(ROOT / "specs" / "matmul.einsum", shapes={"K": k, "M": m, "N": n})
    out = {}
    for name, text in MAPPINGS.items():
        mapping = parse_mapping(text.format(rows=rows, cols=cols, unit=UNIT), f"<peer_gemm {name}>")
        report = spec.estimate(mapping, target)
        words = {t: (v["read_bytes"] + v["write_bytes"]) / target.word_bytes for t, v in report.per_tensor.items()}
        out[name] = {"cycles": report.per_unit[UNIT]["cycles"], "cycles_incl_dram": report.latency_s * target.clock_hz,
                     "bound": report.bound, "words": words}
    return out


def evaluate(gemms, python: Path, target) -> tuple[list[dict], dict]:
    cfg = peer_config(target)
    rows_, cols_ = cfg["rows"], cfg["cols"]
    with ThreadPoolExecutor(max_workers=2) as pool:  # the peer runs in subprocesses
        peers = [pool.submit(run_peer, python, cfg, m, k, n) for m, k, n in gemms]
        ours = [run_cascade(target, m, k, n) for m, k, n in gemms]
        peer_results = [f.result() for f in peers]
    out = []
    for (m, k, n), peer, mine in zip(gemms, peer_results, ours):
        folds = math.ceil(m / rows_) * math.ceil(n / cols_)
        # SCALE-Sim 'os': cycles = folds * (K + R + C - 2) - 1, each fold adding R-1 skew and C-1 drain
        peer["cycles_without_fill_drain"] = peer["cycles"] - peer["stall_cycles"] + 1 - folds * (rows_ + cols_ - 2)
        out.append({"gemm": f"{m}x{k}x{n}", "M": m, "K": k, "N": n, "folds": folds, "macs": m * k * n,
                    "peer": peer, "cascade": mine["os-resident"], "cascade_streamed": mine["os-streamed"]})
    return out, cfg


def ratio(a: float, b: float) -> str:
    return f"{a / b:7.3f}" if b else "    -  "


def notes(rows: list[dict], cfg: dict, word_bytes: int) -> list[str]:
    r, c, bw = cfg["rows"], cfg["cols"], cfg["port_words_per_cycle"]
    out = [
        (f"Compute cycles. SCALE-Sim's output-stationary array runs each fold of {r}x{c} outputs as K cycles of "
         f"MACs plus {r - 1} cycles of skewed operand fill and {c - 1} cycles of draining the outputs, and does not "
         "overlap consecutive folds: cycles = folds x (K + R + C - 2) - 1. Cascade counts MACs / (PEs x occupancy of "
         "the space ranks), an array kept busy across folds. Removing the fill/drain term from SCALE-Sim's count "
         "(column 'peer-fd') leaves folds x K, which equals cascade's count, partial folds included (cascade "
         "charges each tile of a space rank its own folds, a ragged last tile a whole one); the gap "
         "is largest when K is small beside R + C (K = 64: about 9x)."),
    ]
    for x in rows:
        fd, mine = x["peer"]["cycles_without_fill_drain"], x["cascade"]["cycles"]
        if abs(fd - mine) > 0.5:
            out.append(
                f"Unexpected ({x['gemm']}): SCALE-Sim without fill/drain gives {fd:.0f} cycles ({x['folds']} folds x "
                f"K) but cascade {mine:.0f}; both should pay a whole fold for a partial one (cascade charges each "
                "innermost space tile its own folds).")
    fits = all(x["M"] * x["K"] <= cfg["ifmap_kwords"] * 512 and x["K"] * x["N"] <= cfg["filter_kwords"] * 512
               for x in rows)  # each operand within the active half of its SRAM
    reuse = ("with these SRAM sizes every operand fits and is read once (compulsory traffic)" if fits else
             "an operand larger than the active half of its SRAM is refetched, which the os-resident mapping "
             "does not model (it keeps A on chip or is refused)")
    out += [
        ("DRAM traffic. SCALE-Sim prefetches each operand into its own double-buffered SRAM (half active) and "
         f"refetches only on a miss: {reuse}. The os-resident mapping keeps A's whole M extent on chip and reads "
         "A and B once. SCALE-Sim "
         f"requests whole lines of {bw} words (its per-port bandwidth), so its reads round up slightly, and the "
         "padding of a partial fold (rows of A or columns of B beyond the matrix) is requested and counted as "
         "reads. Column 'streamed' is cascade's traffic for SCALE-Sim's literal fold order with A reloaded for "
         "every column fold: what SCALE-Sim's SRAM reuse saves when A fits (the loop nest states its reuse "
         "explicitly; SCALE-Sim finds it by simulating the buffer)."),
        ("End-to-end cycles. SCALE-Sim serialises three phases: the DRAM reads that fill the active SRAM halves "
         "before compute starts ('prefetch'), the compute (with stalls, if any), and the write-back of the outputs "
         f"still queued when compute ends ('tail'); each of its three DRAM ports moves {bw} words/cycle (together "
         f"{3 * bw * word_bytes} bytes/cycle; the target has {cfg['target_words_per_cycle'] * word_bytes:.1f}), so "
         "Z's writes use a third of the bandwidth. Cascade overlaps compute and all traffic within the group: "
         "max(compute cycles, bytes / bandwidth) (column bound), with no fill or drain phase."),
    ]
    return out


def print_tables(rows: list[dict], cfg: dict, peer_version: str, word_bytes: int) -> None:
    print(f"SCALE-Sim {peer_version} beside cascade ({TARGET}.yaml, unit {UNIT}): {cfg['rows']}x{cfg['cols']} "
          f"output-stationary array, SRAM ifmap/filter/ofmap {cfg['ifmap_kwords']}/{cfg['filter_kwords']}/"
          f"{cfg['ofmap_kwords']} Kwords, {cfg['port_words_per_cycle']} words/cycle per DRAM port.")
    print(f"GEMM = M x K x N (Z[m,n] = A[k,m] B[k,n]); ratios are peer / cascade; words of {word_bytes} bytes.\n")
    head = (f"{'GEMM':<14} {'folds':>5} | {'cascade':>9} {'SCALE-Sim':>9} {'ratio':>7} {'peer-fd':>9} {'ratio':>7} |"
            f" {'util c':>6} {'util p':>6}")
    print("Compute cycles (peer-fd: SCALE-Sim minus its fill/drain term)")
    print(head)
    print("-" * len(head))
    for x in rows:
        c, p = x["cascade"], x["peer"]
        print(f"{x['gemm']:<14} {x['folds']:>5} | {c['cycles']:>9.0f} {p['cycles']:>9.0f} {ratio(p['cycles'], c['cycles'])}"
              f" {p['cycles_without_fill_drain']:>9.0f} {ratio(p['cycles_without_fill_drain'], c['cycles'])} |"
              f" {x['macs'] / (c['cycles'] * cfg['rows'] * cfg['cols']):>6.1%} {p['compute_util']:>6.1%}")
    head = (f"{'GEMM':<14} | {'A c':>8} {'A p':>8} | {'B c':>8} {'B p':>8} | {'Z c':>8} {'Z p':>8} |"
            f" {'total c':>9} {'total p':>9} {'ratio':>7} | {'MB c':>7} {'MB p':>7} | {'streamed':>9}")
    print("\nDRAM traffic in Kwords (c = cascade os-resident, p = SCALE-Sim; MB = 1e6 bytes; "
          "streamed = cascade os-streamed total)")
    print(head)
    print("-" * len(head))
    for x in rows:
        c, p, s = x["cascade"]["words"], x["peer"]["words"], x["cascade_streamed"]["words"]
        tc, tp, ts = sum(c.values()), sum(p.values()), sum(s.values())
        print(f"{x['gemm']:<14} | {c['A'] / 1024:>8.1f} {p['A'] / 1024:>8.1f} | {c['B'] / 1024:>8.1f} {p['B'] / 1024:>8.1f} |"
              f" {c['Z'] / 1024:>8.1f} {p['Z'] / 1024:>8.1f} | {tc / 1024:>9.1f} {tp / 1024:>9.1f} {ratio(tp, tc)} |"
              f" {tc * word_bytes / 1e6:>7.3f} {tp * word_bytes / 1e6:>7.3f} | {ts / 1024:>9.1f}")
    head = (f"{'GEMM':<14} | {'cascade':>9} {'bound':>7} | {'prefetch':>8} {'compute':>8} {'tail':>7} {'SCALE-Sim':>9} |"
            f" {'ratio':>7}")
    print("\nEnd-to-end cycles with DRAM (cascade: latency x clock; SCALE-Sim: total incl. prefetch = "
          "prefetch + compute + tail)")
    print(head)
    print("-" * len(head))
    for x in rows:
        c, p = x["cascade"], x["peer"]
        print(f"{x['gemm']:<14} | {c['cycles_incl_dram']:>9.0f} {c['bound']:>7} | {p['prefetch_cycles']:>8.0f}"
              f" {p['cycles']:>8.0f} {p['writeback_tail_cycles']:>7.0f} {p['cycles_incl_dram']:>9.0f} |"
              f" {ratio(p['cycles_incl_dram'], c['cycles_incl_dram'])}")
    print("\nNotes")
    for note in notes(rows, cfg, word_bytes):
        print(f"- {note}")


def parse_gemm(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"'{text}': write a GEMM as MxKxN, e.g. 1024x64x1024")
    m, k, n = map(int, parts)
    return m, k, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--gemm", type=parse_gemm, action="append", metavar="MxKxN",
                        help="a GEMM to run instead of the default list (repeatable)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"the peer's environment ({DEFAULT_VENV})")
    parser.add_argument("--no-install", action="store_true", help="exit if SCALE-Sim is not installed yet")
    args = parser.parse_args()
    from cascade.model.target import load_target

    target = load_target(TARGET)
    try:
        python, version = peer_python(args.venv, install=not args.no_install)
    except PeerUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    start = time.perf_counter()
    rows, cfg = evaluate(tuple(args.gemm or GEMMS), python, target)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"peer": {"name": "SCALE-Sim", "package": "scalesim", "version": version,
                                   "environment": str(args.venv)},
                          "target": TARGET, "unit": UNIT, "peer_config": cfg, "mappings": list(MAPPINGS),
                          "rows": rows, "notes": notes(rows, cfg, target.word_bytes), "seconds": seconds}, indent=2))
        return 0
    print_tables(rows, cfg, version, target.word_bytes)
    print(f"\n{len(rows)} GEMMs in {seconds:.1f} s (SCALE-Sim in {args.venv})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
