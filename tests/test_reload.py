"""`reload` in a mapping: a DRAM-resident tensor not kept on chip across the named loops is loaded
anew at each of their iterations; the model's traffic equals the executor's trace and a closed
form, results stay right, and bad `reload` entries are refused with the place and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cascade
from cascade.errors import MappingError
from cascade.mapping.mapping_file import dump_mapping, parse_mapping
from oracles import assert_trace_equals_model

ROOT = Path(__file__).resolve().parent.parent
MHA3 = ROOT / "specs" / "attention" / "mha_3pass.einsum"
FLAT_BYPASS = ROOT / "mappings" / "mha_3pass" / "flat_bypass.yaml"


def small(text: str, p_tile: int, m_tile: int, file: str = "small.yaml"):
    text = text.replace("P: [uniform_shape(256)]", f"P: [uniform_shape({p_tile})]")
    return parse_mapping(text.replace("M: [uniform_shape(256)]", f"M: [uniform_shape({m_tile})]"), file)


@pytest.mark.parametrize("shapes, p_tile, m_tile", [
    (dict(B=2, H=2, E=4, F=3, M=16, P=12), 4, 4),
    (dict(B=1, H=2, E=3, F=5, M=11, P=9), 4, 3),  # ragged tiles on both ranks
])
def test_reload_traffic_equals_the_trace_and_the_closed_form(shapes, p_tile, m_tile):
    spec = cascade.load(MHA3, shapes)
    mapping = small(FLAT_BYPASS.read_text(), p_tile, m_tile)
    report = spec.estimate(mapping, "flat_cloud")
    inputs = spec.random_inputs(seed=5)
    outputs, trace = spec.executor(mapping).run_traced(**inputs)
    np.testing.assert_allclose(outputs["AV"], spec.run(inputs)["AV"], rtol=1e-9, atol=1e-12)
    b, h, e, f, m, p = (shapes[k] for k in "BHEFMP")
    m_tiles, p_tiles = -(-m // m_tile), -(-p // p_tile)
    closed = {"Q": b * h * e * p * m_tiles,  # re-loaded per key tile (reload: Q: [M1])
              "K": b * h * e * m * p_tiles,  # K and V tiles follow M1, inside the query-block loop
              "V": b * h * f * m * p_tiles}
    word = 2
    for t, n in closed.items():
        assert trace["reads"][t] == n, t
        assert report.per_tensor[t]["read_bytes"] == n * word, t
    assert trace["writes"] == {"AV": b * h * f * p}
    # without the reload, Q is loaded once per query block: the compulsory count
    plain = parse_mapping(dump_mapping(mapping).replace("reload:\n  Q: [M1]\n", ""), "plain.yaml")
    assert not plain.reload
    assert spec.executor(plain).run_traced(**inputs)[1]["reads"]["Q"] == b * h * e * p
    assert spec.estimate(plain, "flat_cloud").per_tensor["Q"]["read_bytes"] == b * h * e * p * word


def test_reload_keeps_a_widened_tile_when_it_passes_free_loops_only():
    """FuseMax keeps a block of Q rows (a P2 tile) on chip across the key tiles (M1 between P2 and
    P1); `reload: Q: [M1]` passes only M1, which Q does not depend on, so the same widened block
    is loaded anew per key tile: Q's size times the M1 trip count."""
    spec = cascade.load(ROOT / "specs" / "attention" / "mha_1pass.einsum", dict(B=1, H=1, E=4, F=4, M=32, P=32))
    text = (ROOT / "mappings" / "mha_1pass" / "fusemax.yaml").read_text()
    text = text.replace("uniform_shape(32768), uniform_shape(256)", "uniform_shape(16), uniform_shape(4)")
    text = text.replace("uniform_shape(256)", "uniform_shape(8)")
    base = parse_mapping(text, "fm.yaml")
    mc = spec.bind(base)
    q = next(ld for ld in mc.loads if ld.tensor == "Q")
    assert q.widen  # the block of rows is kept across M1
    top = mc.loop_of[q.path[-1]]
    inputs = spec.random_inputs(seed=1)
    before = spec.executor(base).run_traced(**inputs)[1]["reads"]["Q"]
    assert before == 4 * 32  # compulsory
    m1 = next(mc.loop_of[lid] for lid in mc.paths[q.statements[0]] if mc.loop_of[lid].startswith("M"))
    again = parse_mapping(text + f"reload:\n  Q: [{m1}]\n", "fm_reload.yaml")
    mc2 = spec.bind(again)
    q2 = next(ld for ld in mc2.loads if ld.tensor == "Q")
    assert mc2.loop_of[q2.path[-1]] == m1 != top and q2.widen == q.widen
    out, trace = spec.executor(again).run_traced(**inputs)
    np.testing.assert_allclose(out["AV"], spec.run(inputs)["AV"], rtol=1e-9, atol=1e-12)
    report = spec.estimate(again, "fusemax")
    assert trace["reads"]["Q"] == report.per_tensor["Q"]["read_bytes"] / 2 == 4 * 32 * (32 // 8)


@pytest.mark.parametrize("entry, message", [
    ("Z: [M1]", r"reload\.Z: unknown tensor Z: the tensors are"),
    ("QK: [M1]", r"reload\.QK: QK stays on chip .* list a tensor read from DRAM"),
    ("Q: [X1]", r"reload\.Q: X1 is not a loop around a statement that loads Q; the loops there are B1, H1, M1, P1"),
    ("Q: [M1, 2x]", r"reload\.Q: expected a list of names"),
])
def test_bad_reload_entries_are_refused_with_the_fix(entry, message):
    text = FLAT_BYPASS.read_text().replace("reload:\n  Q: [M1]\n", f"reload:\n  {entry}\n")
    spec = cascade.load(MHA3, dict(B=1, H=1, E=4, F=4, M=8, P=8))
    with pytest.raises(MappingError, match=message):
        spec.bind(parse_mapping(text, "bad.yaml"))


def test_cli_refuses_a_bad_reload_with_exit_2(tmp_path, capsys):
    from cascade.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(FLAT_BYPASS.read_text().replace("Q: [M1]", "Q: [X1]"))
    code = main(["estimate", str(MHA3), "-m", str(path), "-t", "flat_cloud"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.yaml: reload.Q: X1 is not a loop" in err and "Traceback" not in err


LOOPS = {"flat_bypass": ("M1", "P1", "H1"), "flat": ("P1", "H1", "B1"), "unfused": ("P1", "H1")}


@settings(max_examples=8, deadline=None)
@given(m=st.integers(3, 13), p=st.integers(2, 11), m_tile=st.integers(1, 5), p_tile=st.integers(1, 6),
       name=st.sampled_from(sorted(LOOPS)), pick=st.integers(1, 7), tensor=st.sampled_from(["Q", "K", "V"]))
def test_any_reload_keeps_results_and_trace_equal_to_the_model(m, p, m_tile, p_tile, name, pick, tensor):
    """Whatever tensor and loops `reload` names (in flat.yaml and unfused.yaml, K and V are
    otherwise kept across the query blocks), results are unchanged and the executor's trace
    equals the model's traffic, tensor by tensor."""
    spec = cascade.load(MHA3, dict(B=1, H=2, E=2, F=3, M=m, P=p))
    loops = [r for j, r in enumerate(LOOPS[name]) if pick >> j & 1] or [LOOPS[name][0]]
    text = (ROOT / "mappings" / "mha_3pass" / f"{name}.yaml").read_text().replace("reload:\n  Q: [M1]\n", "")
    mapping = small(text + f"reload:\n  {tensor}: [{', '.join(loops)}]\n", p_tile, m_tile)
    report = spec.estimate(mapping, "flat_cloud")
    inputs = spec.random_inputs(seed=m * 31 + p)
    outputs, trace = spec.executor(mapping).run_traced(**inputs)
    np.testing.assert_allclose(outputs["AV"], spec.run(inputs)["AV"], rtol=1e-9, atol=1e-12)
    assert_trace_equals_model(report, trace, 2, exact=True)  # 2-byte words


def test_reload_across_the_query_blocks_re_reads_k_per_block():
    """unfused.yaml keeps K on chip across its query blocks (P1); `reload: K: [P1]` reads it per block."""
    spec = cascade.load(MHA3, dict(B=1, H=2, E=2, F=3, M=8, P=10))
    text = (ROOT / "mappings" / "mha_3pass" / "unfused.yaml").read_text()
    plain, again = small(text, 4, 4), small(text + "reload:\n  K: [P1]\n", 4, 4)
    inputs = spec.random_inputs(seed=2)
    k_plain = spec.executor(plain).run_traced(**inputs)[1]["reads"]["K"]
    k_again = spec.executor(again).run_traced(**inputs)[1]["reads"]["K"]
    assert k_plain == 2 * 2 * 8 and k_again == k_plain * 3  # ceil(10 / 4) query blocks
    assert spec.estimate(again, "flat_cloud").per_tensor["K"]["read_bytes"] == 2 * k_again
