"""What a valid cascade means, derived once by the checker: the records every later stage reads.

`Semantics` gives each tensor its ranks (and its iterative rank, whose extent is shape + 1),
each statement its iteration variables, reduced variables and, for every access, how each axis
of the stored tensor is addressed (`AxisCoord`), plus the order of evaluation (`Step`s, where a
recurrence group runs step by step along its iterative variable).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    kind: str  # 'input' | 'output' | 'intermediate'
    ranks: tuple[str, ...]
    iterative: str | None = None  # the rank of extent shape+1, for a recurrence's tensor


@dataclass(frozen=True, slots=True)
class AxisCoord:
    """How one axis of a stored tensor is addressed by an access.

    kind:
      'var'    coordinate = var + offset
      'split'  coordinate = outer * tile_rank + inner   (K[E, M] read as K[e, m1, m0])
      'outer'  coordinate = var // tile_rank            (Y[M1, M0] read as Y[m]: its M1 axis)
      'inner'  coordinate = var %  tile_rank            (... its M0 axis)
      'const'  coordinate = offset
      'last'   the last element of the axis
    """

    rank: str
    kind: str
    var: str = ""
    offset: int = 0
    inner: str = ""
    tile_rank: str = ""


@dataclass(frozen=True, slots=True)
class AccessInfo:
    access: ir.Access
    axes: tuple[AxisCoord, ...]


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """One Einsum or Init with its iteration space resolved."""

    statement: ir.Statement
    variables: tuple[str, ...]  # left-side variables first, then reduced ones
    reduced: tuple[str, ...]
    reduce_op: str  # 'sum' unless ':: op(...)' says otherwise
    write: AccessInfo
    reads: tuple[AccessInfo, ...]

    @property
    def name(self) -> str:
        return self.statement.lhs.tensor

    @property
    def is_init(self) -> bool:
        return isinstance(self.statement, ir.Init)


@dataclass(frozen=True, slots=True)
class Step:
    """One unit of evaluation order: a single statement, or a recurrence group that advances
    `variable` one coordinate at a time, running `statements` (indices into
    `Semantics.statements`) in order at each coordinate."""

    statements: tuple[int, ...]
    variable: str | None = None


@dataclass(frozen=True, slots=True)
class Semantics:
    cascade: ir.Cascade
    tensors: dict[str, TensorInfo]
    statements: tuple[StatementInfo, ...]
    steps: tuple[Step, ...]
    splits: dict[str, tuple[str, str]]  # M -> (M1, M0)

    def fixed_splits(self) -> dict[str, tuple[str, str]]:
        """The splits that are part of the math, not a tiling: a part is a rank of a declared input
        (GQA's `split H = G * R` with `K[E, G, M]`), so the data fixes the parts. No mapping or
        search re-partitions them, and the whole rank must be exactly the product of the parts."""
        declared = {r for d in self.cascade.inputs for r in d.ranks}
        return {rank: parts for rank, parts in self.splits.items() if set(parts) & declared}

    def fixed_split_reason(self, rank: str) -> str:
        outer, inner = self.splits[rank]
        holders = [f"{d.name}[{', '.join(d.ranks)}]" for d in self.cascade.inputs
                   if outer in d.ranks or inner in d.ranks]
        return f"'split {rank} = {outer} * {inner}' is part of the cascade's math ({', '.join(holders)} " \
               f"{'is' if len(holders) == 1 else 'are'} declared over a part)"

    def rank_of(self, var: str) -> str:
        return var.upper()

    def writer(self, tensor: str) -> StatementInfo | None:
        for s in self.statements:
            if s.name == tensor and not s.is_init:
                return s
        return None
