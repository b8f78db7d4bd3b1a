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

The work is split by job: `cascade.teaal_einsum` reads the einsum section (and writes the
`.einsum` text), `cascade.teaal_mapping` the mapping section (and writes the mapping text),
`cascade.teaal_common` holds what both share; this module drives them over one document and
reports the sections that are not imported at all.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any

from ...lang import ir
from .common import DEFAULT_SHAPE, ImportLog, TeaalImport, TeaalImportError
from .einsum import EinsumReader, einsum_text
from .mapping import MAPPING_KEYS, MappingReader, mapping_text

__all__ = ["DEFAULT_SHAPE", "MAPPING_KEYS", "TeaalImport", "TeaalImportError", "import_teaal", "load_teaal"]

_SKIPPED_SECTIONS = {
    "format": "sparse storage formats are not modelled (cascade tensors are dense)",
    "architecture": "hardware is described by a target file (specs/targets/*.yaml), not imported",
    "bindings": "component bindings are not imported (a mapping's 'binding' names compute units)",
}


def load_teaal(path: str | Path, shapes: MappingABC[str, int] | None = None) -> TeaalImport:
    from ...yaml_text import read_input

    return import_teaal(read_input(path, "TeAAL spec", TeaalImportError), Path(path).name, shapes)


def import_teaal(document: str | MappingABC[str, Any], file: str = "<teaal>",
                 shapes: MappingABC[str, int] | None = None) -> TeaalImport:
    """A TeAAL YAML document (text or loaded) -> (einsum text, mapping text, report)."""
    return _run(ImportLog(file), _load_yaml(document, file), dict(shapes or {}))


def _load_yaml(document: str | MappingABC[str, Any], file: str) -> MappingABC[str, Any]:
    if isinstance(document, str):
        from ...yaml_text import load_yaml

        document = load_yaml(document, file, TeaalImportError)
    if not isinstance(document, MappingABC):
        raise TeaalImportError(f"{file}: a TeAAL spec is a YAML mapping with an 'einsum' section")
    return document


def _run(log: ImportLog, doc: MappingABC[str, Any], overrides: dict[str, int]) -> TeaalImport:
    """The whole document: einsum, then mapping, then the other sections, then the two texts."""
    if "einsum" not in doc or not isinstance(doc["einsum"], MappingABC):
        present = ", ".join(map(str, doc)) or "none"
        raise log.fail(f"no 'einsum' section (sections: {present}): nothing to import")
    einsum = EinsumReader(log)
    cascade = einsum.cascade(doc["einsum"])
    mapping = doc.get("mapping")
    if mapping is not None and not isinstance(mapping, MappingABC):
        log.note("mapping: expected a table (rank-order, partitioning, loop-order, spacetime): skipped")
        mapping = None
    reader = MappingReader(log, einsum.ranks_of, einsum.iters)
    tables = reader.read(mapping or {})
    for key, value in doc.items():
        if key in _SKIPPED_SECTIONS:
            names = ", ".join(map(str, value)) if isinstance(value, MappingABC) else ""
            log.note(f"{key}: skipped ({names}): {_SKIPPED_SECTIONS[key]}" if names
                     else f"{key}: skipped: {_SKIPPED_SECTIONS[key]}")
        elif key not in ("einsum", "mapping"):
            log.note(f"{key}: not a TeAAL section (einsum, mapping, format, architecture, bindings): skipped")
    sizes = _shapes(log, einsum.ranks_of, reader.tiles, overrides)
    text = einsum_text(log, ir.Cascade(cascade.name, tuple(ir.ShapeDecl(r, n) for r, n in sizes.items()),
                                       (), cascade.inputs, cascade.outputs, cascade.statements))
    return TeaalImport(text, mapping_text(log.file, *tables), tuple(log.report))


def _shapes(log: ImportLog, ranks_of: dict[str, tuple[str, ...]], tiles: dict[str, tuple[int, ...]],
            overrides: dict[str, int]) -> dict[str, int]:
    """Every rank's shape: the --shape override, else DEFAULT_SHAPE (at least twice its largest tile)."""
    ranks = list(dict.fromkeys(r for rs in ranks_of.values() for r in rs))
    unknown = [r for r in overrides if r not in ranks]
    if unknown:
        raise log.fail(f"--shape {unknown[0]}: the TeAAL spec has no rank {unknown[0]} "
                       f"(its ranks: {', '.join(ranks) or 'none'})")
    return {r: overrides.get(r, max(DEFAULT_SHAPE, 2 * tiles[r][0]) if r in tiles else DEFAULT_SHAPE)
            for r in ranks}
