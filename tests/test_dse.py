"""`cascade dse` on a real LocalCluster of 2 worker processes: every point against a direct
`Spec.estimate` / `search` call, a worker killed mid-run, an interrupt and a resume; then the
results file, the config errors, the Pareto front and the install message without Dask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import cascade
from cascade.errors import CascadeError, MappingError

ROOT = Path(__file__).resolve().parent.parent

STUDY = """\
name: study
target: fusemax
workloads:
  - name: mm
    spec: matmul.einsum
    shapes: {K: 256}
  - name: att
    spec: attention/attention_1pass.einsum
    shapes: {E: 32, F: 32}
    mapping: {file: attention_1pass/tiled.yaml, tiles: {P: [pe]}}
  - name: mm_searched
    spec: matmul.einsum
    shapes: {K: 64, N: 64}
    search: {objective: latency, budget_s: 60}
vary:
  pe: {target: [units.array2d.shape, units.array1d.shape], values: [16, 128]}
  buf: {target: buffer.capacity_bytes, values: [65536, 16777216]}
  n: {shape: [M], values: [256]}
"""


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as c:
        yield c


def direct(config, row):
    """The point's cost by a direct call: its target built from the config's target file."""
    from cascade.dse.points import enumerate_points, point_mapping, point_shapes, point_target_data
    from cascade.model.target import parse_target
    from cascade.search import search

    point = next(p for p in enumerate_points(config) if p.key == row["key"])
    spec = cascade.load(point.workload.spec_file, point_shapes(config, point))
    target = parse_target(yaml.safe_dump(point_target_data(config, point), sort_keys=False), "point")
    mapping = point_mapping(point)
    try:
        if point.workload.search is not None:
            best = search(spec, target, point.workload.search.objective, 60, top=1).best[0]
            return spec.estimate(best.mapping, target), best.describe()
        return spec.estimate(mapping, target), None
    except MappingError:
        return None, None


def rows_of(path):
    from cascade.dse.store import read_results

    return read_results(path)[1]


def test_every_point_matches_a_direct_call(client, tmp_path):
    from cascade.dse.config import load_config
    from cascade.dse.points import enumerate_points
    from cascade.dse.runner import run_dse

    config = load_config(write(tmp_path, STUDY))
    out = tmp_path / "r.csv"
    summary = run_dse(config, str(out), client)
    rows = rows_of(out)
    keys = [p.key for p in enumerate_points(config)]
    assert sorted(r["key"] for r in rows) == sorted(keys) and len(keys) == 12
    assert summary.written == 12 and summary.workers == 2
    # mm and att (4 points each, 2 PE shapes) run from formulas: one plan per (workload, mapping)
    assert summary.plans == 2  # mm and att: one each, for all their points; the search needs none
    refused = spilled = 0
    for row in rows:
        report, found = direct(config, row)
        if report is None:
            assert row["status"] == "refused" and "buffer" in row["message"]
            refused += 1
            continue
        assert row["status"] == "ok", row
        assert row["latency_s"] == pytest.approx(report.latency_s, rel=1e-9)
        assert row["dram_bytes"] == pytest.approx(report.dram_bytes, rel=1e-12)
        assert row["on_chip_bytes"] == pytest.approx(report.on_chip_bytes, rel=1e-12)
        assert report.energy_j is not None and row["energy_j"] == pytest.approx(report.energy_j, rel=1e-9)
        assert row["area_mm2"] == pytest.approx(report.extra["area_um2"]["total"] * 1e-6, rel=1e-12)
        if found is not None:
            assert row["mapping"] == found and row["how"] == "search"
        elif "spills" in report.extra:  # the formulas do not carry spills: such a point is estimated
            assert row["how"] == "estimate" and row["on_chip_bytes"] > row["buf"]
            spilled += 1
        else:  # mm and att run from formulas when their groups fit
            assert row["how"] == "formula" and row["on_chip_bytes"] <= row["buf"]
    assert 0 < refused < 12  # the 64 KiB buffer refuses some mappings and not others
    assert spilled == 1  # att at pe=128 in 64 KiB: its tiles fit, its intermediates spill
    latency = {(r["workload"], r["buf"], r["pe"]): r["latency_s"] for r in rows if r["status"] == "ok"}
    pairs = [(w, latency[w, b, 16], latency[w, b, 128])
             for (w, b, pe) in latency if pe == 16 and (w, b, 128) in latency]
    assert pairs and all(big <= small for _, small, big in pairs)  # a larger array is never slower (same buffer)
    assert all(big < small for w, small, big in pairs if w == "mm_searched")  # the search uses it
    area = {r["pe"]: r["area_mm2"] for r in rows if r["status"] == "ok"}
    assert len(area) == 2 and area[128] > area[16]  # the area follows the arrays' PE count


CLOCKS = """\
name: clocks
target: fusemax
workloads:
  - name: att
    spec: attention/attention_1pass.einsum
    shapes: {E: 16, F: 16, M: 256, P: 256}
    mapping: attention_1pass/tiled.yaml
vary:
  exp_cost: {target: op_costs.exp.mac, range: {from: 1, to: 12, step: 1}}
"""


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(client, tmp_path):
    from cascade.dse.config import load_config
    from cascade.dse.runner import run_dse

    config = load_config(write(tmp_path, CLOCKS))  # op_costs is no formula argument: every point estimates
    pids = client.run(os.getpid)
    killed = []

    def kill_one(row):
        if not killed:
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    out = tmp_path / "r.csv"
    summary = run_dse(config, str(out), client, on_row=kill_one)
    rows = rows_of(out)
    assert killed and summary.failed == []
    assert sorted(r["key"] for r in rows) == sorted(f"att|exp_cost={i}" for i in range(1, 13))
    assert all(r["status"] == "ok" and r["how"] == "estimate" for r in rows)
    spec = cascade.load(ROOT / "specs/attention/attention_1pass.einsum", {"E": 16, "F": 16, "M": 256, "P": 256})
    for r in rows[::4]:
        data = yaml.safe_load((ROOT / "specs/targets/fusemax.yaml").read_text())
        data["op_costs"]["exp"]["mac"] = int(r["exp_cost"])
        from cascade.model.target import parse_target

        report = spec.estimate(ROOT / "mappings/attention_1pass/tiled.yaml", parse_target(yaml.safe_dump(data, sort_keys=False)))
        assert r["latency_s"] == pytest.approx(report.latency_s, rel=1e-9)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker for the next test


def test_interrupt_then_resume_gives_every_point_once(client, tmp_path):
    from cascade.dse.config import load_config
    from cascade.dse.runner import run_dse

    text = STUDY.replace("buf: {target: buffer.capacity_bytes, values: [65536, 16777216]}",
                         "bw: {target: dram.bandwidth_bytes_per_s, range: {from: 1.0e+10, to: 1.0e+13, times: 10}}")
    text = text[: text.index("  - name: mm_searched")] + text[text.index("vary:"):]
    config = load_config(write(tmp_path, text))
    out, fresh = tmp_path / "r.csv", tmp_path / "fresh.csv"
    seen = []

    def interrupt(row):
        seen.append(row)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_dse(config, str(out), client, on_row=interrupt)
    assert len(rows_of(out)) == 5  # a valid file: the five finished rows, whole
    with pytest.raises(CascadeError, match="already exists: add --resume"):
        run_dse(config, str(out), client)
    summary = run_dse(config, str(out), client, resume=True)
    assert summary.skipped == 5 and summary.written == 16 - 5
    run_dse(config, str(fresh), client)
    resumed, clean = rows_of(out), rows_of(fresh)
    assert len({r["key"] for r in resumed}) == len(resumed) == 16
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}
    assert sorted(map(strip, resumed), key=lambda r: r["key"]) == sorted(map(strip, clean), key=lambda r: r["key"])


def test_the_command_runs_a_study_and_reports_json(client, tmp_path, monkeypatch, capsys):
    import contextlib
    import json

    from cascade.cli import main

    @contextlib.contextmanager
    def this_cluster(scheduler, workers):
        yield client  # the module's LocalCluster, instead of starting another

    monkeypatch.setattr("cascade.dse.runner.open_client", this_cluster)
    text = STUDY[: STUDY.index("  - name: att")] + STUDY[STUDY.index("vary:"):]
    config, out = write(tmp_path, text), tmp_path / "r.csv"
    assert main(["dse", str(config), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["points"] == report["written"] == 4 and report["results"] == str(out)
    assert main(["dse", str(config), "-o", str(out), "--resume", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == 4 and report["written"] == 0 and len(rows_of(out)) == 4


def test_the_bundled_pareto_config_is_the_artifact_sweep():
    from cascade.dse.config import load_config
    from cascade.dse.points import enumerate_points, point_mapping

    config = load_config(ROOT / "specs/dse/fusemax_pareto.yaml")
    points = enumerate_points(config)
    assert [w.name for w in config.workloads] == ["BERT", "TrXL", "T5", "XLM"] and len(points) == 24
    xlm512 = next(p for p in points if p.key == "XLM|PE_dim=512")
    assert point_mapping(xlm512).partitioning["P"] == (16384, 512) and point_mapping(xlm512).partitioning["M"] == (512,)
    from cascade.dse.runner import job_for

    jobs = [job_for(config, p) for p in points]
    assert len({request.key for _, request in jobs}) == 4  # one cost plan per model: the tiles follow PE_dim
    job, request = jobs[points.index(xlm512)]
    # P: [16384, PE_dim] has levels P2, P1, P0 with P1 = 16384 / 512 tiles; M0 is the cascade's split
    assert request.free_tiles == ("M0", "P0", "P1")
    assert {k: v for k, v in job.arguments.items() if k.startswith("tile:")} == \
        {"tile:M0": 512, "tile:P0": 512, "tile:P1": 32}


def test_tiles_that_do_not_nest_are_costed_directly():
    from cascade.dse.config import parse_config
    from cascade.dse.points import enumerate_points, tile_symbols
    from cascade.dse.runner import job_for

    text = STUDY.replace("tiles: {P: [pe]}", "tiles: {P: [pe, 32]}")
    config = parse_config(text, str(ROOT / "specs" / "study.yaml"))
    by_pe = {p.params["pe"]: p for p in enumerate_points(config) if p.workload.name == "att"}
    assert tile_symbols(by_pe[128]) == {"P1": 128 // 32, "P0": 32} and tile_symbols(by_pe[16]) == {}
    assert job_for(config, by_pe[16])[1] is None and job_for(config, by_pe[128])[1] is not None


def test_resume_cuts_a_torn_line_and_refuses_another_config(tmp_path):
    from cascade.dse.store import ResultsStore, columns_for

    cols = columns_for(["pe"], ("latency_s",))
    path = tmp_path / "r.csv"
    store = ResultsStore(path, cols, "h1", resume=False)
    store.append({"key": "a|pe=1", "config_hash": "h1", "workload": "a", "pe": 1, "status": "ok", "latency_s": 2.5})
    store.close()
    with open(path, "a") as fh:
        fh.write("a|pe=2,h1,a,2,o")  # killed inside a write
    store = ResultsStore(path, cols, "h1", resume=True)
    store.close()
    assert store.done == {"a|pe=1"} and path.read_text().count("\n") == 2
    with pytest.raises(CascadeError, match=r"r\.csv:2:1: written by another config"):
        ResultsStore(path, cols, "h2", resume=True)


@pytest.mark.parametrize("edit, where, message", [
    (("target: fusemax", "target: nowhere"), "2:9", "no such file next to the config, nor a bundled target"),
    (("spec: matmul.einsum", "spec: missing.einsum"), "5:11", "no such file"),
    (("values: [16, 128]", "values: [16, 12.5]"), "16:68", "take positive integers"),
    (("target: buffer.capacity_bytes", "target: buffer.size"), "17:17", "the target has no field buffer.size"),
    (("shape: [M]", "shape: [Q]"), "18:14", "sweeps rank Q"),
    (("objective: latency", "objective: speed"), "14:25", "choose latency, traffic, energy"),
    (("tiles: {P: [pe]}", "tiles: {P: [pe2]}"), "10:60", "tiles of P"),
    (("shapes: {K: 256}", "shapez: {K: 256}"), "6:13", "unknown key 'shapez'"),
])
def test_config_errors_name_the_place(tmp_path, edit, where, message):
    from cascade.dse.config import load_config

    path = write(tmp_path, STUDY.replace(*edit, 1))
    with pytest.raises(CascadeError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}:{where}: ") and message in str(exc.value)


def test_cli_without_dask_says_what_to_install(tmp_path, monkeypatch, capsys):
    from cascade.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["dse", str(write(tmp_path, STUDY))]) == 2
    assert "pip install 'cascade[dse]'" in capsys.readouterr().err


def test_import_cascade_and_other_commands_load_no_dask():
    code = "import sys, cascade, cascade.cli; cascade.cli.build_parser(); print('distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), st.integers(1, 20)), min_size=1, max_size=25))
def test_pareto_front_is_exactly_the_undominated_points(pts):
    from cascade.dse.pareto import front

    got = {(x, y) for x, y, _ in front([(x, y, None) for x, y in pts])}
    undominated = {(x, y) for x, y in pts
                   if not any(a <= x and b <= y and (a, b) != (x, y) for a, b in pts)}
    assert got == undominated


def test_plot_prints_the_front_and_draws(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from cascade.cli import main
    from cascade.dse.store import ResultsStore, columns_for

    path = tmp_path / "r.csv"
    store = ResultsStore(path, columns_for(["pe"], ("latency_s", "dram_bytes", "area_mm2")), "h", resume=False)
    for pe, lat, traffic in ((16, 9.0, 1.0), (64, 3.0, 2.0), (128, 4.0, 3.0), (256, 1.0, 5.0)):
        store.append({"key": f"w|pe={pe}", "config_hash": "h", "workload": "w", "pe": pe, "status": "ok",
                      "latency_s": lat, "dram_bytes": traffic})
    store.close()
    fig = tmp_path / "f.png"
    assert main(["dse", "--plot", str(path), "--figure", str(fig)]) == 0
    assert "w: 3 points on the front" in capsys.readouterr().out and fig.stat().st_size > 0
    assert main(["dse", "--plot", str(path), "--axes", "area_mm2,latency_s", "--figure", str(fig)]) == 2
    assert "no `area:` section" in capsys.readouterr().err


def test_area_of_the_pareto_sweep_follows_pe_dim(tmp_path, capsys):
    """Each PE_dim's area in closed form (um^2) by the artifact's sizing rule: a buffer of PE_dim *
    E * 16 B (E = 64) at the 16 MiB ART buffer's density, PE_dim^2 2D PEs of reg_file + mac + max,
    PE_dim 1D PEs of reg_file + mac + divide (the config's register file, 16,849.2142, for both), the
    interconnects; then `--plot --axes area_mm2,latency_s` on such rows."""
    from cascade.cli import main
    from cascade.dse.area import point_area
    from cascade.dse.config import load_config
    from cascade.dse.points import enumerate_points, point_target_data
    from cascade.dse.store import ResultsStore, columns_for

    config = load_config(ROOT / "specs/dse/fusemax_pareto.yaml")
    art = yaml.safe_load((ROOT / "specs/targets/fusemax.yaml").read_text())["area"]
    rf = 16849.2142  # the artifact's pregenerated-check ART (the config cites it)
    pe2d = rf + art["units"]["array2d"]["per_pe"]["mac"] + art["units"]["array2d"]["per_pe"]["max"]
    pe1d = rf + art["units"]["array1d"]["per_pe"]["mac"] + art["units"]["array1d"]["per_pe"]["divide"]
    density = art["buffer"] / 2**24  # um^2 per byte of the 16 MiB buffer
    points = [p for p in enumerate_points(config) if p.workload.name == "BERT"]
    for p in points:
        d = p.params["PE_dim"]
        buffer = d * 64 * 16 * density  # get_l3_sz: PE_dim * E * 8 fibres * 2 B
        expected = (buffer + d * d * pe2d + 257.0 + d * pe1d + 1.0) / 1e6
        assert point_area(point_target_data(config, p)) == pytest.approx(expected, rel=1e-6)
        assert point_target_data(config, p)["buffer"]["capacity_bytes"] == 2**24  # the traffic model's is kept
    assert point_area({"units": {"a": {"shape": [4]}}}) is None
    from cascade.dse.config import parse_config
    from cascade.dse.points import uses_formulas

    text = (ROOT / "specs/dse/fusemax_pareto.yaml").read_text()
    varied = parse_config(text.replace(", {field: area.buffer, times: 5748.06}", ""), str(ROOT / "specs/dse/x.yaml"))
    assert uses_formulas(config, config.workloads[0])  # area is no formula argument, nor needs one
    for p in (q for q in enumerate_points(varied) if q.workload.name == "BERT"):
        d = p.params["PE_dim"]
        expected = (art["buffer"] + d * d * pe2d + 257.0 + d * pe1d + 1.0) / 1e6  # the ART's 16 MiB buffer
        assert point_area(point_target_data(varied, p)) == pytest.approx(expected, rel=1e-12)
    pytest.importorskip("matplotlib")
    path = tmp_path / "r.csv"
    store = ResultsStore(path, columns_for(["PE_dim"], ("latency_s", "area_mm2")), "h", resume=False)
    for p in points:
        d = p.params["PE_dim"]
        store.append({"key": p.key, "config_hash": "h", "workload": "BERT", "PE_dim": d, "status": "ok",
                      "latency_s": 1.0 / d, "area_mm2": point_area(point_target_data(config, p))})
    store.close()
    fig = tmp_path / "a.png"
    assert main(["dse", "--plot", str(path), "--axes", "area_mm2,latency_s", "--figure", str(fig)]) == 0
    assert "BERT: 6 points on the front" in capsys.readouterr().out


LEAKY = """\
name: leaky
target: leaky.yaml
workloads:
  - name: att
    spec: {root}/specs/attention/attention_1pass.einsum
    shapes: {{E: 32, F: 32, M: 256}}
    mapping: {{file: {root}/mappings/attention_1pass/tiled.yaml, tiles: {{P: [pe]}}}}
vary:
  pe: {{target: [units.array2d.shape, units.array1d.shape], values: [16, 128]}}
  clock: {{target: clock_hz, values: [5.0e+8, 1.0e+9]}}
  buf: {{target: buffer.capacity_bytes, values: [65536, 16777216]}}
"""


def test_energy_formulas_with_leakage_equal_estimate_without_dask(tmp_path):
    """Leakage is charged per cycle of the whole latency, so the plan's energy depends on the clock
    and the array's PE count: every point of a target with leakage (and a small buffer, where a
    group spills) equals `Spec.estimate`, the formula points as well as the spilling ones."""
    from cascade.dse.config import load_config
    from cascade.dse.evaluate import build_plan, evaluate_direct, evaluate_with_plan
    from cascade.dse.points import enumerate_points
    from cascade.dse.runner import job_for

    data = yaml.safe_load((ROOT / "specs/targets/fusemax.yaml").read_text())
    data["energy"]["buffer"]["leak"] = 0.844
    for unit in data["energy"]["units"].values():
        unit["leak"] = 0.18
    (tmp_path / "leaky.yaml").write_text(yaml.safe_dump(data))
    config = load_config(write(tmp_path, LEAKY.format(root=ROOT)))
    hows = []
    for point in enumerate_points(config):
        job, request = job_for(config, point)
        assert request is not None
        row = evaluate_with_plan(build_plan(request), job)
        report, _ = direct(config, row)
        if report is None:
            assert row["status"] == "refused"
            continue
        assert row["status"] == "ok", row
        hows.append((row["how"], "spills" in report.extra))
        assert report.extra["energy_pj"]["array2d"]["leak"] > 0
        assert row["energy_j"] == pytest.approx(report.energy_j, rel=1e-9)
        assert row["latency_s"] == pytest.approx(report.latency_s, rel=1e-9)
        assert row["dram_bytes"] == pytest.approx(report.dram_bytes, rel=1e-12)
        assert evaluate_direct(job)["energy_j"] == pytest.approx(row["energy_j"], rel=1e-9)
    assert ("formula", False) in hows and ("estimate", True) in hows
    assert all(how == ("estimate" if spills else "formula") for how, spills in hows)


@pytest.mark.parametrize("edit, message", [
    (("{field: area.buffer, times: 5748.06}", "{field: area.buffer, times: -1}"), r"\{field: FIELD, times: K\}"),
    (("{field: area.buffer, times: 5748.06}", "{field: buffer.capacity_bytes, times: 0.5}"),
     r"buffer.capacity_bytes takes integers: give it an integer factor"),
    (("area.units.array1d.per_pe.reg_file: 16849.2142", "area.units.array1d.per_pe.sram: 1"),
     r"fusemax_pareto.yaml:\d+:\d+: target.set: the target has no field area.units.array1d.per_pe.sram"),
    (("area.units.array1d.per_pe.reg_file: 16849.2142", "area.units.array1d.per_pe.reg_file: big"),
     r"target.set is a table FIELD: number"),
])
def test_bad_scaled_fields_and_target_changes(edit, message):
    from cascade.dse.config import parse_config
    from cascade.errors import CascadeError

    text = (ROOT / "specs/dse/fusemax_pareto.yaml").read_text()
    assert edit[0] in text
    with pytest.raises(CascadeError, match=message):
        parse_config(text.replace(*edit), str(ROOT / "specs/dse/fusemax_pareto.yaml"))


def test_a_scaled_integer_field_follows_the_parameter():
    from cascade.dse.config import parse_config
    from cascade.dse.points import enumerate_points, point_target_data

    text = (ROOT / "specs/dse/fusemax_pareto.yaml").read_text().replace(
        "{field: area.buffer, times: 5748.06}", "{field: buffer.capacity_bytes, times: 1024}")
    config = parse_config(text, str(ROOT / "specs/dse/fusemax_pareto.yaml"))
    for p in enumerate_points(config)[:6]:
        data = point_target_data(config, p)
        assert data["buffer"]["capacity_bytes"] == p.params["PE_dim"] * 1024
        assert isinstance(data["buffer"]["capacity_bytes"], int)
        assert data["area"]["units"]["array2d"]["per_pe"]["reg_file"] == 16849.2142  # target.set
