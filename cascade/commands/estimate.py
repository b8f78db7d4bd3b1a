"""`cascade estimate SPEC -m MAPPING -t TARGET`: traffic, compute and latency on a target."""

from __future__ import annotations

import argparse

from .common import add_json_option, add_shape_option, emit_json, load_spec


def register(sub) -> None:
    p = sub.add_parser("estimate", help="cost of a mapped cascade on a target: DRAM traffic, cycles, latency")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-m", "--mapping", metavar="MAPPING", help="mapping file (default: no partitioning, no fusion)")
    p.add_argument("-t", "--target", metavar="TARGET", required=True,
                   help="target file, or a bundled name: fusemax, flat_cloud, flat_edge, grayskull_e150, h200 (GPU)")
    p.add_argument("--symbolic", action="store_true", help="also print every count as a formula in the shapes")
    p.add_argument("--group", action="append", metavar="NAME",
                   help="grid targets: cost only this program (fusion group, e.g. GM+SN+SD+A; repeatable), "
                        "as a kernel measured alone")
    add_shape_option(p)
    add_json_option(p, "the cost report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.shape)
    report = spec.estimate(args.mapping, args.target, symbolic=args.symbolic, groups=args.group)
    if args.json:
        emit_json(report.to_json())
        return 0
    print(format_report(report))
    return 0


def _bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} B"


def format_grid_groups(r) -> list[str]:
    """Per program on a grid target: cores, L1 per core, DRAM per bank, NoC, per-core cycles, time."""
    lines = ["per program (one fusion group), per core of the grid:"]
    for g in r.groups:
        space = ", ".join(f"{k} {d['extent']} over {d['cores']} cores ({d['per_core']} each)"
                          for k, d in g["space"].items()) or "one core"
        cycles = ", ".join(f"{u} {c:,.0f}" for u, c in g["unit_cycles"].items()) or "-"
        cores = f"{g['cores']} core{'s' if g['cores'] != 1 else ''} {'x'.join(map(str, g['grid']))}"
        lines += [f"  {g['group']}: {cores}; {space}",
                  f"    L1 {_bytes(g['l1_bytes_per_core'])} per core; DRAM {_bytes(g['dram_device_bytes'])} "
                  f"({_bytes(g['dram_bytes_per_bank'])} per bank); NoC multicast {_bytes(g['noc_multicast_bytes'])}, "
                  f"exchange {_bytes(g['noc_exchange_bytes'])}",
                  f"    cycles per core: {cycles}; NoC {g['noc_s'] * 1e3:.4f} ms; kernel {g['kernel_s'] * 1e3:.4f} ms "
                  f"+ dispatch {g['dispatch_s'] * 1e3:.4f} ms"]
    return lines


def format_report(r) -> str:
    lines = [f"cascade {r.cascade} on {r.target}: " + ", ".join(f"{k}={v}" for k, v in r.shapes.items()), ""]
    lines.append(f"latency      {r.latency_s * 1e3:,.4f} ms ({r.bound}-bound)")
    lines.append(f"DRAM traffic {_bytes(r.dram_bytes)}  (read {_bytes(r.dram_read_bytes)}, "
                 f"written {_bytes(r.dram_write_bytes)}; {r.dram_bytes:,.0f} B)")
    lines.append(f"on chip      {_bytes(r.on_chip_bytes)} at most, in one fusion group")
    lines += [f"             {line}" for line in r.extra.get("spills", [])]
    if r.energy_j is not None:
        lines.append(f"energy       {r.energy_j:,.4g} J")
        for level, terms in r.extra.get("energy_pj", {}).items():
            parts = ", ".join(f"{k} {v * 1e-12:,.4g} J" for k, v in terms.items() if v)
            lines.append(f"  {level:<11}{sum(terms.values()) * 1e-12:,.4g} J" + (f"  ({parts})" if parts else ""))
    if "area_um2" in r.extra:
        area = r.extra["area_um2"]
        parts = ", ".join(f"{k} {v / 1e6:,.4g}" for k, v in area.items() if k != "total")
        lines.append(f"area         {area['total'] / 1e6:,.4g} mm^2  ({parts})")
    lines.append("")
    lines.append(f"{'tensor':<12}{'read':>18}{'written':>18}")
    for t, d in r.per_tensor.items():
        lines.append(f"{t:<12}{_bytes(d['read_bytes']):>18}{_bytes(d['write_bytes']):>18}")
    lines.append("")
    lines.append(f"{'unit':<12}{'cycles':>18}{'utilization':>14}  operations")
    for u, d in r.per_unit.items():
        ops = ", ".join(f"{k} {v:,.0f}" for k, v in d["ops"].items()) or "-"
        lines.append(f"{u:<12}{d['cycles']:>18,.0f}{d['utilization']:>14.1%}  {ops}")
    if r.placement:
        lines.append("")
        lines.append("placement (space ranks over the unit's PEs; none: one PE, the default):")
        for pl in r.placement:
            space = ", ".join(pl["space"]) or "none"
            acc = f"; partial sums {pl['accumulator']}" if "accumulator" in pl else ""
            busy = f"occupancy {pl['occupancy']:.1%}" if pl["space"] else "one PE"
            lines.append(f"  {pl['einsum']:<10} on {pl['unit']:<10} space: {space:<16} {busy}{acc}")
    lines.append("")
    lines.append(f"{'group':<40}{'compute ms':>12}{'memory ms':>12}  bound")
    for g in r.groups:
        lines.append(f"{g['group'][:39]:<40}{g['compute_s'] * 1e3:>12.4f}{g['memory_s'] * 1e3:>12.4f}  {g['bound']}")
        for ph in g.get("phases", []):  # the mapping's pipeline (model/pipeline.py)
            lines.append(f"  phase {ph['phase'][:31]:<32}{ph['cycles']:>14,.0f} cycles")
    if any("cores" in g for g in r.groups):
        lines += ["", *format_grid_groups(r)]
    if r.symbolic:
        lines.append("")
        lines.append("formulas (elements / operations, in the rank and tile shapes):")
        for k, v in r.symbolic.items():
            lines.append(f"  {k:<16} = {v}")
    return "\n".join(lines)
