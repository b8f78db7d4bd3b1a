"""`cascade import-teaal FILE.yaml -o DIR`: a TeAAL spec -> DIR/<stem>.einsum + DIR/<stem>.yaml.

The mapping file keeps TeAAL's vocabulary. What was skipped or changed (format, architecture,
bindings, unmodelled partitionings, ...) is printed one line each; a spec that uses a feature the
language lacks exits 2 with one line saying which (see `cascade.interop.teaal`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CascadeError
from .common import add_json_option, add_shape_option, emit_json


def register(sub) -> None:
    p = sub.add_parser("import-teaal", help="a TeAAL specification to a .einsum file plus a mapping file")
    p.add_argument("teaal", metavar="FILE.yaml", help="the TeAAL specification (einsum, mapping, ... sections)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder for <stem>.einsum and <stem>.yaml (created if missing)")
    add_shape_option(p)
    add_json_option(p, "what was written and the report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..interop.teaal.importer import load_teaal
    from ..lang.shapes import parse_shape_overrides

    source = Path(args.teaal)
    out = Path(args.output)
    spec_path, mapping_path = out / f"{source.stem}.einsum", out / f"{source.stem}.yaml"
    try:
        if mapping_path.resolve() == source.resolve():
            raise CascadeError(f"{source}: the mapping would overwrite the TeAAL spec itself: choose another -o DIR")
        result = load_teaal(source, parse_shape_overrides(args.shape))
        try:
            out.mkdir(parents=True, exist_ok=True)
            spec_path.write_text(result.einsum)
            mapping_path.write_text(result.mapping)
        except OSError as exc:
            raise CascadeError(f"{out}: cannot write: {exc.strerror}") from None
    except CascadeError as exc:
        if not args.json:
            raise
        emit_json({"file": str(source), "ok": False, "error": str(exc)})
        return 2
    if args.json:
        emit_json({"file": str(source), "ok": True, "einsum": str(spec_path), "mapping": str(mapping_path),
                   "report": list(result.report)})
        return 0
    print(f"wrote {spec_path}")
    print(f"wrote {mapping_path}")
    if result.report:
        print(f"skipped or changed ({len(result.report)}):")
        for line in result.report:
            print(f"  {line}")
    else:
        print("nothing skipped")
    sys.stdout.flush()
    return 0
