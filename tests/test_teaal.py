"""`cascade import-teaal` over the TeAAL corpus (../shared/external/teaal/*.yaml) and on small specs.

Every corpus file either imports (the spec checks, the mapping parses, and the cascade's reference
evaluation matches an independent `np.einsum` evaluation of the TeAAL expressions themselves) or
is rejected with one line naming the file and the missing feature. The exact sets are asserted,
so a regression in either direction shows.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import cascade
from cascade.cli import main
from cascade.interop.teaal.importer import DEFAULT_SHAPE, TeaalImportError, import_teaal
from cascade.mapping.mapping_file import load_mapping, parse_mapping

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "external" / "teaal"
FILES = sorted(p.name for p in CORPUS.glob("*.yaml"))
needs_corpus = pytest.mark.skipif(not FILES, reason=f"TeAAL corpus not found at {CORPUS}")

# file -> a fragment of its one-line rejection
REJECTED = {
    "cnn.yaml": "index arithmetic 'g * x + r'",
    "conv2d.yaml": "index arithmetic 'x + r'",
    "gamma.yaml": "take()",
    "example7.yaml": "Z is written by 2 expressions",
    "test_arch.yaml": "no 'einsum' section",
    "test_bindings.yaml": "no 'einsum' section",
}
IMPORTED = {
    "demo.yaml", "dotprod.yaml", "example.yaml", "example2.yaml", "example3.yaml", "example4.yaml",
    "example5.yaml", "example6.yaml", "example8.yaml", "example9.yaml", "extensor-energy.yaml", "extensor.yaml",
    "gemm.yaml", "gemv.yaml", "gram.yaml", "mttkrp.yaml", "nrm_sq.yaml", "outerprod.yaml", "outerspace.yaml",
    "sddmm.yaml", "sigma.yaml", "spmm.yaml", "spmv.yaml", "test_input.yaml", "test_input_no_loop_order.yaml",
    "test_input_no_mapping.yaml", "test_input_no_partitioning.yaml", "test_input_no_rank_order.yaml",
    "test_input_no_spacetime.yaml", "test_translate_no_loops.yaml", "ttm.yaml", "ttv.yaml",
}


def corpus_text(name: str) -> str:
    return (CORPUS / name).read_text()


# ---------------------------------------------------------------- an independent TeAAL evaluator

_ACCESS = re.compile(r"\s*([A-Za-z_]\w*)\s*(?:\[([^\]]*)\])?\s*\Z")


def _access(text: str) -> tuple[str, list[str]]:
    m = _ACCESS.match(text)
    assert m, f"not a plain access: {text!r}"
    return m.group(1), [v.strip() for v in (m.group(2) or "").split(",") if v.strip()]


def teaal_reference(doc: dict, inputs: dict[str, np.ndarray], shapes: dict[str, int]) -> dict[str, np.ndarray]:
    """Evaluate TeAAL expressions (sums of products) with np.einsum, straight from their text.

    Each term is contracted over its own variables, broadcast over the expression's iteration
    space, summed with the other terms, and the variables absent from the left side are summed.
    """
    section = doc["einsum"]
    declared = section["declaration"]
    values = dict(inputs)
    for expr in section.get("expressions") or section["expression"]:
        assert not set("-()/") & set(expr), f"not a plain sum of products: {expr}"
        left, right = expr.split("=")
        out, out_vars = _access(left)
        terms = [[_access(f) for f in term.split("*")] for term in right.split("+")]
        for name, vs in [(out, out_vars)] + [f for t in terms for f in t]:
            if declared.get(name):  # the arrays are stored in declaration order
                assert [v.upper() for v in vs] == declared[name], f"{name}[{vs}] vs {declared[name]}"
        all_vars = list(dict.fromkeys(out_vars + [v for t in terms for _, vs in t for v in vs]))
        letter = {v: chr(ord("a") + k) for k, v in enumerate(all_vars)}
        full = tuple(shapes[v.upper()] for v in all_vars)
        total = np.zeros(full)
        for term in terms:
            term_vars = [v for v in all_vars if any(v in vs for _, vs in term)]
            subs = ",".join("".join(letter[v] for v in vs) for _, vs in term)
            val = np.einsum(f"{subs}->{''.join(letter[v] for v in term_vars)}", *[values[n] for n, _ in term])
            total = total + val.reshape([shapes[v.upper()] if v in term_vars else 1 for v in all_vars])
        reduced = tuple(k for k, v in enumerate(all_vars) if v not in out_vars)
        kept = [v for v in all_vars if v in out_vars]
        values[out] = np.transpose(total.sum(axis=reduced), [kept.index(v) for v in out_vars])
    return values


# ---------------------------------------------------------------- the corpus


@needs_corpus
def test_corpus_categories_are_exact():
    imported, rejected = set(), {}
    for name in FILES:
        try:
            import_teaal(corpus_text(name), name)
            imported.add(name)
        except TeaalImportError as exc:
            rejected[name] = str(exc)
    print(f"\nTeAAL corpus: {len(FILES)} files, {len(imported)} imported and run, {len(rejected)} rejected")
    for name, message in sorted(rejected.items()):
        print(f"  {message}")
    assert len(FILES) == 38
    assert imported == IMPORTED
    assert set(rejected) == set(REJECTED)
    for name, message in rejected.items():
        assert "\n" not in message and message.startswith(f"{name}: ") and REJECTED[name] in message


@needs_corpus
@pytest.mark.parametrize("name", sorted(IMPORTED))
def test_imported_spec_checks_runs_and_matches_numpy(name):
    doc = yaml.safe_load(corpus_text(name))
    result = import_teaal(corpus_text(name), name)
    spec = cascade.loads(result.einsum, file=name.replace(".yaml", ".einsum"))
    mapping = parse_mapping(result.mapping, name)
    inputs = spec.random_inputs(seed=3)
    outputs = spec.run(inputs)
    expected = teaal_reference(doc, inputs, spec.shapes)
    assert set(outputs) == {d.name for d in spec.cascade.outputs} and outputs
    for tensor, value in outputs.items():
        np.testing.assert_allclose(value, expected[tensor], rtol=1e-9, atol=1e-12, err_msg=f"{name}: {tensor}")
    # every rank has its stated default shape unless a partitioning asks for more
    for rank, size in spec.shapes.items():
        tiles = mapping.partitioning.get(rank)
        assert size == (max(DEFAULT_SHAPE, 2 * tiles[0]) if tiles else DEFAULT_SHAPE)
    # loop orders and spacetimes name exactly the (partitioned) ranks their Einsum iterates
    for info in spec.semantics.statements:
        einsum = info.statement.name
        ranks = sorted(p for v in info.variables for p in split_parts(v.upper(), mapping.partitioning))
        if einsum in mapping.loop_order:
            assert sorted(mapping.loop_order[einsum]) == ranks
        if einsum in mapping.spacetime:
            st = mapping.spacetime[einsum]
            assert sorted(st.space + st.time) == ranks
    for tensor, order in mapping.rank_order.items():
        assert sorted(order) == sorted(spec.semantics.tensors[tensor].ranks)
    # nothing dropped silently: every skipped section has a report line, also in the spec's header
    for key in doc:
        if key not in ("einsum", "mapping"):
            assert any(line.startswith(f"{key}:") for line in result.report), key
    for key in doc.get("mapping") or {}:
        if key not in ("rank-order", "partitioning", "loop-order", "spacetime"):
            assert any(line.startswith(f"mapping.{key}:") for line in result.report), key
    for line in result.report:
        assert f"#   {line}\n" in result.einsum


def split_parts(rank: str, partitioning: dict[str, tuple[int, ...]]) -> list[str]:
    levels = partitioning.get(rank)
    return [rank] if not levels else [f"{rank}{k}" for k in range(len(levels), -1, -1)]


@needs_corpus
def test_test_input_merges_per_einsum_partitioning():
    result = import_teaal(corpus_text("test_input.yaml"), "test_input.yaml")
    m = parse_mapping(result.mapping)
    assert m.partitioning == {"M": (4, 2), "N": (6, 3)}
    assert m.loop_order == {"T1": ("K", "N2", "N1", "N0", "M2", "M1", "M0"), "Z": ("M2", "N2", "M1", "N1", "M0", "N0")}
    assert m.spacetime["T1"].space == ("N2", "N1", "N0") and m.spacetime["T1"].time == ("K", "M2", "M1", "M0")
    assert m.rank_order == {"A": ("M", "K"), "C": ("N", "M"), "Z": ("N", "M")}
    assert any("qualifiers dropped from K.pos, M.coord" in line for line in result.report)
    assert "input A[K, M], B[K, N], C[M, N]\noutput Z[M, N]\n" in result.einsum
    assert "\nT1[m, n] = A[k, m] * B[k, n]\nZ[m, n] = T1[m, n] + C[m, n]\n" in result.einsum


@needs_corpus
def test_partitioning_styles_we_do_not_model_are_reported():
    demo = import_teaal(corpus_text("demo.yaml"), "demo.yaml")
    assert parse_mapping(demo.mapping).partitioning == {} and parse_mapping(demo.mapping).loop_order == {}
    assert sum("uniform_occupancy" in line for line in demo.report) == 2
    assert any(line.startswith("loop-order.Z: [M3, N3") for line in demo.report)
    sigma = import_teaal(corpus_text("sigma.yaml"), "sigma.yaml")
    assert parse_mapping(sigma.mapping).partitioning == {"K": (128,)}
    assert any("flatten()" in line for line in sigma.report)
    assert "shape K = 256, M = 8, N = 8" in sigma.einsum
    extensor = import_teaal(corpus_text("extensor.yaml"), "extensor.yaml")
    m = parse_mapping(extensor.mapping)
    assert m.partitioning == {"K": (4, 2), "M": (4, 2), "N": (4, 2)}
    assert m.spacetime["Z"].space == ("K1",)
    assert any("symbolic tile shapes set to K1 = 4, K0 = 2" in line for line in extensor.report)


@needs_corpus
def test_scalars_become_rankless_inputs():
    result = import_teaal(corpus_text("gemm.yaml"), "gemm.yaml")
    assert "input A[K, M], B[K, N], C[M, N], a[], b[]" in result.einsum
    assert "Z[m, n] = a[] * T1[m, n] + b[] * C[m, n]" in result.einsum
    spec = cascade.loads(result.einsum)
    out = spec.run({"a": np.array(0.0), "b": np.array(2.0)}, seed=1)
    np.testing.assert_allclose(out["Z"], 2 * spec.random_inputs(1)["C"])


# ---------------------------------------------------------------- small specs


def spec_doc(expressions, declaration=None, **sections) -> dict:
    declaration = declaration or {"A": ["K", "M"], "B": ["K", "N"], "Z": ["M", "N"]}
    return {"einsum": {"declaration": declaration, "expressions": expressions}, **sections}


def test_indices_are_reordered_to_the_declaration_and_checked():
    result = import_teaal(spec_doc(["Z[n, m] = A[m, k] * B[k, n]"]), "t.yaml")
    assert "Z[m, n] = A[k, m] * B[k, n]" in result.einsum
    assert sum("reordered to the declared rank order" in line for line in result.report) == 2
    with pytest.raises(TeaalImportError, match=r"^t\.yaml: 'Z\[m, n\] = A\[k, k\].*each once"):
        import_teaal(spec_doc(["Z[m, n] = A[k, k] * B[k, n]"]), "t.yaml")
    with pytest.raises(TeaalImportError, match="does not index A"):
        import_teaal(spec_doc(["Z[m, n] = A[i, m] * B[k, n]"]), "t.yaml")


def test_conflicting_partitionings_are_reported_not_merged():
    decl = {"A": ["M"], "T": ["M"], "Z": ["M"]}
    mapping = {"partitioning": {"T": {"M": ["uniform_shape(4)"]}, "Z": {"M": ["uniform_shape(2)"]}},
               "loop-order": {"T": ["M1", "M0"]}, "spacetime": {"Z": {"space": ["M"], "time": [], "opt": "slip"}}}
    result = import_teaal(spec_doc(["T[m] = A[m]", "Z[m] = T[m]"], decl, mapping=mapping), "c.yaml")
    m = parse_mapping(result.mapping)
    assert m.partitioning == {} and m.loop_order == {} and m.spacetime["Z"].space == ("M",)
    assert any("differ from T's [4]" in line for line in result.report)
    assert any(line.startswith("loop-order.T: [M1, M0] skipped") for line in result.report)
    assert any(line.startswith("spacetime.Z.opt:") for line in result.report)


def test_unknown_sections_keys_and_styles_are_reported():
    mapping = {"partitioning": {"Z": {"K": ["nway_shape(2)"], "M": ["uniform_shape(3)", "uniform_shape(2)"]}},
               "fusion": [["Z"]], "rank-order": {"Q": ["K"], "A": ["K"]}}
    result = import_teaal(spec_doc(["Z[m, n] = A[k, m] * B[k, n]"], mapping=mapping, extra={"x": 1}), "u.yaml")
    report = "\n".join(result.report)
    for fragment in ("nway_shape(2)", "tiles [3, 2] must shrink", "mapping.fusion: not a TeAAL mapping key",
                     "rank-order.Q: no tensor Q", "rank-order.A: [K] is not an order", "extra: not a TeAAL section"):
        assert fragment in report
    assert parse_mapping(result.mapping).partitioning == {}


@pytest.mark.parametrize("document, message", [
    ("einsum: [", "not valid YAML"),
    ("- 1", "a TeAAL spec is a YAML mapping"),
    ("mapping: {}", "no 'einsum' section"),
    ("einsum: {declaration: {A: [K]}, expressions: []}", "expected a list of Einsums"),
    ("einsum: {declaration: {A: [k]}, expressions: ['A[k] = 1']}", "upper-case rank names"),
    ("einsum: {declaration: {A: [K], Z: []}, expressions: ['Z[] = A[2*k]']}", "index arithmetic '2\\*k'"),
    ("einsum: {declaration: {A: [K], Z: []}, expressions: ['Z[] = sum(A[k])']}", "operator sum\\(\\)"),
    ("einsum: {declaration: {A: [K], Z: []}, expressions: ['Z[] = A[k] *']}", "unexpected end"),
    ("einsum: {declaration: {A: [K], Z: [K]}, expressions: ['Z[k] = A[k]', 'A[k] = Z[k]']}", "does not check"),
])
def test_errors_are_one_line(document, message):
    with pytest.raises(TeaalImportError, match=message) as info:
        import_teaal(document, "e.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("e.yaml")


def test_shape_overrides():
    result = import_teaal(spec_doc(["Z[m, n] = A[k, m] * B[k, n]"]), "s.yaml", {"M": 3})
    assert cascade.loads(result.einsum).shapes == {"K": 8, "M": 3, "N": 8}
    with pytest.raises(TeaalImportError, match="no rank Q"):
        import_teaal(spec_doc(["Z[m, n] = A[k, m] * B[k, n]"]), "s.yaml", {"Q": 3})


# ---------------------------------------------------------------- the command line


@needs_corpus
def test_cli_writes_spec_and_mapping(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["import-teaal", str(CORPUS / "extensor-energy.yaml"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    spec_path, mapping_path = out / "extensor-energy.einsum", out / "extensor-energy.yaml"
    assert f"wrote {spec_path}" in printed and f"wrote {mapping_path}" in printed
    assert "format: skipped" in printed and "architecture: skipped" in printed and "bindings: skipped" in printed
    assert main(["check", str(spec_path)]) == 0
    assert "cascade extensor_energy" in capsys.readouterr().out
    assert load_mapping(mapping_path).loop_order["Z"] == ("N2", "K2", "M2", "M1", "N1", "K1", "M0", "N0", "K0")
    assert cascade.load(spec_path).run(seed=0)["Z"].shape == (8, 8)


@needs_corpus
def test_cli_json_and_rejection(tmp_path, capsys):
    assert main(["import-teaal", str(CORPUS / "gemv.yaml"), "-o", str(tmp_path), "--json", "--shape", "M=5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["einsum"] == str(tmp_path / "gemv.einsum") and len(report["report"]) == 2
    assert "shape K = 8, M = 5" in (tmp_path / "gemv.einsum").read_text()
    assert main(["import-teaal", str(CORPUS / "gamma.yaml"), "-o", str(tmp_path), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and "take()" in report["error"]
    assert main(["import-teaal", str(CORPUS / "conv2d.yaml"), "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: conv2d.yaml: ") and "index arithmetic" in err
    assert not (tmp_path / "c").exists()


def test_cli_refuses_to_overwrite_its_input(tmp_path, capsys):
    source = tmp_path / "mine.yaml"
    source.write_text(yaml.safe_dump(spec_doc(["Z[m, n] = A[k, m] * B[k, n]"])))
    assert main(["import-teaal", str(source), "-o", str(tmp_path)]) == 2
    assert "overwrite" in capsys.readouterr().err and not (tmp_path / "mine.einsum").exists()


def test_cli_entry_point_exit_code(tmp_path):
    source = tmp_path / "bad.yaml"
    source.write_text("einsum: {declaration: {I: [X], O: [Y]}, expressions: ['O[y] = I[y + 1]']}\n")
    proc = subprocess.run([sys.executable, "-m", "cascade", "import-teaal", str(source), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: bad.yaml: 'O[y] = I[y + 1]': index arithmetic 'y + 1'")
