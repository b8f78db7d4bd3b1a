"""`cascade run` end to end: the summary, `--json`, `--inputs` (full, partial, wrong), `--save`,
`--shape`, `--seed`, and the exit-code contract (0 ok, 2 user error without a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade.cli import main

ROOT = Path(__file__).resolve().parent.parent
MATMUL = ROOT / "specs" / "matmul.einsum"
ATTENTION_1PASS = ROOT / "specs" / "attention" / "attention_1pass.einsum"
SMALL = ["--shape", "K=3", "--shape", "M=2", "--shape", "N=4"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity are not allowed."""
    def reject(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture
def ab(tmp_path: Path):
    rng = np.random.default_rng(123)
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 4))
    path = tmp_path / "in.npz"
    np.savez(path, A=a, B=b)
    return a, b, path


def test_summary_text(capsys, ab):
    a, b, path = ab
    code, out, err = run_cli(capsys, str(MATMUL), *SMALL, "--inputs", str(path))
    assert code == 0 and err == ""
    z = a.T @ b
    lines = out.splitlines()
    assert lines[0].startswith("cascade matmul: reference evaluator, ")
    assert lines[1] == "shapes: K=3, M=2, N=4"
    assert lines[2].split() == ["Z[M,", "N]", "shape", "(2,", "4)", "float64", "min", f"{z.min():.6g}",
                                "max", f"{z.max():.6g}", "mean", f"{z.mean():.6g}"]
    assert lines[3].strip() == "first values: " + ", ".join(f"{v:.6g}" for v in z.ravel()[:5])


def test_summary_flags_non_finite_values(capsys):
    spec = ROOT / "tests" / "cascades" / "empty_reductions.einsum"
    code, out, _ = run_cli(capsys, str(spec))
    assert code == 0
    mx = next(line for line in out.splitlines() if line.strip().startswith("MX[P]"))
    assert "1 non-finite" in mx


def test_json_keys_and_values(capsys, ab):
    a, b, path = ab
    code, out, _ = run_cli(capsys, str(MATMUL), *SMALL, "--inputs", str(path), "--json", "--seed", "4")
    assert code == 0
    data = strict_json(out)
    assert {"cascade", "evaluator", "shapes", "seed", "inputs_file", "seconds", "outputs", "saved"} <= set(data)
    assert data["cascade"] == "matmul" and data["evaluator"] == "reference"
    assert data["shapes"] == {"K": 3, "M": 2, "N": 4}
    assert data["seed"] == 4 and data["inputs_file"] == str(path) and data["saved"] is None
    assert data["seconds"] >= 0
    z = a.T @ b
    summary = data["outputs"]["Z"]
    assert set(summary) == {"shape", "dtype", "min", "max", "mean", "nonfinite", "first"}
    assert summary["shape"] == [2, 4] and summary["dtype"] == "float64" and summary["nonfinite"] == 0
    np.testing.assert_allclose([summary["min"], summary["max"], summary["mean"]], [z.min(), z.max(), z.mean()],
                               rtol=1e-12)
    np.testing.assert_allclose(summary["first"], z.ravel()[:5], rtol=1e-12)


def test_json_is_strict_with_infinities(capsys):
    spec = ROOT / "tests" / "cascades" / "empty_reductions.einsum"
    code, out, _ = run_cli(capsys, str(spec), "--json")
    assert code == 0
    data = strict_json(out)
    assert data["outputs"]["MX"]["first"][0] == "-inf"
    assert data["outputs"]["MN"]["first"][0] == "inf"
    assert data["outputs"]["MX"]["nonfinite"] == 1


def test_inputs_and_save_round_trip(capsys, ab, tmp_path):
    a, b, path = ab
    out_path = tmp_path / "out.npz"
    code, out, _ = run_cli(capsys, str(MATMUL), *SMALL, "--inputs", str(path), "--save", str(out_path))
    assert code == 0
    assert f"saved outputs to {out_path}" in out
    with np.load(out_path) as saved:
        assert saved.files == ["Z"]
        np.testing.assert_allclose(saved["Z"], a.T @ b, rtol=1e-12)


def test_save_writes_exactly_the_given_path_and_any_tensor_name(capsys, tmp_path):
    spec = tmp_path / "names.einsum"
    spec.write_text("shape M = 3\ninput X[M]\noutput file[M], allow_pickle[M]\n"
                    "file[m] = 2 * X[m]\nallow_pickle[m] = X[m] + 1\n")
    x = np.array([1.0, -2.0, 0.5])
    np.savez(tmp_path / "x.npz", X=x)
    target = tmp_path / "outputs"  # no .npz suffix: written as given, not as outputs.npz
    code, _, err = run_cli(capsys, str(spec), "--inputs", str(tmp_path / "x.npz"), "--save", str(target))
    assert code == 0, err
    with np.load(target) as saved:
        np.testing.assert_array_equal(saved["file"], 2 * x)
        np.testing.assert_array_equal(saved["allow_pickle"], x + 1)


def test_partial_inputs_complete_with_seeded_random(capsys, tmp_path):
    a = np.arange(6.0).reshape(3, 2)
    np.savez(tmp_path / "a.npz", A=a)
    out_path = tmp_path / "out.npz"
    code, _, _ = run_cli(capsys, str(MATMUL), *SMALL, "--inputs", str(tmp_path / "a.npz"), "--seed", "9",
                         "--save", str(out_path))
    assert code == 0
    b = cascade.load(MATMUL, shapes={"K": 3, "M": 2, "N": 4}).random_inputs(seed=9)["B"]
    with np.load(out_path) as saved:
        np.testing.assert_allclose(saved["Z"], a.T @ b, rtol=1e-12)


def test_wrong_input_shape_is_exit_2(capsys, tmp_path):
    np.savez(tmp_path / "bad.npz", A=np.zeros((2, 2)))
    code, out, err = run_cli(capsys, str(MATMUL), *SMALL, "--inputs", str(tmp_path / "bad.npz"))
    assert code == 2 and out == ""
    assert "input A has shape (2, 2), expected (3, 2) (K=3, M=2)" in err
    assert "Traceback" not in err


def test_unknown_input_name_is_exit_2(capsys, tmp_path):
    np.savez(tmp_path / "bad.npz", Q=np.zeros(3))
    code, _, err = run_cli(capsys, str(MATMUL), *SMALL, "--inputs", str(tmp_path / "bad.npz"))
    assert code == 2
    assert "unknown input Q" in err and "A, B" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["not_npz", "npy", "complex", "strings", "missing"])
def test_unreadable_or_unusable_inputs_are_exit_2(capsys, tmp_path, kind):
    path = tmp_path / "in.npz"
    if kind == "not_npz":
        path.write_text("not an archive\n")
    elif kind == "npy":
        path = tmp_path / "in.npy"
        np.save(path, np.zeros((3, 2)))
    elif kind == "complex":
        np.savez(path, A=np.ones((3, 2)) * 1j)
    elif kind == "strings":
        np.savez(path, A=np.full((3, 2), "x"))
    code, _, err = run_cli(capsys, str(MATMUL), *SMALL, "--inputs", str(path))
    assert code == 2
    assert "Traceback" not in err and "internal error" not in err
    assert str(path) in err or "input A has dtype" in err


def test_shape_override(capsys):
    code, out, _ = run_cli(capsys, str(ATTENTION_1PASS), "--shape", "M=10", "--shape", "M0=4", "--shape", "P=3",
                           "--shape", "E=2", "--shape", "F=5")
    assert code == 0
    assert "shapes: E=2, F=5, M=10, P=3, M0=4, M1=3" in out
    assert "AV[F, P]  shape (5, 3)  float64" in out


@pytest.mark.parametrize("item, message", [
    ("K=x", "write RANK=N"),
    ("K", "write RANK=N"),
    ("K=0", "write RANK=N"),
    ("K=-3", "write RANK=N"),
    ("Q=3", "the cascade has no rank Q"),
])
def test_bad_shape_is_exit_2(capsys, item, message):
    code, out, err = run_cli(capsys, str(MATMUL), "--shape", item)
    assert code == 2 and out == ""
    assert message in err
    assert "Traceback" not in err


def test_derived_split_shape_is_exit_2(capsys):
    code, _, err = run_cli(capsys, str(ATTENTION_1PASS), "--shape", "M1=2")
    assert code == 2
    assert "M1 is derived as ceil(M / M0)" in err and "Traceback" not in err


def test_seed_reproducible(capsys, tmp_path):
    paths = [tmp_path / f"out{k}.npz" for k in range(3)]
    for path, seed in zip(paths, ["5", "5", "6"]):
        assert run_cli(capsys, str(MATMUL), *SMALL, "--seed", seed, "--save", str(path))[0] == 0
    z = [np.load(p)["Z"] for p in paths]
    np.testing.assert_array_equal(z[0], z[1])
    assert not np.allclose(z[0], z[2])
    inputs = cascade.load(MATMUL, shapes={"K": 3, "M": 2, "N": 4}).random_inputs(seed=5)
    np.testing.assert_allclose(z[0], inputs["A"].T @ inputs["B"], rtol=1e-12)


def test_negative_seed_is_exit_2(capsys):
    code, _, err = run_cli(capsys, str(MATMUL), *SMALL, "--seed", "-1")
    assert code == 2 and "seed" in err and "Traceback" not in err


def test_unwritable_save_path_is_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, str(MATMUL), *SMALL, "--save", str(tmp_path / "no" / "such" / "dir.npz"))
    assert code == 2 and "cannot write outputs" in err


def test_missing_spec_file_is_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, str(tmp_path / "absent.einsum"))
    assert code == 2 and "cannot read spec" in err


def test_subprocess_run_json(tmp_path):
    out_path = tmp_path / "av.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "cascade", "run", str(ATTENTION_1PASS), "--shape", "M=9", "--shape", "M0=4",
         "--shape", "P=4", "--shape", "E=3", "--shape", "F=2", "--seed", "2", "--json", "--save", str(out_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = strict_json(proc.stdout)
    assert data["outputs"]["AV"]["shape"] == [2, 4] and data["saved"] == str(out_path)
    inputs = cascade.load(ATTENTION_1PASS, shapes={"M": 9, "M0": 4, "P": 4, "E": 3, "F": 2}).random_inputs(seed=2)
    q, k, v = inputs["Q"], inputs["K"], inputs["V"]
    s = k.T @ q
    w = np.exp(s - s.max(axis=0))
    with np.load(out_path) as saved:
        np.testing.assert_allclose(saved["AV"], v @ (w / w.sum(axis=0)), rtol=1e-9)


def test_subprocess_user_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cascade", "run", str(MATMUL), "--shape", "M=oops"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "M=oops" in proc.stderr
