"""Class 3 of hostile input: small files that ask for huge work are refused before the work.

YAML alias bombs in mapping, target and TeAAL files; YAML nested past the limit; endless and
oversized input files; a deflate-bomb `.npz`, an `.npz` header asking for terabytes; tensors larger
than memory. Each is an exit-2 error naming the problem, in well under a second of work.
"""

from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pytest

from cascade.errors import MappingError
from cascade.limits import MAX_INPUT_BYTES, MAX_NESTING, MAX_YAML_NODES
from cascade.yaml_text import load_yaml


def laughs(levels: int = 9, fan: int = 9) -> str:
    """The classic 'billion laughs' document: fan ** levels strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def test_laughs_is_small_but_expands_beyond_the_limit():
    text = laughs()
    assert len(text) < 700 and 9 ** 9 > MAX_YAML_NODES  # the bomb as the issue measured it


@pytest.mark.parametrize("command", ["map", "estimate", "import-teaal"])
def test_alias_bomb_is_refused_fast(cli, root, tmp_path, command):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs())
    spec = root / "specs" / "matmul.einsum"
    argv = {"map": ["map", spec, "-m", bomb], "estimate": ["estimate", spec, "-t", bomb],
            "import-teaal": ["import-teaal", bomb, "-o", tmp_path / "out"]}[command]
    code, _, err = cli(*argv, seconds=10, megabytes=50)
    assert code == 2 and "bomb.yaml:" in err and f"more than {MAX_YAML_NODES} YAML nodes" in err
    assert len(err) < 400  # the message does not echo the expansion


@pytest.mark.parametrize("loader", ["mapping", "target", "teaal"])
def test_alias_bomb_is_refused_in_under_a_second(tmp_path, loader):
    from cascade.errors import CascadeError
    from cascade.interop.teaal.importer import load_teaal
    from cascade.mapping.mapping_file import load_mapping
    from cascade.model.target import load_target

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs())
    load = {"mapping": load_mapping, "target": load_target, "teaal": load_teaal}[loader]
    load_yaml("a: 1\n", "warm.yaml", MappingError)  # PyYAML imported outside the timing
    start = time.perf_counter()
    with pytest.raises(CascadeError, match="YAML nodes"):
        load(bomb)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("text, fragment", [
    ("[" * 100_000 + "]" * 100_000, f"nested more than {MAX_NESTING} levels"),
    ("".join(" " * i + "- \n" for i in range(0, 2 * (MAX_NESTING + 5), 2)), f"nested more than {MAX_NESTING}"),
    ("a: &a [*a]\n", "cycle"),
    ("a: 1\nb: 2\na: 3\n", "duplicate key 'a'"),
])
def test_yaml_structure_limits(text, fragment):
    start = time.perf_counter()
    with pytest.raises(MappingError, match=fragment) as info:
        load_yaml(text, "m.yaml", MappingError)
    assert time.perf_counter() - start < 1.0
    assert str(info.value).startswith("m.yaml:")


def test_yaml_within_limits_still_loads():
    """Aliases and nesting below the limits are ordinary YAML."""
    text = "x: &v [1, 2]\ny: *v\nz: " + "[" * 50 + "1" + "]" * 50 + "\n"
    data = load_yaml(text, "m.yaml", MappingError)
    assert data["y"] == [1, 2] and data["x"] is data["y"]


def test_endless_device_and_huge_file_are_refused(cli, tmp_path):
    code, _, err = cli("check", "/dev/zero", seconds=5, megabytes=3 * MAX_INPUT_BYTES / 2**20)
    assert code == 2 and "/dev/zero: cannot read spec: larger than the 4.0 MiB" in err
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_INPUT_BYTES + 1))
    code, _, err = cli("map", "/dev/null", "-m", big, seconds=5)
    assert code == 2 and "cannot read mapping: larger than" in err


def _npz_with_header(path, shape, payload=b"", compress=False):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        with archive.open("A.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            member.write(payload)


def test_npz_header_asking_for_terabytes(cli, root, tmp_path):
    path = tmp_path / "huge.npz"
    _npz_with_header(path, (1_000_000, 1_000_000))
    assert path.stat().st_size < 600
    spec = root / "specs" / "matmul.einsum"
    code, _, err = cli("run", spec, "--shape", "K=4", "--shape", "M=4", "--shape", "N=4", "--inputs", path,
                       seconds=5, megabytes=50)
    assert code == 2 and "input A has shape (1000000, 1000000), expected (4, 4)" in err


def test_npz_deflate_bomb(cli, root, tmp_path):
    path = tmp_path / "bomb.npz"
    _npz_with_header(path, (4, 4), b"\0" * (4 * 4 * 8 + 50_000_000), compress=True)
    assert path.stat().st_size < 200_000
    spec = root / "specs" / "matmul.einsum"
    code, _, err = cli("run", spec, "--shape", "K=4", "--shape", "M=4", "--shape", "N=4", "--inputs", path,
                       seconds=5, megabytes=50)
    assert code == 2 and "50000000 bytes beyond" in err


def test_tensor_larger_than_memory_is_refused_with_its_size(cli, root):
    spec = root / "specs" / "matmul.einsum"
    code, _, err = cli("run", spec, "--shape", "M=1000000", "--shape", "N=1000000", seconds=5, megabytes=50)
    # Z is M x N float64: 8e12 bytes = 7.28 TiB, computed here independently of the message
    assert code == 2 and f"Z needs {8e12 / 2**40:.1f} TiB" in err


def test_huge_tile_on_a_small_rank_runs_correctly(cli, root, tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("partitioning: {M: [uniform_shape(1000000000)]}\n")
    code, out, _ = cli("run", root / "specs" / "matmul.einsum", "--shape", "M=10", "-m", mapping, "--check",
                       seconds=20, megabytes=100)
    assert code == 0 and "matches the reference" in out
