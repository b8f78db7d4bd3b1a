"""The Python API: `cascade.load(path)` -> `Spec`, a checked cascade with its shapes.

`Spec` is an immutable handle over the IR and its `Semantics`; its methods run the later stages
without re-parsing anything: `run` (reference evaluation), `passes`, `bind`/`map` (mappings into
loop nests), `compile`/`executor` (generated NumPy code) and `estimate` (cost on a target).
Every stage is imported lazily, so `import cascade` loads only the language.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .lang import ir
from .lang.check import check
from .lang.parse import parse, parse_file
from .lang.semantics import Semantics
from .lang.shapes import resolve_shapes

if TYPE_CHECKING:
    import numpy as np

    from .analysis.passes import PassReport
    from .mapping.mapping_file import Mapping as MappingFile
    from .mapping.schedule import MappedCascade


@dataclass(frozen=True)
class Spec:
    cascade: ir.Cascade
    semantics: Semantics = field(repr=False)
    shapes: dict[str, int] = field(repr=False)
    overrides: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cascade.name

    def with_shapes(self, **overrides: int) -> "Spec":
        """The same cascade at other shapes, e.g. `spec.with_shapes(M=4096)`."""
        merged = {**self.overrides, **overrides}
        return Spec(self.cascade, self.semantics, resolve_shapes(self.semantics, merged), merged)

    def show(self) -> str:
        from .lang.show import show

        return show(self.cascade)

    def passes(self) -> "PassReport":
        """Passes over every rank and the boundaries between them (DESIGN.md section 3)."""
        from .analysis.passes import count_passes

        return count_passes(self.semantics, self.shapes)

    def random_inputs(self, seed: int = 0, dtype: Any = None) -> dict[str, "np.ndarray"]:
        import numpy as np

        from .errors import InputError
        from .reference import random_inputs

        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed {seed!r}: a seed is a non-negative integer")
        return random_inputs(self.semantics, self.shapes, seed, dtype or np.float64)

    def bind(self, mapping: "str | Path | MappingFile | None" = None) -> "MappedCascade":
        """Apply a mapping (a file, a `Mapping`, or None for the default) -> loop nests."""
        from .mapping.mapping_file import Mapping, load_mapping
        from .mapping.schedule import bind_mapping

        if mapping is None:
            bound = Mapping()
        elif isinstance(mapping, Mapping):
            bound = mapping
        else:
            bound = load_mapping(mapping)
        return bind_mapping(self.semantics, bound, self.shapes)

    def compile(self, mapping: "str | Path | MappingFile | None" = None, backend: str = "numpy") -> str:
        """The source of the executor module for a mapping: NumPy (default) or Triton kernels."""
        from .errors import CascadeError

        mapped = self.bind(mapping)
        label = mapped.mapping.file if mapping is not None else ""
        if backend == "triton":
            from .codegen.triton_exec import emit_triton

            return emit_triton(mapped, self.cascade.file, label)
        if backend != "numpy":
            raise CascadeError(f"backend {backend!r}: the backends are numpy and triton")
        from .codegen.numpy_exec import emit_numpy

        return emit_numpy(mapped, self.cascade.file, label)

    def executor(self, mapping: "str | Path | MappingFile | None" = None) -> Any:
        """The generated executor, imported as a module with `run(**inputs)`."""
        from .codegen.loader import import_source

        return import_source(self.compile(mapping), stem=f"{self.name}_executor")

    def loop_nest(self, mapping: "str | Path | MappingFile | None" = None) -> str:
        """The mapped loop nest as readable pseudo-code."""
        from .mapping.loopnest import render_loop_nest

        mapped = self.bind(mapping)
        return render_loop_nest(mapped, self.cascade.file, mapped.mapping.file if mapping is not None else "")

    def estimate(self, mapping: "str | Path | MappingFile | None", target: Any, symbolic: bool = False,
                 groups: "list[str] | None" = None) -> Any:
        """The cost of running this cascade with a mapping on a target (a file, a bundled name
        such as 'fusemax', or a `Target`): a `CostReport`. On a grid target, `groups` (fusion
        group names such as 'GM+SN+SD+A') costs only those programs, e.g. one measured kernel."""
        from .errors import CascadeError
        from .model.spatial import estimate_spatial
        from .model.target import Target, load_target

        if not isinstance(target, Target):
            from .model.gpu import estimate_gpu, gpu_target_file, load_gpu_target

            gpu_file = gpu_target_file(target)
            if gpu_file is not None:
                if groups is not None or symbolic:
                    raise CascadeError("--group and --symbolic are not available for GPU targets")
                return estimate_gpu(self.bind(mapping), load_gpu_target(gpu_file))
        tgt = target if isinstance(target, Target) else load_target(target)
        if tgt.kind == "grid":
            from .model.grayskull import estimate_grid

            return estimate_grid(self.bind(mapping), tgt, groups)
        if groups is not None:
            raise CascadeError(f"--group: costing single programs is for grid targets; {tgt.name} is {tgt.kind}, "
                               "where a group's cost is listed per group in the report")
        return estimate_spatial(self.bind(mapping), tgt, symbolic=symbolic)

    def run(self, inputs: MappingABC[str, "np.ndarray"] | None = None, seed: int = 0) -> dict[str, "np.ndarray"]:
        """Evaluate with the reference evaluator; missing inputs are seeded random."""
        from .reference import evaluate

        given = dict(inputs or {})
        full = {**{k: v for k, v in self.random_inputs(seed).items() if k not in given}, **given}
        return evaluate(self.semantics, full, self.shapes)


def load(path: str | Path, shapes: MappingABC[str, int] | None = None) -> Spec:
    """Parse and check a `.einsum` file; raises `SpecError` with every problem found."""
    return _spec(parse_file(path), shapes)


def loads(text: str, shapes: MappingABC[str, int] | None = None, file: str = "<string>") -> Spec:
    """Like `load`, from text."""
    return _spec(parse(text, file=file), shapes)


def _spec(cascade: ir.Cascade, shapes: MappingABC[str, int] | None) -> Spec:
    sem = check(cascade)
    overrides = dict(shapes or {})
    return Spec(cascade, sem, resolve_shapes(sem, overrides), overrides)
