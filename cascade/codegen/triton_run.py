"""Running a generated Triton executor from the command line: torch and triton are optional.

`run_triton` imports them (a missing one is an exit-2 error naming the extra to install), picks
the device (CUDA, or the CPU under Triton's interpreter, TRITON_INTERPRET=1), casts the inputs to
the asked dtype, runs the module and returns NumPy float64 arrays of the outputs and of the
inputs as the kernel saw them (rounded to that dtype), so that a check compares like with like.
A kernel that does not fit the device (shared memory, registers) is an exit-2 error naming the
kernel's fusion group and the fix.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InputError, MappingError

# relative error bounds (max |out - ref| / max |ref|) a check accepts, per input dtype
TOLERANCE = {"float32": 1e-5, "bfloat16": 2e-2, "float64": 1e-5}


def require_torch():
    try:
        import torch
        import triton  # noqa: F401
    except ImportError as exc:
        raise InputError(f"--backend triton needs torch and triton ({exc.name} is not installed): "
                         "pip install -e '.[gpu]' on a machine with a CUDA GPU") from None
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        raise InputError("--backend triton needs a CUDA device, or Triton's CPU interpreter "
                         "(set TRITON_INTERPRET=1 before starting cascade)")
    return torch


def run_triton(module, inputs: dict[str, Any], dtype: str) -> tuple[dict[str, Any], dict[str, Any], float]:
    import time

    torch = require_torch()
    if dtype == "float64":
        dtype = "float32"  # Triton's dots take fp32 or narrower; fp32 is the widest the kernels read
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and dtype == "bfloat16":
        raise InputError("--dtype bfloat16 needs a CUDA device (Triton's interpreter has no bfloat16)")
    tdtype = getattr(torch, dtype)
    tensors = {k: torch.as_tensor(v).to(device=device, dtype=tdtype) for k, v in inputs.items()}
    seen = {k: t.double().cpu().numpy() for k, t in tensors.items()}
    start = time.perf_counter()
    try:
        out = module.run(**tensors)
        if device == "cuda":
            torch.cuda.synchronize()
    except ValueError as exc:  # the module's own input checks
        raise InputError(str(exc)) from None
    except Exception as exc:
        if type(exc).__name__ == "OutOfResources":
            raise MappingError(f"a generated kernel does not fit the device: {exc}; use smaller tiles in the "
                               "mapping (e.g. mappings/*/h200.yaml: 128 x 64)") from None
        raise
    seconds = time.perf_counter() - start
    return {k: v.double().cpu().numpy() for k, v in out.items()}, seen, seconds
