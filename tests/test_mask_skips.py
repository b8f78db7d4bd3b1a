"""Executors skip tiles a filter empties (issue 12, item 4): the generated NumPy executor loads
nothing for a tile of keys no query of the current block reaches, and the cost model counts
exactly the reads that remain (trace == model), numerically at ragged shapes and as a formula in
the rank shapes (`TileSum` over the query blocks) for `--symbolic` and the search's lambdified
form. Closed forms here are written independently of the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.mapping.mapping_file import dump_mapping, parse_mapping
from cascade.mapping.skips import tile_skips
from cascade.model.symbolic import cost_formulas, lambdify_cost
from cascade.model.target import load_target
from cascade.model.traffic import dram_traffic

ROOT = Path(__file__).resolve().parent.parent
ATT = ROOT / "specs" / "attention"
ONE = "QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV"
CAUSAL = (ATT / "causal_1pass.einsum").read_text()
FILTERS = {
    "causal": "where m1*M0 + m0 <= p",
    "strict": "where m1*M0 + m0 < p",                      # row 0 has no key
    "window": "where m1*M0 + m0 <= p and p < m1*M0 + m0 + W",
    "dense": "",
}


def spec_for(kind: str, shapes: dict[str, int]):
    text = CAUSAL.replace("shape E = 64, F = 64, M = 128, P = 128, M0 = 32",
                          "shape E = 64, F = 64, M = 128, P = 128, M0 = 32, W = 40")
    text = text.replace("where m1*M0 + m0 <= p", FILTERS[kind])
    if kind == "window":  # before the window every tile is masked: a finite start (see the bundled spec)
        text = text.replace("init RM[0, p]     = -inf", "init RM[0, p]     = -1e30")
    return cascade.loads(text).with_shapes(**shapes)


MAPPINGS = [
    f"partitioning: {{P: [uniform_shape(7)]}}\nloop-order: {{default: [P1, M1]}}\nfusion: [[{ONE}]]",
    f"partitioning: {{P: [uniform_shape(12), uniform_shape(4)]}}\nloop-order: {{default: [P2, M1, P1]}}\n"
    f"fusion: [[{ONE}]]",
    f"partitioning: {{P: [uniform_shape(9)]}}\nloop-order: {{default: [M1, P1]}}\nfusion: [[{ONE}]]",
]


def counts_equal(spec, mapping) -> dict[str, tuple[int, int]]:
    counts = dram_traffic(spec.bind(mapping)).numeric()
    _, trace = spec.executor(mapping).run_traced(**spec.random_inputs(seed=2))
    for t in set(counts) | set(trace["reads"]) | set(trace["writes"]):
        assert counts.get(t, (0, 0)) == (trace["reads"].get(t, 0), trace["writes"].get(t, 0)), t
    return counts


@pytest.mark.parametrize("kind", ["causal", "strict", "window"])
@pytest.mark.parametrize("mi", range(len(MAPPINGS)))
@pytest.mark.parametrize("m, p, m0, w", [(50, 20, 16, 5), (23, 41, 5, 9)])
def test_model_equals_trace_with_skipped_tiles(kind, mi, m, p, m0, w):
    spec = spec_for(kind, {"E": 3, "F": 2, "M": m, "P": p, "M0": m0, "W": w})
    mapping = parse_mapping(MAPPINGS[mi])
    assert tile_skips(spec.bind(mapping)), "the rule applies to these mappings"
    counts_equal(spec, mapping)


def independent_k_reads(m, p, m0, p0, e, keep, at_init):
    """K elements a [P1, M1] executor loads: per block of p0 queries, the key tiles of m0 that
    some (key, query) pair of the block passes `keep`, plus (without `at_init`) the dead tiles
    before the first live one; every tile where none is live."""
    total = 0
    for lo in range(0, p, p0):
        queries = range(lo, min(lo + p0, p))
        tiles = [range(t, min(t + m0, m)) for t in range(0, m, m0)]
        live = [any(keep(i, j) for i in keys for j in queries) for keys in tiles]
        if not any(live):
            run = [not at_init] * len(tiles)
        elif at_init:
            run = live
        else:
            last = max(i for i, x in enumerate(live) if x)
            run = [i <= last for i in range(len(tiles))]
        total += sum(len(keys) for keys, r in zip(tiles, run) if r) * e
    return total


@pytest.mark.parametrize("kind, keep, at_init", [
    ("causal", lambda i, j: i <= j, False),
    ("strict", lambda i, j: i < j, False),
    ("window", lambda i, j: i <= j < i + 6, True),
])
def test_skipped_reads_equal_an_enumeration_of_the_mask(kind, keep, at_init):
    m, p, m0, p0 = 45, 38, 8, 5
    spec = spec_for(kind, {"E": 3, "F": 2, "M": m, "P": p, "M0": m0, "W": 6})
    mapping = parse_mapping(f"partitioning: {{P: [uniform_shape({p0})]}}\nloop-order: {{default: [P1, M1]}}\n"
                            f"fusion: [[{ONE}]]")
    assert tile_skips(spec.bind(mapping))[next(iter(tile_skips(spec.bind(mapping))))].at_init == at_init
    counts = counts_equal(spec, mapping)
    assert counts["K"][0] == independent_k_reads(m, p, m0, p0, 3, keep, at_init)
    assert counts["V"][0] == independent_k_reads(m, p, m0, p0, 2, keep, at_init)


def test_causal_reads_the_triangle_of_tiles_and_dense_reads_them_all():
    """N = n T, tiles of T keys and blocks of T queries: causal loads K once per tile on or below
    the diagonal, E T n(n+1)/2 elements, dense E T n^2."""
    for n, t in [(4, 16), (7, 8)]:
        mapping = parse_mapping(f"partitioning: {{P: [uniform_shape({t})]}}\nloop-order: {{default: [P1, M1]}}\n"
                                f"fusion: [[{ONE}]]")
        shapes = {"E": 2, "F": 3, "M": n * t, "P": n * t, "M0": t}
        causal = counts_equal(spec_for("causal", shapes), mapping)
        dense = counts_equal(spec_for("dense", shapes), mapping)
        assert causal["K"][0] == 2 * t * n * (n + 1) // 2 and dense["K"][0] == 2 * t * n * n
        assert causal["V"][0] == 3 * t * n * (n + 1) // 2 and causal["Q"] == dense["Q"]


def test_a_tile_no_filter_can_empty_is_never_skipped():
    """Dense attention and a recurrence that writes DRAM in the loop: no skip rule."""
    mapping = parse_mapping(MAPPINGS[0])
    assert tile_skips(spec_for("dense", {"M": 20, "P": 9}).bind(mapping)) == {}


def test_skipped_reads_as_a_formula_and_in_the_search_form():
    """The model's K reads are one formula in the shapes: it gives the trace's count at other
    shapes after substitution, and the lambdified cost (arrays of candidates) agrees with the
    numeric model."""
    mapping = parse_mapping(MAPPINGS[0])
    spec = spec_for("window", {"E": 3, "F": 2, "M": 50, "P": 20, "M0": 16, "W": 5})
    traffic = dram_traffic(spec.bind(mapping))
    formula = traffic.per_tensor["K"].reads
    assert "TileSum" in str(formula) and {"M", "P", "M0", "W"} <= {str(s) for s in formula.free_symbols}
    for m, p, m0, w in [(50, 20, 16, 5), (33, 31, 4, 11)]:
        other = spec_for("window", {"E": 3, "F": 2, "M": m, "P": p, "M0": m0, "W": w})
        values = {traffic.symbols[k]: v for k, v in dram_traffic(other.bind(mapping)).values.items()
                  if k in traffic.symbols}
        assert int(formula.subs(values)) == counts_equal(other, mapping)["K"][0]
    formulas = cost_formulas(spec.bind(mapping), load_target("fusemax"))
    fn, names = lambdify_cost(formulas)
    latency, dram = fn(*[np.array([formulas.values[n]] * 2) for n in names])
    report = spec.estimate(mapping, "fusemax")
    assert np.allclose(dram, report.dram_bytes, rtol=1e-12) and np.allclose(latency, report.latency_s, rtol=1e-12)


def test_symbolic_estimate_prints_the_skipped_reads(capsys, tmp_path):
    from cascade.cli import main

    spec = tmp_path / "window.einsum"
    spec.write_text(CAUSAL.replace("M = 128, P = 128, M0 = 32", "M = 96, P = 96, M0 = 16, W = 20")
                    .replace("where m1*M0 + m0 <= p", FILTERS["window"]))
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPINGS[0].replace("7", "16"))
    assert main(["estimate", str(spec), "-m", str(mapping), "-t", "fusemax", "--symbolic", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert any("TileSum" in str(v) for v in out["symbolic"].values())


RANK_VALUES = """shape M = 12, P = 7, E = 5
input X[M, P], A[E, M, P], I[M], J[P]
output Y[M, P], Z[M, P]
Y[m, p] = {y}
Z[m, p] = {z}
"""


@pytest.mark.parametrize("with_index, with_reads", [
    ("X[m, p] - 0.5 * (p - m)", "X[m, p] - 0.5 * (J[p] - I[m])"),
    ("X[m, p] * pow(2, -8 * (m + 1) / M)", "X[m, p] * pow(2, -8 * (I[m] + 1) / M)"),
    ("X[m, p] + m*P + p", "X[m, p] + I[m]*P + J[p]"),
])
def test_rank_value_arithmetic_costs_as_the_same_arithmetic_on_reads(with_index, with_reads):
    """Issue 12 item 4: index values are not free: `p - m` costs what `J[p] - I[m]` costs (J, I
    position vectors read from memory), per point, on the Einsum's unit, on every bundled
    spatial target; in a sum, a factor of index values invariant along the reduced rank is
    applied once per output point, like a read factor."""
    from cascade.mapping.mapping_file import dump_mapping, parse_mapping

    for target in ("fusemax", "flat_cloud"):
        reports = []
        for y in (with_index, with_reads):
            z = "A[e, m, p] * (p + 1)" if y is with_index else "A[e, m, p] * (J[p] + 1)"
            spec = cascade.loads(RANK_VALUES.format(y=y, z=z))
            reports.append(spec.estimate(parse_mapping("spacetime: {default: {space: [M, P], time: [E]}}"), target))
        ops = [{u: dict(v["ops"]) for u, v in r.per_unit.items()} for r in reports]
        assert ops[0] == ops[1] and any(n > 0 for u in ops[0].values() for n in u.values())


@pytest.mark.parametrize("kind, keep, at_init", [
    ("causal", lambda i, j: i <= j, False),
    ("window", lambda i, j: i <= j < i + 6, True),
])
def test_per_tile_work_is_charged_only_for_tiles_that_run(kind, keep, at_init):
    """The running max, rescaling and sums of a skipped tile are not computed: PRM[m1, p] costs
    one exp per (tile, query) pair the executor runs, counted here by enumeration."""
    from cascade.model.compute import statement_ops
    from cascade.model.symbols import SymbolTable

    m, p, m0, p0 = 45, 38, 8, 5
    spec = spec_for(kind, {"E": 3, "F": 2, "M": m, "P": p, "M0": m0, "W": 6})
    mc = spec.bind(parse_mapping(f"partitioning: {{P: [uniform_shape({p0})]}}\nloop-order: {{default: [P1, M1]}}\n"
                                 f"fusion: [[{ONE}]]"))
    table = SymbolTable(mc)
    ops = {so.name: so for so in statement_ops(mc, load_target("fusemax"), table)}
    runs = 0
    for lo in range(0, p, p0):
        queries = range(lo, min(lo + p0, p))
        live = [any(keep(i, j) for i in range(t, min(t + m0, m)) for j in queries) for t in range(0, m, m0)]
        if at_init:
            ran = sum(live) if any(live) else 0
        else:
            ran = max(i for i, x in enumerate(live) if x) + 1 if any(live) else len(live)
        runs += ran * len(queries)
    assert int(ops["PRM"].points.subs(table.substitutions())) == runs
    assert int(ops["SPNV"].points.subs(table.substitutions())) == runs * 2  # F = 2
    dense = -(-m // m0) * p
    assert runs < dense


# Passes with no recurrence (2- and 3-pass causal attention): a pass over M1 skips the tiles QK's
# band empties; later passes inherit the band through the maps SN and A.
MULTI = {"causal_2pass": "QK, GM, SN, SD, SNV, AV", "causal_3pass": "QK, GM, SN, SD, A, AV"}
MULTI_FILTERS = {"causal": ("where m <= p", lambda i, j: i <= j), "window": ("where m <= p and p < m + 6",
                                                                            lambda i, j: i <= j < i + 6)}


def multi_spec(name: str, kind: str, shapes: dict[str, int]):
    text = (ATT / f"{name}.einsum").read_text().replace("where m <= p", MULTI_FILTERS[kind][0])
    return cascade.loads(text).with_shapes(**shapes)


def multi_mapping(name: str, m0: int, p0: int, order: str):
    return parse_mapping(f"partitioning: {{M: [uniform_shape({m0})], P: [uniform_shape({p0})]}}\n"
                         f"loop-order: {{default: [{order}]}}\nfusion: [[{MULTI[name]}]]")


def independent_attention(q, k, v, keep):
    """Masked softmax attention in plain NumPy, row by row over the queries."""
    out = np.zeros((v.shape[0], q.shape[1]))
    for j in range(q.shape[1]):
        keys = [i for i in range(k.shape[1]) if keep(i, j)]
        if keys:
            s = np.array([q[:, j] @ k[:, i] for i in keys])
            w = np.exp(s - s.max())
            out[:, j] = v[:, keys] @ w / w.sum()
    return out


@pytest.mark.parametrize("name", sorted(MULTI))
@pytest.mark.parametrize("kind", sorted(MULTI_FILTERS))
@pytest.mark.parametrize("m, p, m0, p0", [(45, 38, 8, 5), (23, 41, 5, 9)])
def test_multipass_skips_every_pass_trace_equals_model(name, kind, m, p, m0, p0):
    spec = multi_spec(name, kind, {"E": 3, "F": 2, "M": m, "P": p})
    mapping = multi_mapping(name, m0, p0, "P1, M1, P0, M0")
    check_multipass(name, kind, spec, mapping, m, p, m0, p0)


@pytest.mark.parametrize("name", sorted(MULTI))
@pytest.mark.parametrize("place", ["", "on-chip", "dram"])
def test_multipass_skips_with_the_key_loop_outside(name, place):
    """M1 outside P1: the band's other rank P ranges whole over a key tile, so a tile is live
    iff its first key m1*6 <= P - 1 = 16: tiles 0..2 (18 keys) run, tiles 3 and 4 are skipped.
    AV's accumulator then spans every query block (P1 runs inside M1): by default it goes to
    DRAM, and 3-pass's last pass, which writes and re-reads AV's partial sums, keeps every tile;
    kept on chip (`accumulate: {AV: on-chip}`) it is written after the loop and that pass skips."""
    spec = multi_spec(name, "causal", {"E": 3, "F": 2, "M": 29, "P": 17})
    mapping = multi_mapping(name, 6, 4, "M1, P1, P0, M0")
    if place:
        mapping = parse_mapping(dump_mapping(mapping) + f"accumulate: {{AV: {place}}}\n")
    mc = spec.bind(mapping)
    skipping = name == "causal_2pass" or place == "on-chip"
    assert len(tile_skips(mc)) == int(name[7]) - (0 if skipping else 1)
    counts = counts_equal(spec, mapping)
    assert counts["K"][0] == 3 * 18
    assert counts["V"][0] == 2 * (18 if skipping else 29)
    tiles = -(-29 // 6)
    # AV: written once per element on chip; through DRAM, written at every tile that runs, read back after the first
    steps = 3 if skipping else tiles
    assert counts["AV"] == ((0, 2 * 17) if place == "on-chip" or name == "causal_2pass"
                            else ((steps - 1) * 2 * 17, steps * 2 * 17))
    x = spec.random_inputs(seed=5)
    np.testing.assert_allclose(spec.executor(mapping).run(**x)["AV"],
                               independent_attention(x["Q"], x["K"], x["V"], lambda i, j: i <= j), rtol=1e-9)


def check_multipass(name, kind, spec, mapping, m, p, m0, p0):
    mc = spec.bind(mapping)
    passes = sum(1 for rank in mc.loop_of.values() if rank == "M1")
    # every pass skips: 3-pass's last one too, its accumulator of AV (one tile, on chip) is written after the loop
    assert passes == int(name[7]) and len(tile_skips(mc)) == passes
    counts = counts_equal(spec, mapping)
    keep = MULTI_FILTERS[kind][1]
    assert counts["K"][0] == independent_k_reads(m, p, m0, p0, 3, keep, False)
    assert counts["V"][0] == independent_k_reads(m, p, m0, p0, 2, keep, False)
    assert counts["AV"] == (0, 2 * p)
    inputs = spec.random_inputs(seed=4)
    out = spec.executor(mapping).run(**inputs)["AV"]
    ref = independent_attention(inputs["Q"], inputs["K"], inputs["V"], keep)
    live = [j for j in range(p) if any(keep(i, j) for i in range(m))]
    np.testing.assert_allclose(out[:, live], ref[:, live], rtol=1e-9, atol=1e-12)


def test_a_map_written_to_dram_in_the_pass_keeps_its_tiles():
    """SN in DRAM (unfused): a skipped tile would not write its absent points: no skip for that pass."""
    spec = multi_spec("causal_2pass", "causal", {"E": 3, "F": 2, "M": 30, "P": 20})
    mapping = parse_mapping("partitioning: {M: [uniform_shape(8)], P: [uniform_shape(5)]}\n"
                            "loop-order: {default: [P1, M1, P0, M0]}\nfusion: [[QK, GM, SN], [SD, SNV, AV]]")
    mc = spec.bind(mapping)
    sn_loop = mc.paths[[s.name for s in mc.semantics.statements].index("SN")]
    assert not set(sn_loop) & set(tile_skips(mc))
    counts_equal(spec, mapping)


@pytest.mark.parametrize("kind", sorted(MULTI_FILTERS))
@pytest.mark.parametrize("order", ["P1, M1, P0, M0", "M1, P1, P0, M0"])
def test_three_pass_last_pass_reads_as_a_formula(kind, order):
    """3-pass's last pass (A, AV) as one formula in the shapes: V's reads skip the tiles the band
    empties, and give the trace's count at other (ragged) shapes after substitution; the
    lambdified cost agrees with the numeric model. (M1 outside P1: AV's accumulator spans every
    query block, kept on chip here so that the pass may skip.)"""
    on_chip = "accumulate: {AV: on-chip}\n" if order.startswith("M1") else ""
    mapping = parse_mapping(dump_mapping(multi_mapping("causal_3pass", 8, 5, order)) + on_chip)
    spec = multi_spec("causal_3pass", kind, {"E": 3, "F": 2, "M": 45, "P": 38})
    mc = spec.bind(mapping)
    last = mc.paths[[s.name for s in mc.semantics.statements].index("AV")]
    assert set(last) & set(tile_skips(mc)), "the last pass skips"
    traffic = dram_traffic(mc)
    formula = traffic.per_tensor["V"].reads
    assert {"M", "P", "M0"} <= {str(s) for s in formula.free_symbols}
    for m, p in [(45, 38), (23, 41), (40, 40)]:
        other = multi_spec("causal_3pass", kind, {"E": 3, "F": 2, "M": m, "P": p})
        values = {traffic.symbols[k]: v for k, v in dram_traffic(other.bind(mapping)).values.items()
                  if k in traffic.symbols}
        counts = counts_equal(other, mapping)
        assert int(formula.subs(values)) == counts["V"][0]
        if order.startswith("P1"):
            assert counts["V"][0] == independent_k_reads(m, p, 8, 5, 2, MULTI_FILTERS[kind][1], False)
    formulas = cost_formulas(mc, load_target("fusemax"))
    fn, names = lambdify_cost(formulas)
    latency, dram = fn(*[np.array([formulas.values[n]] * 2) for n in names])
    report = spec.estimate(mapping, "fusemax")
    assert np.allclose(dram, report.dram_bytes, rtol=1e-12) and np.allclose(latency, report.latency_s, rtol=1e-12)


def test_bundled_causal_3pass_on_fusemax_skips_every_pass(capsys):
    """The bundled fusemax mapping of causal_3pass: all three passes skip; `--symbolic` prints V's
    reads as a tile sum, and at N = n T (T = 1024 keys per tile, blocks of 16 queries, T/16 blocks
    per key tile) a block in key tile i reads the i + 1 tiles up to the diagonal: V and K are read
    F T (T/16) n(n + 1)/2 elements each (the triangle of tiles), against F N (N/16) dense."""
    from cascade.cli import main

    n, t = 4, 1024
    spec = cascade.load(ATT / "causal_3pass.einsum", shapes={"M": n * t, "P": n * t})
    mapping = str(ROOT / "mappings" / "causal_3pass" / "fusemax.yaml")
    mc = spec.bind(parse_mapping((ROOT / "mappings" / "causal_3pass" / "fusemax.yaml").read_text()))
    assert len(tile_skips(mc)) == 3
    counts = dram_traffic(mc).numeric()
    assert counts["V"][0] == counts["K"][0] == 64 * t * (t // 16) * n * (n + 1) // 2
    dense = cascade.loads((ATT / "causal_3pass.einsum").read_text().replace(" where m <= p", ""))
    dense_mc = dense.with_shapes(M=n * t, P=n * t).bind(mc.mapping)
    assert tile_skips(dense_mc) == {} and dram_traffic(dense_mc).numeric()["V"][0] == 64 * (n * t) * (n * t // 16)
    assert main(["estimate", str(ATT / "causal_3pass.einsum"), "-m", mapping, "-t", "fusemax",
                 "--shape", f"M={n * t}", "--shape", f"P={n * t}", "--symbolic", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "TileSum" in str(out["symbolic"]["V.reads"])


@pytest.mark.parametrize("order", ["P1, M1", "M1, P1"])
def test_a_pass_that_writes_reductions_to_dram_skips_its_empty_tiles(order):
    """Sliding-window 1-pass with two more outputs, reductions over the keys of the window
    (T: the sum of the scores, U: their max), which the schedule computes in a pass over M1 of
    their own: their accumulators stay on chip (written to DRAM after the loop), so that pass
    skips the key tiles the band empties too (at every tile, the last included); trace == model,
    and T, U equal plain NumPy. With M1 outside P1 the accumulators span every query block:
    kept on chip by the mapping."""
    text = (ATT / "sliding_window_1pass.einsum").read_text().replace("output AV[F, P]", "output AV[F, P], T[P], U[P]")
    text += "T[p] = QK[m1, m0, p]\nU[p] = QK[m1, m0, p] :: max(m1, m0)\n"
    m, p, m0, w = 43, 37, 6, 9
    spec = cascade.loads(text).with_shapes(E=3, F=2, M=m, P=p, M0=m0, W=w)
    extra = "accumulate: {default: on-chip}\n" if order.startswith("M1") else ""
    mapping = parse_mapping(f"partitioning: {{P: [uniform_shape(5)]}}\nloop-order: {{default: [{order}]}}\n"
                            f"fusion: [[{ONE}, T, U]]\n{extra}")
    mc = spec.bind(mapping)
    names = [s.name for s in mc.semantics.statements]
    t_loop = [lid for lid in mc.paths[names.index("T")] if mc.loop_of[lid] == "M1"]
    assert t_loop and t_loop[0] in tile_skips(mc), "the pass writing T and U skips"
    assert {mc.accumulators[names.index(t)] for t in "TU"} == {"on-chip"}
    counts = counts_equal(spec, mapping)
    assert counts["T"] == counts["U"] == (0, p)
    x = spec.random_inputs(seed=7)
    got = spec.executor(mapping).run(**x)
    scores = x["Q"].T @ x["K"]  # [p, m]
    keys = [[i for i in range(m) if i <= j < i + w] for j in range(p)]
    np.testing.assert_allclose(got["T"], [scores[j, ks].sum() for j, ks in enumerate(keys)], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["U"], [scores[j, ks].max() for j, ks in enumerate(keys)], rtol=1e-12)
