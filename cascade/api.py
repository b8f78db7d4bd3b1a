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


def _unpipelined(mc: Any, target: str) -> Any:
    """A bound mapping for a target whose model has no phases: refused if the mapping gives a `pipeline`."""
    if mc.mapping.pipeline:
        from .errors import MappingError

        raise MappingError(f"{mc.mapping.file}: pipeline: phases are costed on spatial targets only; {target} is "
                           "not one: drop the `pipeline` key for it")
    return mc


@dataclass(frozen=True)
class Spec:
    cascade: ir.Cascade
    semantics: Semantics = field(repr=False)
    shapes: dict[str, int] = field(repr=False)
    overrides: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cascade.name

    def with_shapes(self, **overrides: int) -> Spec:
        """The same cascade at other shapes, e.g. `spec.with_shapes(M=4096)`."""
        merged = {**self.overrides, **overrides}
        shapes = resolve_shapes(self.semantics, merged)
        return Spec(self.cascade, self.semantics, shapes, {k: shapes[k] for k in merged})

    def show(self) -> str:
        from .lang.show import show

        return show(self.cascade)

    def passes(self) -> PassReport:
        """Passes over every rank and the boundaries between them (DESIGN.md section 3)."""
        from .analysis.passes import count_passes

        return count_passes(self.semantics, self.shapes)

    def reduce(self, rank: str | None = None, tile: int | None = None) -> tuple[Spec, Any]:
        """Fewer passes over `rank` (`cascade.transform.reduce`; None: the one rank with extra passes): the derived cascade as a `Spec`
        (at this spec's shape overrides, plus the tile) and its `Certificate`. Raises `SpecError`
        at the reduction that cannot be rewritten."""
        from dataclasses import replace

        from .lang.show import show
        from .transform.reduce import reduce_passes

        cascade, cert = reduce_passes(self.cascade, rank, tile)
        if cascade is self.cascade:
            return self, cert
        cascade = replace(cascade, source=show(cascade), file=f"<{cascade.name}>")
        sem = check(cascade)
        return Spec(cascade, sem, resolve_shapes(sem, self.overrides), dict(self.overrides)), cert

    def random_inputs(self, seed: int = 0, dtype: Any = None) -> dict[str, np.ndarray]:
        import numpy as np

        from .errors import InputError
        from .reference import random_inputs

        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise InputError(f"seed {seed!r}: a seed is a non-negative integer")
        dt = np.dtype(dtype or np.float64)
        self.check_sizes([d.name for d in self.cascade.inputs], dt.itemsize)
        return random_inputs(self.semantics, self.shapes, seed, dt.type)

    def check_sizes(self, tensors: "list[str] | None" = None, itemsize: int = 8) -> None:
        """Refuse, before any allocation, tensors (default: every tensor of the cascade, as the
        reference evaluator holds them) that cannot fit in memory: an `InputError` with the size."""
        from .errors import InputError
        from .lang.shapes import tensor_shape
        from .limits import check_tensor_sizes

        names = list(self.semantics.tensors) if tensors is None else tensors
        check_tensor_sizes({n: tensor_shape(self.semantics, n, self.shapes) for n in names}, itemsize, InputError)

    def bind(self, mapping: str | Path | MappingFile | None = None) -> MappedCascade:
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

    def compile(self, mapping: str | Path | MappingFile | None = None, target: Any = None,
                backend: str = "numpy") -> str:
        """The source of the executor module for a mapping: NumPy (default) or Triton kernels. With a
        target, the NumPy executor's trace also counts what spills from that target's buffer
        (cascade.model.spill)."""
        from .errors import CascadeError

        mapped = self.bind(mapping)
        label = mapped.mapping.file if mapping is not None else ""
        if backend == "triton":
            from .codegen.triton_exec import emit_triton

            return emit_triton(mapped, self.cascade.file, label)
        if backend != "numpy":
            raise CascadeError(f"backend {backend!r}: the backends are numpy and triton")
        from .codegen.numpy_exec import emit_numpy

        spill = streamed = by_group = None
        if target is not None:
            from .model.spill import plan_spills, spill_fractions, streamed_loads
            from .model.target import Target, load_target

            tgt = target if isinstance(target, Target) else load_target(target)
            plan = plan_spills(mapped, tgt)[0]
            spill, streamed = spill_fractions(plan), streamed_loads(plan)
            by_group = {s.group: s.streamed for s in plan}
        return emit_numpy(mapped, self.cascade.file, label, spill, streamed, by_group)

    def executor(self, mapping: str | Path | MappingFile | None = None, target: Any = None) -> Any:
        """The generated executor, imported as a module with `run(**inputs)` and `run_traced`."""
        from .codegen.loader import import_source

        return import_source(self.compile(mapping, target), stem=f"{self.name}_executor")

    def loop_nest(self, mapping: str | Path | MappingFile | None = None) -> str:
        """The mapped loop nest as readable pseudo-code."""
        from .mapping.loopnest import render_loop_nest

        mapped = self.bind(mapping)
        return render_loop_nest(mapped, self.cascade.file, mapped.mapping.file if mapping is not None else "")

    def estimate(self, mapping: str | Path | MappingFile | None, target: Any, symbolic: bool = False,
                 groups: list[str] | None = None) -> Any:
        """The cost of running this cascade with a mapping on a target (a file, a bundled name
        such as 'fusemax', or a `Target`): a `CostReport`. On a grid target, `groups` (fusion
        group names such as 'GM+SN+SD+A') costs only those programs, e.g. one measured kernel."""
        from .errors import CascadeError
        from .model.spatial import estimate_spatial
        from .model.target import Target, load_target

        if isinstance(target, (str, Path)):
            from .model.gpu import estimate_gpu, gpu_target_file, load_gpu_target

            gpu_file = gpu_target_file(target)
            if gpu_file is not None:
                if groups is not None or symbolic:
                    raise CascadeError("--group and --symbolic are not available for GPU targets")
                return estimate_gpu(_unpipelined(self.bind(mapping), str(target)), load_gpu_target(gpu_file))
        tgt = target if isinstance(target, Target) else load_target(target)
        if tgt.kind == "grid":
            from .model.grayskull import estimate_grid

            return estimate_grid(_unpipelined(self.bind(mapping), tgt.name), tgt, groups)
        if groups is not None:
            raise CascadeError(f"--group: costing single programs is for grid targets; {tgt.name} is {tgt.kind}, "
                               "where a group's cost is listed per group in the report")
        return estimate_spatial(self.bind(mapping), tgt, symbolic=symbolic)

    def run(self, inputs: MappingABC[str, np.ndarray] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """Evaluate with the reference evaluator; missing inputs are seeded random."""
        from .reference import evaluate

        given = dict(inputs or {})
        self.check_sizes()
        full = {**{k: v for k, v in self.random_inputs(seed).items() if k not in given}, **given}
        return evaluate(self.semantics, full, self.shapes)


def load(path: str | Path, shapes: MappingABC[str, int] | None = None) -> Spec:
    """Parse and check a `.einsum` file; raises `SpecError` with every problem found."""
    return _spec(parse_file(path), shapes)


def loads(text: str, shapes: MappingABC[str, int] | None = None, file: str = "<string>") -> Spec:
    """Like `load`, from text."""
    from .errors import Diagnostic, SpecError
    from .limits import MAX_INPUT_BYTES, quote

    if not isinstance(text, str) or not isinstance(file, str):
        raise SpecError([Diagnostic(None, f"loads({quote(text)}, file={quote(file)}): the spec text and its file "
                                          "label are strings")])
    if len(text) > MAX_INPUT_BYTES:
        raise SpecError([Diagnostic(None, f"{file}: a spec of {len(text)} characters is over the limit of "
                                          f"{MAX_INPUT_BYTES}")])
    return _spec(parse(text, file=file), shapes)


def _spec(cascade: ir.Cascade, shapes: MappingABC[str, int] | None) -> Spec:
    sem = check(cascade)
    _check_index_limit(cascade)
    resolved = resolve_shapes(sem, shapes)  # validates every override: whole numbers, in range
    return Spec(cascade, sem, resolved, {k: resolved[k] for k in (shapes or {})})


MAX_INDEX_VARIABLES = 26  # the evaluators name each einsum axis by a lower-case letter


def _check_index_limit(cascade: ir.Cascade) -> None:
    """A stated limit, checked up front: an Einsum over more index variables than einsum has letters
    is a `SpecError` at the statement, not a failure deep inside an evaluator."""
    from .errors import Diagnostic, SpecError

    problems = []
    lines = cascade.source.split("\n") if cascade.source else []
    for stmt in cascade.statements:
        names = {idx.var for acc in (stmt.lhs, *ir.expr_reads(stmt.expr)) for idx in acc.indices
                 if isinstance(idx, ir.VarIndex)}
        if len(names) > MAX_INDEX_VARIABLES:
            span = stmt.span
            line = lines[span.line - 1] if span and 0 < span.line <= len(lines) else ""
            problems.append(Diagnostic(span, f"this Einsum uses {len(names)} index variables; at most "
                                             f"{MAX_INDEX_VARIABLES} are supported (one einsum letter a-z each): split it into several Einsums", line))
    if problems:
        raise SpecError(problems)
