"""Mapping errors as the user meets them: `cascade map` and `cascade run -m` exit 2 with one
`error: FILE: KEY: message` line that names what is wrong and how to fix it, never a traceback.

Each case is a mapping file written to a temporary folder, run through both commands in
process; a few also run as a real subprocess. The API raises the same `MappingError`.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import cascade
from cascade import MappingError
from cascade.cli import main
from cascade.mapping.mapping_file import parse_mapping

ROOT = Path(__file__).resolve().parent.parent
A3 = ROOT / "specs" / "attention" / "attention_3pass.einsum"
A1 = ROOT / "specs" / "attention" / "attention_1pass.einsum"
ONLINE = ROOT / "specs" / "softmax_online.einsum"
SMALL = {"M": 8, "P": 8, "E": 2, "F": 2}


@dataclass(frozen=True)
class Bad:
    id: str
    spec: Path
    text: str
    key: str  # the mapping key the message names (after the file name)
    says: tuple[str, ...]  # fragments: what is wrong and the fix


CASES = [
    Bad("unknown-rank-in-partitioning", A3, "partitioning:\n  Q: [uniform_shape(4)]\n",
        "partitioning.Q", ("unknown rank Q", "the cascade's ranks are E, F, M, P")),
    Bad("unknown-einsum-in-loop-order", A3, "loop-order:\n  QKX: [M, P, E]\n",
        "loop-order.QKX", ("unknown Einsum QKX", "the Einsums are A, AV, GM, QK, SD, SN")),
    Bad("unknown-einsum-in-fusion", A3, "fusion:\n  - [QK, GMX]\n",
        "fusion[0]", ("unknown Einsum GMX", "the Einsums are A, AV, GM, QK, SD, SN")),
    Bad("unknown-einsum-in-binding", A3, "binding:\n  default: array2d\n  SNN: array1d\n",
        "binding.SNN", ("unknown Einsum SNN", "the Einsums are")),
    Bad("unknown-einsum-in-spacetime", A3, "spacetime:\n  AVV: {space: [P], time: [M]}\n",
        "spacetime.AVV", ("unknown Einsum AVV", "the Einsums are")),
    Bad("unknown-rank-in-spacetime", A3, "spacetime:\n  QK: {space: [Z], time: [M]}\n",
        "spacetime.QK", ("unknown rank Z", "the ranks are E, F, M, P")),
    Bad("unknown-rank-in-default-order", A3, "loop-order:\n  default: [P, Z]\n",
        "loop-order.default", ("unknown rank Z", "the ranks are E, F, M, P")),
    Bad("unpartitioned-level-in-order", A3, "loop-order:\n  default: [P1, M]\n",
        "loop-order.default", ("unknown rank P1", "the ranks are E, F, M, P")),
    Bad("loop-order-misses-a-rank", A3, "loop-order:\n  QK: [M, P]\n",
        "loop-order.QK", ("misses E", "QK iterates M, P, E")),
    Bad("loop-order-repeats-a-rank", A3, "loop-order:\n  QK: [M, P, E, M]\n",
        "loop-order.QK", ("M repeated in [M, P, E, M]",)),
    Bad("loop-order-lists-a-foreign-rank", A3, "loop-order:\n  QK: [M, P, E, F]\n",
        "loop-order.QK", ("lists F, which QK does not iterate", "QK iterates M, P, E")),
    Bad("loop-order-inner-level-outside", A3, "partitioning:\n  P: [uniform_shape(8), uniform_shape(2)]\n"
                                              "loop-order:\n  default: [P1, M, P2]\n",
        "loop-order.default", ("nest outermost first", "list them as P2, P1")),
    Bad("loop-orders-of-a-group-disagree", A3, "partitioning:\n  P: [uniform_shape(4)]\n  M: [uniform_shape(4)]\n"
                                               "loop-order:\n  QK: [P1, M1, P0, M0, E]\n  GM: [M1, P1, M0, P0]\n"
                                               "fusion:\n  - [QK, GM]\n",
        "loop-order", ("inconsistently", "give them one order")),
    Bad("partitioning-an-iterative-rank", ONLINE, "partitioning:\n  M: [uniform_shape(4)]\n",
        "partitioning.M", ("iterative rank of recurrence", "split the rank in the cascade", "outer part")),
    Bad("two-levels-for-a-cascade-split", A1, "partitioning:\n  M: [uniform_shape(8), uniform_shape(4)]\n",
        "partitioning.M", ("already splits M = M1 * M0", "give one level")),
    Bad("partitioning-a-split-part", A1, "partitioning:\n  M0: [uniform_shape(2)]\n",
        "partitioning.M0", ("part of 'split M'", "partition M instead")),
    Bad("fusion-not-contiguous", A3, "fusion:\n  - [QK, SN]\n",
        "fusion[0]", ("not contiguous in dependency order", "GM lies between", "add GM to the group")),
    Bad("fusion-not-contiguous-two-between", A3, "fusion:\n  - [QK, SD]\n",
        "fusion[0]", ("not contiguous", "add GM, SN to the group")),
    Bad("recurrence-split-across-groups", A1, "fusion:\n  - [SPD]\n  - [RD]\n",
        "fusion", ("SPD, RD form a recurrence over m1", "must be in one fusion group")),
    Bad("recurrence-half-in-a-group", A1, "fusion:\n  - [SLD, RD]\n",
        "fusion", ("SPD, RD form a recurrence", "one fusion group")),
    Bad("einsum-in-two-groups", A3, "fusion:\n  - [QK, GM]\n  - [GM, SN]\n",
        "fusion", ("GM is in two groups",)),
    Bad("tile-shape-zero", A3, "partitioning:\n  M: [uniform_shape(0)]\n",
        "partitioning.M", ("uniform_shape(0)", "at least 1")),
    Bad("tile-shape-negative", A3, "partitioning:\n  P: [uniform_shape(-3)]\n",
        "partitioning.P", ("uniform_shape(-3)", "at least 1")),
    Bad("levels-must-shrink", A3, "partitioning:\n  P: [uniform_shape(4), uniform_shape(8)]\n",
        "partitioning.P", ("must shrink outermost first",)),
    Bad("levels-must-divide", A3, "partitioning:\n  P: [uniform_shape(8), uniform_shape(3)]\n",
        "partitioning.P", ("each divide the one above",)),
    Bad("unsupported-partition", A3, "partitioning:\n  P: [nway_shape(2)]\n",
        "partitioning.P", ("'nway_shape(2)' is not supported", "write uniform_shape(N)")),
    Bad("unknown-top-level-key", A3, "loop_order:\n  default: [P, M]\n",
        "unknown key 'loop_order'", ("the keys are partitioning, loop-order",)),
    Bad("fusion-not-a-list", A3, "fusion: 3\n", "fusion", ("expected a list of groups",)),
    Bad("file-not-a-table", A3, "- QK\n- GM\n", "a mapping file is a YAML mapping", ("partitioning",)),
    Bad("unknown-tensor-in-rank-order", A3, "rank-order:\n  ZZ: [M, P]\n", "rank-order.ZZ", ("unknown tensor ZZ",)),
    Bad("bad-yaml", A3, "partitioning:\n  M: [uniform_shape(4)\n  P: 3\n", ":3:", ("not valid YAML",)),
]


def test_enough_cases():
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)


def write(tmp_path: Path, case: Bad) -> Path:
    path = tmp_path / f"{case.id}.yaml"
    path.write_text(case.text)
    return path


def assert_reported(code: int, out: str, err: str, path: Path, case: Bad) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert out == ""
    line = err.strip()
    assert line.startswith(f"error: {path}"), line
    assert case.key in line, line
    for fragment in case.says:
        assert fragment in line, line


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cascade_map_reports(tmp_path, capsys, case: Bad):
    path = write(tmp_path, case)
    code = main(["map", str(case.spec), "-m", str(path)])
    out, err = capsys.readouterr()
    assert_reported(code, out, err, path, case)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cascade_run_reports(tmp_path, capsys, case: Bad):
    path = write(tmp_path, case)
    ranks = cascade.load(case.spec).shapes
    shapes = [arg for r, n in SMALL.items() if r in ranks for arg in ("--shape", f"{r}={n}")]
    code = main(["run", str(case.spec), "-m", str(path), "--check", *shapes])
    out, err = capsys.readouterr()
    assert_reported(code, out, err, path, case)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in ("fusion-not-contiguous", "bad-yaml",
                                                                 "partitioning-an-iterative-rank")],
                         ids=lambda c: c.id)
def test_as_a_subprocess(tmp_path, case: Bad):
    path = write(tmp_path, case)
    proc = subprocess.run([sys.executable, "-m", "cascade", "map", str(case.spec), "-m", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {path}") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_mapping_file(tmp_path, capsys):
    path = tmp_path / "nowhere.yaml"
    code = main(["map", str(A3), "-m", str(path)])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith(f"error: {path}: cannot read mapping") and "Traceback" not in err


@pytest.mark.parametrize("case", [c for c in CASES if c.id in ("unknown-rank-in-partitioning", "tile-shape-zero",
                                                                 "recurrence-split-across-groups",
                                                                 "loop-order-inner-level-outside")],
                         ids=lambda c: c.id)
def test_api_raises_mapping_error(case: Bad):
    spec = cascade.load(case.spec)
    with pytest.raises(MappingError, match=case.key.replace("[", r"\[").replace("]", r"\]")):
        spec.bind(parse_mapping(case.text, "given.yaml"))
    with pytest.raises(MappingError, match="^given.yaml: "):
        spec.compile(parse_mapping(case.text, "given.yaml"))
