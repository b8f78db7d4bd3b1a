"""TeAAL specifications -> a `.einsum` cascade plus a mapping file (`cascade import-teaal`).

`import_teaal(document, file)` is a pure function from a TeAAL YAML document to a `TeaalImport`
(einsum text, mapping YAML text, report). TeAAL's `einsum` section (declaration, expressions)
becomes the cascade: declared tensors that no expression writes are inputs, written tensors that
none reads are outputs, the rest are intermediates (inferred, not declared); bare scalars such as
the `a` of `a * T1[m, n]` become rank-less inputs `a[]`. Its `mapping` section (rank-order,
partitioning, loop-order, spacetime) becomes a mapping in the same vocabulary; TeAAL partitions
per Einsum, a cascade per rank, so consistent per-Einsum splits are merged (an Einsum that did not
split a rank iterates its parts in place of it: the same order). The report names, one line each,
everything skipped or changed (format, architecture, bindings, occupancy-based or flattening
partitions, `.pos`/`.coord` qualifiers, ...). What the language cannot express (index arithmetic,
`take`) raises `TeaalImportError`: one line naming the file and the TeAAL feature we lack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

from . import ir
from .errors import CascadeError, InternalError, MappingError, SpecError

DEFAULT_SHAPE = 8
MAPPING_KEYS = ("rank-order", "partitioning", "loop-order", "spacetime")
_RANK = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_TENSOR = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_LEVEL = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*\Z")
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|(\S))")
_UNMODELLED_PARTITIONS = {
    "uniform_occupancy": "occupancy-based partitioning (equal nonzeros per tile, for sparse tensors) is not modelled",
    "nway_shape": "nway_shape (a fixed number of tiles) is not modelled: give uniform_shape tile shapes",
    "flatten": "flatten() (merging ranks into one) is not modelled",
}
_SKIPPED_SECTIONS = {
    "format": "sparse storage formats are not modelled (cascade tensors are dense)",
    "architecture": "hardware is described by a target file (specs/targets/*.yaml), not imported",
    "bindings": "component bindings are not imported (a mapping's 'binding' names compute units)",
}


class TeaalImportError(CascadeError):
    """A TeAAL specification that cannot be imported: one line naming the file and the reason."""


class TeaalImport(NamedTuple):
    einsum: str  # the .einsum text (passes `cascade check`)
    mapping: str  # the mapping YAML text (passes `parse_mapping`)
    report: tuple[str, ...]  # one line per section or feature skipped or changed


def load_teaal(path: str | Path, shapes: MappingABC[str, int] | None = None) -> TeaalImport:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TeaalImportError(f"{path}: cannot read TeAAL spec: {getattr(exc, 'strerror', None) or exc}") from None
    return import_teaal(text, p.name, shapes)


def import_teaal(document: str | MappingABC[str, Any], file: str = "<teaal>",
                 shapes: MappingABC[str, int] | None = None) -> TeaalImport:
    """A TeAAL YAML document (text or loaded) -> (einsum text, mapping text, report)."""
    return _Importer(file).run(_load_yaml(document, file), dict(shapes or {}))


def _load_yaml(document: str | MappingABC[str, Any], file: str) -> MappingABC[str, Any]:
    if isinstance(document, str):
        import yaml

        try:
            document = yaml.safe_load(document)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
            raise TeaalImportError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(document, MappingABC):
        raise TeaalImportError(f"{file}: a TeAAL spec is a YAML mapping with an 'einsum' section")
    return document


class _Importer:
    def __init__(self, file: str):
        self.file = file
        self.report: list[str] = []
        self.ranks_of: dict[str, tuple[str, ...]] = {}  # every tensor -> its ranks (storage order)
        self.iters: dict[str, tuple[str, ...]] = {}  # Einsum -> the ranks it iterates
        self.parts: dict[str, tuple[str, ...]] = {}  # partitioned rank -> its parts, outermost first
        self.tiles: dict[str, tuple[int, ...]] = {}

    def fail(self, message: str) -> TeaalImportError:
        return TeaalImportError(f"{self.file}: {message}")

    def note(self, line: str) -> None:
        self.report.append(" ".join(line.split()))  # one line, whatever the YAML held

    # ------------------------------------------------------------ the whole document
    def run(self, doc: MappingABC[str, Any], overrides: dict[str, int]) -> TeaalImport:
        if "einsum" not in doc or not isinstance(doc["einsum"], MappingABC):
            present = ", ".join(map(str, doc)) or "none"
            raise self.fail(f"no 'einsum' section (sections: {present}): nothing to import")
        cascade = self.cascade(doc["einsum"])
        mapping = doc.get("mapping")
        if mapping is not None and not isinstance(mapping, MappingABC):
            self.note("mapping: expected a table (rank-order, partitioning, loop-order, spacetime): skipped")
            mapping = None
        tables = self.mapping(mapping or {})
        for key, value in doc.items():
            if key in _SKIPPED_SECTIONS:
                names = ", ".join(map(str, value)) if isinstance(value, MappingABC) else ""
                self.note(f"{key}: skipped ({names}): {_SKIPPED_SECTIONS[key]}" if names
                          else f"{key}: skipped: {_SKIPPED_SECTIONS[key]}")
            elif key not in ("einsum", "mapping"):
                self.note(f"{key}: not a TeAAL section (einsum, mapping, format, architecture, bindings): skipped")
        sizes = self.shapes(overrides)
        einsum_text = self.einsum_text(ir.Cascade(cascade.name, tuple(ir.ShapeDecl(r, n) for r, n in sizes.items()),
                                                  (), cascade.inputs, cascade.outputs, cascade.statements))
        return TeaalImport(einsum_text, self.mapping_text(*tables), tuple(self.report))

    # ------------------------------------------------------------ einsum: declaration, expressions
    def cascade(self, section: MappingABC[str, Any]) -> ir.Cascade:
        from .parse import name_from_stem

        declared = self.declaration(section.get("declaration"))
        key = "expressions" if "expressions" in section else "expression"
        exprs = section.get(key)
        if key == "expression" and exprs is not None:
            self.note("einsum.expression: read as 'expressions' (the key TeAAL expects)")
        for extra in section:
            if extra not in ("declaration", "expressions", "expression"):
                self.note(f"einsum.{extra}: not a TeAAL einsum key (declaration, expressions): skipped")
        if isinstance(exprs, str):
            exprs = [exprs]
        if not isinstance(exprs, list) or not exprs or not all(isinstance(e, str) for e in exprs):
            raise self.fail("einsum.expressions: expected a list of Einsums like 'Z[m, n] = A[k, m] * B[k, n]'")
        parsed = [_ExprParser(text, self.fail).statement() for text in exprs]
        written = [lhs.tensor for _, lhs, _ in parsed]
        for name in dict.fromkeys(written):
            if written.count(name) > 1:
                raise self.fail(f"{name} is written by {written.count(name)} expressions: re-defining a tensor is not "
                                "supported (a cascade writes each tensor once)")
        reads: list[ir.Access] = [a for _, _, e in parsed for a in ir.expr_reads(e)]
        self.ranks_of = dict(declared)
        for text, acc in [(t, a) for t, lhs, e in parsed for a in (lhs, *ir.expr_reads(e))]:
            if acc.tensor not in self.ranks_of:
                self.ranks_of[acc.tensor] = tuple(v.upper() for v in acc.variables)
                self.note(f"einsum.declaration: scalar {acc.tensor} is not declared: imported as the rank-less "
                          f"tensor {acc.tensor}[]" if not acc.indices else
                          f"einsum.declaration: {acc.tensor} is not declared: its ranks "
                          f"[{', '.join(self.ranks_of[acc.tensor])}] are taken from '{text}'")
        statements = []
        for text, lhs, expr in parsed:
            lhs = self.ordered(lhs, text)
            expr = _map_reads(expr, lambda a, text=text: self.ordered(a, text))
            statements.append(ir.Einsum(lhs, expr))
            iterated = [v for a in (lhs, *ir.expr_reads(expr)) for v in a.variables]
            self.iters[lhs.tensor] = tuple(dict.fromkeys(v.upper() for v in iterated))
        read_names = {a.tensor for a in reads}
        unused = [t for t in declared if t not in read_names and t not in written]
        if unused:
            self.note(f"einsum.declaration: {', '.join(unused)} declared but used by no expression: kept as inputs")
        names = list(self.ranks_of)
        inputs = [ir.TensorDecl(t, self.ranks_of[t]) for t in names if t not in written]
        outputs = [ir.TensorDecl(t, self.ranks_of[t]) for t in names if t in written and t not in read_names]
        return ir.Cascade(name_from_stem(Path(self.file).stem), (), (), tuple(inputs), tuple(outputs),
                          tuple(statements))

    def declaration(self, value: Any) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, MappingABC) or not value:
            raise self.fail("einsum.declaration: expected a table of tensors and their ranks, e.g. 'A: [K, M]'")
        out = {}
        for tensor, ranks in value.items():
            ranks = [] if ranks is None else ranks
            if not isinstance(tensor, str) or not _TENSOR.match(tensor):
                raise self.fail(f"einsum.declaration: tensor name {tensor!r} is not a name like A or T1")
            if not isinstance(ranks, list) or not all(isinstance(r, str) and _RANK.match(r) for r in ranks):
                raise self.fail(f"einsum.declaration.{tensor}: expected a list of upper-case rank names, got {ranks!r}")
            if len(set(ranks)) != len(ranks):
                raise self.fail(f"einsum.declaration.{tensor}: a rank is named twice in [{', '.join(ranks)}]")
            out[tensor] = tuple(ranks)
        return out

    def ordered(self, acc: ir.Access, text: str) -> ir.Access:
        """The access with its indices in the tensor's declared rank order (each index names its rank)."""
        ranks = self.ranks_of[acc.tensor]
        by_rank = {v.upper(): i for v, i in zip(acc.variables, acc.indices)}
        shown = f"{acc.tensor}[{', '.join(acc.variables)}]"
        if len(acc.indices) != len(ranks) or len(by_rank) != len(acc.indices) or set(by_rank) != set(ranks):
            raise self.fail(f"'{text}': {shown} does not index {acc.tensor}[{', '.join(ranks)}] by the lower-case "
                            "names of its ranks, each once (diagonal or renamed indices are not supported)")
        if tuple(by_rank) != ranks:
            self.note(f"einsum: {shown} in '{text}' reordered to the declared rank order [{', '.join(ranks)}]")
        return ir.Access(acc.tensor, tuple(by_rank[r] for r in ranks))

    # ------------------------------------------------------------ shapes and the .einsum text
    def shapes(self, overrides: dict[str, int]) -> dict[str, int]:
        ranks = list(dict.fromkeys(r for rs in self.ranks_of.values() for r in rs))
        unknown = [r for r in overrides if r not in ranks]
        if unknown:
            raise self.fail(f"--shape {unknown[0]}: the TeAAL spec has no rank {unknown[0]} "
                            f"(its ranks: {', '.join(ranks) or 'none'})")
        return {r: overrides.get(r, max(DEFAULT_SHAPE, 2 * self.tiles[r][0]) if r in self.tiles else DEFAULT_SHAPE)
                for r in ranks}

    def einsum_text(self, cascade: ir.Cascade) -> str:
        from .check import check
        from .parse import parse
        from .show import show

        header = [f"# Imported from the TeAAL specification {Path(self.file).name} by `cascade import-teaal`.",
                  (f"# TeAAL gives no shapes: every rank defaults to {DEFAULT_SHAPE} (twice its largest tile where the "
                   "mapping partitions it);"),
                  "# override them with --shape R=N."]
        if self.report:
            header.append("# Skipped or changed on import:")
            header.extend(f"#   {line}" for line in self.report)
        text = "\n".join(header) + "\n" + show(cascade)
        try:
            check(parse(text, file=f"{cascade.name}.einsum"))
        except SpecError as exc:
            raise self.fail(f"the imported cascade does not check: {exc.first.message}") from None
        return text

    # ------------------------------------------------------------ mapping
    def mapping(self, section: MappingABC[str, Any]) -> tuple[dict, dict, dict, dict]:
        for key in section:
            if key not in MAPPING_KEYS:
                self.note(f"mapping.{key}: not a TeAAL mapping key ({', '.join(MAPPING_KEYS)}): skipped")
        self.partitioning(self.table("partitioning", section.get("partitioning")))
        loop_order = {}
        for einsum, names in self.per_einsum("loop-order", section.get("loop-order")):
            order = self.rank_list(f"loop-order.{einsum}", names)
            expanded = None if order is None else self.expand(f"loop-order.{einsum}", einsum, [order])
            if expanded is not None:
                loop_order[einsum] = expanded[0]
        spacetime = {}
        for einsum, entry in self.per_einsum("spacetime", section.get("spacetime")):
            if (st := self.spacetime(einsum, entry)) is not None:
                spacetime[einsum] = st
        rank_order = {}
        for tensor, names in self.table("rank-order", section.get("rank-order")).items():
            order = self.rank_list(f"rank-order.{tensor}", names)
            if order is None:
                continue
            if tensor not in self.ranks_of:
                self.note(f"rank-order.{tensor}: no tensor {tensor}: skipped")
            elif sorted(order) != sorted(self.ranks_of[tensor]):
                self.note(f"rank-order.{tensor}: [{', '.join(order)}] is not an order of "
                          f"[{', '.join(self.ranks_of[tensor])}]: skipped")
            else:
                rank_order[tensor] = order
        return dict(self.tiles), loop_order, spacetime, rank_order

    def table(self, key: str, value: Any) -> dict:
        if value is None:
            return {}
        if not isinstance(value, MappingABC):
            self.note(f"{key}: expected a table (name: value lines), got a {type(value).__name__}: skipped")
            return {}
        return {str(k): v for k, v in value.items()}

    def per_einsum(self, key: str, value: Any):
        for einsum, entry in self.table(key, value).items():
            if einsum not in self.iters:
                self.note(f"{key}.{einsum}: no expression writes {einsum}: skipped")
            else:
                yield einsum, entry

    def rank_list(self, key: str, value: Any) -> list[str] | None:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and _RANK.match(v) for v in value):
            self.note(f"{key}: expected a list of rank names, got {value!r}: skipped")
            return None
        return value

    def partitioning(self, table: dict[str, Any]) -> None:
        given: dict[str, tuple[tuple[int, ...], str]] = {}
        dropped: set[str] = set()
        named: set[tuple[str, str]] = set()  # (Einsum, rank) pairs the spec partitions
        for einsum, ranks in table.items():
            if einsum not in self.iters:
                self.note(f"partitioning.{einsum}: no expression writes {einsum}: skipped")
                continue
            for rank, levels in self.table(f"partitioning.{einsum}", ranks).items():
                key = f"partitioning.{einsum}.{rank}"
                named.add((einsum, rank))
                tiles = self.levels(key, rank, einsum, levels)
                if tiles is None:
                    dropped.add(rank)
                elif rank in given and given[rank][0] != tiles:
                    other, first = given[rank]
                    self.note(f"{key}: tiles {list(tiles)} differ from {first}'s {list(other)}: a cascade splits "
                              f"a rank once for all Einsums, so {rank} is left unpartitioned")
                    dropped.add(rank)
                else:
                    given.setdefault(rank, (tiles, einsum))
        all_ranks = {r for rs in self.ranks_of.values() for r in rs}
        for rank, (tiles, einsum) in given.items():
            if rank in dropped:
                continue
            parts = tuple(f"{rank}{k}" for k in range(len(tiles), -1, -1))
            clash = [p for p in parts if p in all_ranks]
            if clash:
                self.note(f"partitioning.{einsum}.{rank}: its parts {', '.join(parts)} clash with rank "
                          f"{clash[0]} of the spec: {rank} left unpartitioned")
                continue
            self.tiles[rank], self.parts[rank] = tiles, parts
        for rank in self.parts:
            others = [e for e, rs in self.iters.items() if rank in rs and (e, rank) not in named]
            if others:
                self.note(f"partitioning.{rank}: given for {given[rank][1]}, applies to the whole cascade "
                          f"({', '.join(others)} also iterate{'s' if len(others) == 1 else ''} its parts)")

    def levels(self, key: str, rank: str, einsum: str, levels: Any) -> tuple[int, ...] | None:
        if rank.startswith("("):
            self.note(f"{key}: {_UNMODELLED_PARTITIONS['flatten']}: skipped")
            return None
        if rank not in self.iters[einsum]:
            self.note(f"{key}: {einsum} does not iterate a rank {rank}: skipped")
            return None
        levels = [levels] if isinstance(levels, str) else levels
        if not isinstance(levels, list) or not levels:
            self.note(f"{key}: expected a list of levels like [uniform_shape(4)]: {rank} left unpartitioned")
            return None
        tiles: list[int] = []
        symbolic: list[str] = []
        for level in levels:
            match = _LEVEL.match(str(level))
            style = match.group(1) if match else str(level)
            if style in _UNMODELLED_PARTITIONS:
                self.note(f"{key}: {level}: {_UNMODELLED_PARTITIONS[style]}; {rank} left unpartitioned")
                return None
            if match is None or style != "uniform_shape":
                self.note(f"{key}: {level}: not a TeAAL partitioning style the importer knows "
                          f"(uniform_shape(N)); {rank} left unpartitioned")
                return None
            arg = match.group(2).strip()
            if arg.isdigit() and int(arg) >= 1:
                tiles.append(int(arg))
            elif re.fullmatch(r"[A-Za-z_]\w*", arg):
                tiles.append(max(1, (tiles[-1] if tiles else DEFAULT_SHAPE) // 2))
                symbolic.append(f"{arg} = {tiles[-1]}")
            else:
                self.note(f"{key}: {level}: a tile shape must be a positive integer; {rank} left unpartitioned")
                return None
        if tiles != sorted(tiles, reverse=True) or any(a % b for a, b in pairwise(tiles)):
            self.note(f"{key}: tiles {tiles} must shrink outermost first, each dividing the one above; "
                      f"{rank} left unpartitioned")
            return None
        if symbolic:
            self.note(f"{key}: symbolic tile shapes set to {', '.join(symbolic)} (TeAAL leaves them as parameters)")
        return tuple(tiles)

    def expand(self, key: str, einsum: str, groups: list[list[str]]) -> list[tuple[str, ...]] | None:
        """Ranks as the mapping names them: an unsplit name of a partitioned rank -> its parts, in place."""
        expected = [p for r in self.iters[einsum] for p in self.parts.get(r, (r,))]
        outs = [[p for n in g for p in self.parts.get(n, (n,))] for g in groups]
        names, flat = [n for g in groups for n in g], [p for o in outs for p in o]
        if sorted(flat) != sorted(expected):
            unknown = [n for n in dict.fromkeys(flat) if n not in expected]
            missing = [n for n in expected if n not in flat]
            twice = [n for n in dict.fromkeys(flat) if flat.count(n) > 1]
            why = "; ".join(f"{', '.join(ns)} {what}" for ns, what in
                            ((unknown, "not among them"), (missing, "missing"), (twice, "repeated")) if ns)
            self.note(f"{key}: [{', '.join(names)}] skipped: {einsum} loops over {', '.join(expected)} ({why})")
            return None
        if flat != names:
            self.note(f"{key}: [{', '.join(names)}] read as [{', '.join(flat)}] (the whole cascade splits "
                      f"{', '.join(n for n in names if n in self.parts)}; the same order)")
        return [tuple(o) for o in outs]

    def spacetime(self, einsum: str, entry: Any) -> tuple[tuple[str, ...], ...] | None:
        key = f"spacetime.{einsum}"
        if not isinstance(entry, MappingABC) or not all(isinstance(entry.get(p) or [], list) for p in ("space", "time")):
            self.note(f"{key}: expected {{space: [...], time: [...]}}: skipped")
            return None
        for extra in entry:
            if extra not in ("space", "time"):
                self.note(f"{key}.{extra}: {entry[extra]!r}: TeAAL spacetime optimisations are not modelled: skipped")
        lists = []
        for part in ("space", "time"):
            raw = [str(r) for r in entry.get(part) or []]
            qualified = [r for r in raw if "." in r]
            if qualified:
                self.note(f"{key}.{part}: qualifiers dropped from {', '.join(qualified)} (cascade does not "
                          "distinguish position- from coordinate-space)")
            names = self.rank_list(f"{key}.{part}", [r.split(".", 1)[0] for r in raw])
            if names is None:
                return None
            lists.append(names)
        expanded = self.expand(key, einsum, lists)
        return None if expanded is None else tuple(expanded)

    def mapping_text(self, partitioning: dict, loop_order: dict, spacetime: dict, rank_order: dict) -> str:
        from .mapping import parse_mapping

        def names(xs) -> str:
            return f"[{', '.join(xs)}]"

        lines = [f"# Mapping imported from the TeAAL specification {Path(self.file).name} by `cascade import-teaal`.",
                 "# Skipped or changed sections are listed in the header of the .einsum file."]
        if partitioning:
            lines.append("partitioning:")
            lines += [f"  {r}: {names(f'uniform_shape({n})' for n in tiles)}" for r, tiles in partitioning.items()]
        if loop_order:
            lines.append("loop-order:")
            lines += [f"  {e}: {names(order)}" for e, order in loop_order.items()]
        if spacetime:
            lines.append("spacetime:")
            lines += [f"  {e}: {{space: {names(s)}, time: {names(t)}}}" for e, (s, t) in spacetime.items()]
        if rank_order:
            lines.append("rank-order:")
            lines += [f"  {t}: {names(order)}" for t, order in rank_order.items()]
        text = "\n".join(lines) + "\n"
        try:
            parse_mapping(text, f"{Path(self.file).stem}.yaml")
        except MappingError as exc:
            raise InternalError(f"import-teaal wrote a mapping that does not parse: {exc}") from None
        return text


# ---------------------------------------------------------------- TeAAL expressions -> IR


def _map_reads(expr: ir.Expr, fn) -> ir.Expr:
    match expr:
        case ir.Read(access=a):
            return ir.Read(fn(a))
        case ir.Neg(operand=o):
            return ir.Neg(_map_reads(o, fn))
        case ir.BinOp(op=op, left=l, right=r):
            return ir.BinOp(op, _map_reads(l, fn), _map_reads(r, fn))
    return expr


class _ExprParser:
    """One TeAAL Einsum (`Z[m, n] = a * A[k, m] * B[k, n] + C[m, n]`) -> (text, lhs Access, Expr).

    Sums and products of tensor accesses, bare scalars (rank-less tensors) and numbers; each
    index must be one rank variable. Anything else fails with a one-line reason.
    """

    def __init__(self, text: str, fail):
        self.text, self.fail_with = " ".join(text.split()), fail
        self.tokens: list[tuple[str, str, int, int]] = []
        for m in _TOKEN.finditer(self.text):
            kind = "name" if m.group(1) else "number" if m.group(2) else "op"
            self.tokens.append((kind, m.group(m.lastindex or 0), m.start(m.lastindex or 0), m.end()))
        self.pos = 0

    def fail(self, message: str) -> TeaalImportError:
        return self.fail_with(f"'{self.text}': {message}")

    @property
    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def next(self) -> tuple[str, str, int, int]:
        if self.pos >= len(self.tokens):
            raise self.fail("unexpected end of the expression")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expect(self, value: str) -> None:
        if self.peek != value:
            raise self.fail(f"expected '{value}' but found '{self.peek or 'the end'}'")
        self.next()

    def statement(self) -> tuple[str, ir.Access, ir.Expr]:
        kind, name, _, _ = self.next()
        if kind != "name" or self.peek != "[":
            raise self.fail("expected the written tensor, like Z[m, n] = ...")
        lhs = self.access(name)
        self.expect("=")
        expr = self.sum()
        if self.pos < len(self.tokens):
            raise self.fail(f"unexpected '{self.peek}'")
        return self.text, lhs, expr

    def sum(self) -> ir.Expr:
        expr = self.product()
        while self.peek in ("+", "-"):
            op = self.next()[1]
            expr = ir.BinOp(op, expr, self.product())
        return expr

    def product(self) -> ir.Expr:
        expr = self.unary()
        while self.peek == "*":
            self.next()
            expr = ir.BinOp("*", expr, self.unary())
        return expr

    def unary(self) -> ir.Expr:
        kind, value, _, _ = self.next()
        if value == "-":
            return ir.Neg(self.unary())
        if value == "(":
            expr = self.sum()
            self.expect(")")
            return expr
        if kind == "number":
            return ir.Num(float(value))
        if kind != "name":
            raise self.fail(f"unexpected '{value}' (TeAAL Einsums are sums of products of tensors and scalars)")
        if self.peek == "(":
            if value == "take":
                raise self.fail("take() (TeAAL's operator that keeps one operand where all operands' coordinates "
                                "intersect) is not supported: the .einsum language has no take")
            raise self.fail(f"operator {value}() is not supported (TeAAL Einsums are sums of products)")
        if self.peek == "[":
            return ir.Read(self.access(value))
        return ir.Read(ir.Access(value, ()))  # a scalar: a rank-less tensor

    def access(self, name: str) -> ir.Access:
        self.expect("[")
        indices: list[ir.Index] = []
        while self.peek not in ("]", ""):
            indices.append(self.index())
            if self.peek == ",":
                self.next()
        self.expect("]")
        return ir.Access(name, tuple(indices))

    def index(self) -> ir.Index:
        start = self.pos
        while self.peek not in (",", "]", ""):
            self.next()
        tokens = self.tokens[start:self.pos]
        if not tokens:
            raise self.fail("an empty index")
        if len(tokens) == 1 and tokens[0][0] == "name" and re.fullmatch(r"[a-z][a-z0-9_]*", tokens[0][1]):
            return ir.VarIndex(tokens[0][1])
        text = self.text[tokens[0][2]:tokens[-1][3]].strip()
        if len(tokens) > 1:
            raise self.fail(f"index arithmetic '{text}' (as in convolutions' sliding windows) is not supported: "
                            "each index of a cascade access is one rank variable")
        raise self.fail(f"index '{text}' is not a lower-case rank variable")
