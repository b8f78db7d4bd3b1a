"""`cascade reduce SPEC [--rank M] [--tile M0] [-o OUT.einsum] [--json] [--verify]`: derive a
cascade with fewer passes over a rank, with its certificate.

The readable form is the new cascade (it parses back), preceded by `#` lines: passes before and
after, the lower bound and why, and per rewritten reduction the rule and each identity sympy
proved. With `-o` the cascade goes to the file and the report to stdout. `--verify` evaluates
the original and the result with the reference at several shapes (ragged tiles included) and
input scales and says the largest error; a mismatch exits 1. A refusal exits 2 at the
reduction's file:line:col with the reason.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import CascadeError
from .common import add_json_option, add_shape_option, emit_json, load_spec


def register(sub) -> None:
    p = sub.add_parser("reduce", help="derive a fewer-pass (tiled, online) cascade, with a sympy certificate")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--rank", default=None,
                   help="the rank whose passes to reduce (default: the one rank with more than one pass)")
    p.add_argument("--tile", type=int, default=None, metavar="M0",
                   help="tile size of the emitted split (default 256; 1 gives the element-wise online form)")
    p.add_argument("-o", "--output", metavar="OUT.einsum", help="write the derived cascade here")
    p.add_argument("--verify", action="store_true",
                   help="evaluate original and result with the reference at several shapes and scales")
    add_shape_option(p)
    add_json_option(p, "the certificate, the derived cascade and any verification")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.shape)
    start = time.perf_counter()
    reduced, cert = spec.reduce(args.rank, args.tile)
    seconds = time.perf_counter() - start
    text = reduced.show()
    trials = []
    if args.verify and not cert.already_minimal:
        from ..transform.verify import verify

        trials = verify(spec.cascade, reduced.cascade, cert.rank)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CascadeError(f"-o {args.output}: cannot write ({exc.strerror}); choose a writable path") from None
    ok = all(t.ok for t in trials)
    if args.json:
        emit_json({**cert.as_dict(), "seconds": seconds, "text": text,
                   "verify": [t.as_dict() for t in trials], "verified": ok if trials else None})
        return 0 if ok else 1
    report = format_certificate(cert, seconds)
    if trials:
        worst = max(t.max_error for t in trials)
        report.append(f"verify: {sum(t.ok for t in trials)}/{len(trials)} trials equal at rtol 1e-9 "
                      f"(shapes x inputs: unit, large logits, large mean); max relative error {worst:.1e}")
    if args.output:
        print("\n".join(report))
        print(f"wrote {args.output}")
    else:
        print("\n".join("# " + line for line in report))
        print(text, end="")
    return 0 if ok else 1


def format_certificate(cert, seconds: float) -> list[str]:
    lines = [f"reduce {cert.cascade} over {cert.rank}: {seconds:.2f} s"]
    if cert.already_minimal:
        passes = f"{cert.passes_before} pass{'' if cert.passes_before == 1 else 'es'}"
        lines.append(f"already minimal: {passes} over {cert.rank} = the lower bound; {cert.lower_bound_reason}")
        return lines
    lines.append(f"passes over {cert.rank}: {cert.passes_before} -> {cert.passes_after} "
                 f"(over {cert.rank}1, tiles of {cert.rank}0 = {cert.tile}; {cert.inner_passes} within a tile)")
    lines.append(f"lower bound {cert.lower_bound}: {cert.lower_bound_reason}")
    for s in cert.steps:
        lines.append(f"{s.reduction} ({s.where}): rule {s.rule}; body {s.body}")
        lines += [f"  proved: {i}" for i in s.identities]
        lines += [f"  lemma: {lemma}" for lemma in s.lemmas]
    return lines
