"""Class 1 of hostile input: nothing from input text or from a shared folder is ever run as code.

A shape given through the API as a docstring-breaking string is refused before any code is
generated; an executor planted where the old loader cached generated modules is never imported
(the loader compiles from memory); and the generated docstring quotes only validated values.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

import cascade
from cascade import SpecError
from cascade.errors import CascadeError

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "attention" / "attention_1pass.einsum"
MAPPING = ROOT / "mappings" / "attention_1pass" / "tiled.yaml"

PAYLOAD = 'x"""\nimport os\nos.environ["CASCADE_PWNED"] = "1"\n"""'


def test_docstring_breaking_shape_is_refused_before_codegen(monkeypatch):
    monkeypatch.delenv("CASCADE_PWNED", raising=False)
    with pytest.raises(SpecError, match=r"shape of rank 'M': .* is not an integer") as info:
        cascade.load(SPEC, shapes={"M": PAYLOAD}).executor(None)
    assert isinstance(info.value, CascadeError)  # the CLI's exit-2 class
    assert "CASCADE_PWNED" not in os.environ
    # with_shapes is the other way in
    spec = cascade.load(SPEC, shapes={"M": 64})
    with pytest.raises(SpecError, match="rank 'M'"):
        spec.with_shapes(M=PAYLOAD)
    assert "CASCADE_PWNED" not in os.environ


@pytest.mark.parametrize("bad", [-4, 0, "7", None, float("nan"), 2.5, True, 10**50, np.float64(3.0)],
                         ids=repr)
def test_api_shapes_are_whole_positive_bounded_numbers(bad):
    with pytest.raises(SpecError, match=r"shape of rank 'M'.*(not an integer|out of range)"):
        cascade.load(SPEC, shapes={"M": bad})


def test_numpy_integer_shapes_are_accepted_as_plain_ints():
    spec = cascade.load(SPEC, shapes={"M": np.int64(8)})
    assert spec.shapes["M"] == 8 and type(spec.overrides["M"]) is int


def _old_cache_path(source: str, stem: str, tmp: Path) -> Path:
    """Where the previous loader looked for (and imported without checks) a cached executor."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return tmp / f"cascade-executors-{uid}" / f"{stem}_{digest}.py"


def test_planted_file_in_old_cache_location_is_never_imported(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the old loader used gettempdir()
    monkeypatch.delenv("CASCADE_PLANTED", raising=False)
    spec = cascade.load(SPEC, shapes={"M": 64, "P": 32})
    source = spec.compile(MAPPING)
    planted = _old_cache_path(source, f"{spec.name}_executor", tmp_path)
    planted.parent.mkdir(parents=True)
    planted.write_text('import os\nos.environ["CASCADE_PLANTED"] = "1"\n'
                       "def run(**inputs):\n    return {'AV': 'planted'}\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))

    module = spec.executor(MAPPING)
    assert "CASCADE_PLANTED" not in os.environ
    inputs = spec.random_inputs(seed=3)
    out = module.run(**inputs)
    np.testing.assert_allclose(out["AV"], spec.run(inputs)["AV"], rtol=1e-10)
    assert not Path(module.__file__).exists()  # a label, not a file on disk
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written under the temp dir


def test_generated_docstring_has_only_validated_values():
    spec = cascade.load(SPEC, shapes={"M": np.int32(48)})
    source = spec.compile(MAPPING)
    doc_end = source.index('"""', 3)
    doc = source[3:doc_end]
    assert "M=48," in doc
    assert '"' not in doc and "\\" not in doc
