"""`cascade map SPEC -m MAPPING`: the mapped loop nest as readable pseudo-code."""

from __future__ import annotations

import argparse

from .common import add_json_option, add_shape_option, emit_json, load_spec


def register(sub) -> None:
    p = sub.add_parser("map", help="show the loop nest a mapping produces (pseudo-code)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-m", "--mapping", metavar="MAPPING", help="mapping file (default: no partitioning, no fusion)")
    add_shape_option(p)
    add_json_option(p, "groups, loops and storage")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.shape)
    if args.json:
        mapped = spec.bind(args.mapping)
        emit_json(mapped_json(mapped))
        return 0
    print(spec.loop_nest(args.mapping), end="")
    return 0


def mapped_json(mapped) -> dict:
    from ..mapping.schedule import Loop

    sem = mapped.semantics

    def node(n):
        if isinstance(n, Loop):
            return {"loop": n.rank, "extent": mapped.shapes[n.rank], "body": [node(b) for b in n.body]}
        s = sem.statements[n.statement]
        return {"statement": s.name, "init": s.is_init}

    return {
        "cascade": sem.cascade.name,
        "shapes": mapped.shapes,
        "partitions": {r: {"levels": list(p.names), "extents": list(p.extents)} for r, p in mapped.partitions.items()},
        "groups": [{"name": g.name, "loops": list(g.loop_ranks), "tree": [node(n) for n in g.tree]}
                   for g in mapped.groups],
        "storage": {t: {"dram": st.dram, "axes": dict(zip(sem.tensors[t].ranks, st.axes))}
                    for t, st in mapped.storage.items()},
    }
