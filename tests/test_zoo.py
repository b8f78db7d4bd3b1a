"""The attention, norm and loss zoo (specs/attention, specs/norm, specs/loss): pass counts with
their reasons, equality with independent NumPy (written directly, not from the cascades) through
the reference evaluator and through the generated executor of each bundled mapping, with no NaN
and no floating-point warnings, and a FuseMax estimate for each."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import cascade

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MAPPINGS = ROOT / "mappings"

# name -> (folder, expected passes, why)
ZOO = {
    "causal_3pass": ("attention", {"M": 3, "P": 1, "E": 1, "F": 1}, "GM is complete before SN, SD before A"),
    "causal_2pass": ("attention", {"M": 2, "P": 1, "E": 1, "F": 1}, "GM before SN; the division follows ·V"),
    "causal_1pass": ("attention", {"M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1},
                     "running max/denominator over tiles; inside a tile SLN waits for the tile's max"),
    "sliding_window_1pass": ("attention", {"M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1}, "as causal_1pass"),
    "alibi_1pass": ("attention", {"H": 1, "M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1},
                    "the bias is a map of rank values: no pass of its own"),
    "gqa_1pass": ("attention", {"G": 1, "R": 1, "M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1},
                  "heads of a group share K, V: the same passes as one head"),
    "mqa_1pass": ("attention", {"H": 1, "M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1}, "as gqa_1pass with one group"),
    "decode_1pass": ("attention", {"H": 1, "M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1}, "P = 1 changes no dependence"),
    "flashdecoding": ("attention", {"H": 1, "M1": 2, "M0": 2, "P": 1, "E": 1, "F": 1},
                      "per split LM before SN (M0); the combine needs GM over all splits before W (M1)"),
    "sigmoid_attention": ("attention", {"M": 1, "P": 1, "E": 1, "F": 1}, "no normalisation over keys"),
    "linear_attention": ("attention", {"E": 1, "M": 1, "P": 1, "F": 1}, "keys summarised once into KV and Z"),
    "softcap_1pass": ("attention", {"M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1}, "tanh is a map: as causal_1pass"),
    "mha_proj_1pass": ("attention", {"H": 1, "M1": 1, "M0": 2, "P": 1, "E": 1, "F": 1, "D": 1},
                       "the projection reads each head's finished AV once"),
    "layernorm_3pass": ("norm", {"N": 1, "D": 3}, "MU before XC, VAR before Y"),
    "layernorm_2pass": ("norm", {"N": 1, "D": 2}, "sums of x and x^2 in one pass, then Y"),
    "rmsnorm": ("norm", {"N": 1, "D": 2}, "MS before Y"),
    "cross_entropy_2pass": ("loss", {"N": 1, "C": 2}, "GM before SE"),
    "cross_entropy_online": ("loss", {"C": 1, "N": 1}, "running max and sum; L reads only their last elements"),
}

SMALL = dict(E=8, F=8, M=150, P=70, H=4, D=16, C=100, N=70)


def _spec(name: str):
    folder = ZOO[name][0]
    path = SPECS / folder / f"{name}.einsum"
    spec = cascade.load(path)
    derived = {outer for outer, _ in spec.semantics.splits.values()}
    shapes = {k: v for k, v in SMALL.items() if k in spec.shapes and k not in derived}
    if spec.shapes.get("P") == 1:  # decoding: one query, a longer cache
        shapes.pop("P", None)
        shapes["M"] = 600
    if folder == "norm":
        shapes["D"] = 100
    return cascade.load(path, shapes=shapes)


# ------------------------------------------------------------------ independent NumPy


def _softmax_attention(q, k, v, mask=None, bias=None, cap=None):
    """softmax over keys of k^T q (optionally capped, biased, masked), times v; per column."""
    s = k.T @ q
    if cap is not None:
        s = cap * np.tanh(s / cap)
    if bias is not None:
        s = s + bias
    if mask is None:
        mask = np.ones_like(s, dtype=bool)
    s = np.where(mask, s, -np.inf)
    top = s.max(axis=0, keepdims=True)
    w = np.where(mask, np.exp(s - np.where(np.isfinite(top), top, 0)), 0.0)
    return v @ (w / w.sum(axis=0, keepdims=True))


def _positions(m: int, p: int):
    return np.arange(m)[:, None], np.arange(p)[None, :]


def numpy_outputs(name: str, spec, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s = spec.shapes
    if name in ("causal_3pass", "causal_2pass", "causal_1pass"):
        mk, pq = _positions(s["M"], s["P"])
        return {"AV": _softmax_attention(x["Q"], x["K"], x["V"], mask=mk <= pq)}
    if name == "sliding_window_1pass":
        mk, pq = _positions(s["M"], s["P"])
        return {"AV": _softmax_attention(x["Q"], x["K"], x["V"], mask=(mk <= pq) & (pq - s["W"] < mk))}
    if name == "softcap_1pass":
        return {"AV": _softmax_attention(x["Q"], x["K"], x["V"], cap=50.0)}
    if name == "sigmoid_attention":
        z = (x["K"].T @ x["Q"]) / np.sqrt(s["E"]) - np.log(s["M"])
        return {"AV": x["V"] @ (1.0 / (1.0 + np.exp(-z)))}
    if name == "linear_attention":
        def phi(a):
            return np.exp(np.minimum(a, 0.0)) + np.maximum(a, 0.0)  # elu(a) + 1
        pk, pq = phi(x["K"]), phi(x["Q"])
        return {"AV": (x["V"] @ pk.T @ pq) / (pk.sum(axis=1) @ pq)[None, :]}
    if name == "alibi_1pass":
        mk, pq = _positions(s["M"], s["P"])
        heads = s["H"]
        out = [_softmax_attention(x["Q"][h], x["K"][h], x["V"][h], mask=mk <= pq,
                                  bias=-(2.0 ** (-8.0 * (h + 1) / heads)) * (pq - mk)) for h in range(heads)]
        return {"AV": np.stack(out)}
    if name in ("gqa_1pass", "mqa_1pass"):
        heads = s["H"]
        group = s["R"] if name == "gqa_1pass" else heads
        out = []
        for h in range(heads):
            kk = x["K"][:, h // group, :] if name == "gqa_1pass" else x["K"]
            vv = x["V"][:, h // group, :] if name == "gqa_1pass" else x["V"]
            out.append(_softmax_attention(x["Q"][:, h, :], kk, vv))
        return {"AV": np.stack(out, axis=1)}
    if name in ("decode_1pass", "flashdecoding"):
        return {"AV": np.stack([_softmax_attention(x["Q"][h], x["K"][h], x["V"][h]) for h in range(s["H"])])}
    if name == "mha_proj_1pass":
        av = np.stack([_softmax_attention(x["Q"][h], x["K"][h], x["V"][h]) for h in range(s["H"])])
        return {"O": np.tensordot(x["WO"], av, axes=([1, 2], [0, 1]))}
    if name in ("layernorm_3pass", "layernorm_2pass"):
        xs = x["X"]
        y = (xs - xs.mean(axis=0)) / np.sqrt(xs.var(axis=0) + 1e-5)
        return {"Y": y * x["G"][:, None] + x["B"][:, None]}
    if name == "rmsnorm":
        xs = x["X"]
        return {"Y": xs / np.sqrt(np.mean(xs ** 2, axis=0) + 1e-6) * x["G"][:, None]}
    if name in ("cross_entropy_2pass", "cross_entropy_online"):
        logits, target = x["X"], x["T"].argmax(axis=0)
        top = logits.max(axis=0)
        lse = top + np.log(np.exp(logits - top).sum(axis=0))
        return {"L": lse - logits[target, np.arange(logits.shape[1])]}
    raise AssertionError(name)


def _inputs(name: str, spec) -> dict[str, np.ndarray]:
    x = spec.random_inputs(seed=3)
    if "T" in x:  # one-hot targets
        c, n = x["T"].shape
        hot = np.random.default_rng(5).integers(0, c, n)
        x["T"] = np.zeros((c, n))
        x["T"][hot, np.arange(n)] = 1.0
    return x


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", sorted(ZOO))
def test_pass_counts(name):
    folder, want, why = ZOO[name]
    assert cascade.load(SPECS / folder / f"{name}.einsum").passes().passes == want, why


@pytest.mark.parametrize("name", sorted(ZOO))
def test_reference_and_executors_equal_numpy(name):
    spec = _spec(name)
    x = _inputs(name, spec)
    want = numpy_outputs(name, spec, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warning anywhere
        got = {"reference": spec.run(x)}
        for kind in ("cpu", "fusemax"):
            got[kind] = spec.executor(str(MAPPINGS / name / f"{kind}.yaml")).run(**x)
    for who, outputs in got.items():
        for tensor, value in want.items():
            assert not np.isnan(outputs[tensor]).any(), f"{who}: NaN in {tensor}"
            np.testing.assert_allclose(outputs[tensor], value, rtol=1e-9, atol=1e-9, err_msg=f"{name} {who}")


@pytest.mark.parametrize("name", sorted(ZOO))
def test_fusemax_estimate(name):
    spec = _spec(name)
    report = spec.estimate(str(MAPPINGS / name / "fusemax.yaml"), "fusemax")
    assert report.latency_s > 0 and report.dram_bytes > 0


def test_every_zoo_spec_has_its_mappings_and_a_test():
    on_disk = {p.stem for folder in ("norm", "loss") for p in (SPECS / folder).glob("*.einsum")}
    assert on_disk <= set(ZOO)
    for name in ZOO:
        assert (MAPPINGS / name / "cpu.yaml").exists() and (MAPPINGS / name / "fusemax.yaml").exists()
