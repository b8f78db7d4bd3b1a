"""cascade: an Extended-Einsum cascade compiler and accelerator mapper.

    >>> import cascade
    >>> spec = cascade.load("specs/attention/attention_1pass.einsum")
    >>> outputs = spec.run(seed=0)          # reference evaluation, seeded random inputs

Heavy dependencies (NumPy, sympy, networkx) are imported only by the stages that need them.
"""

from .api import Spec, load, loads
from .errors import CascadeError, InputError, MappingError, SpecError, TargetError

__all__ = ["Spec", "load", "loads", "CascadeError", "SpecError", "MappingError", "TargetError", "InputError"]
__version__ = "0.1.0"
