"""`emit_triton`: a mapped cascade -> the source of a Triton executor module.

The module holds one `@triton.jit` kernel per fusion group (`triton_kernel`), a table that says
what each kernel takes (generated data: tensor and rank names as strings, never code), and a
fixed launcher: `run(**inputs)` takes torch tensors (CUDA, or CPU under TRITON_INTERPRET=1),
reads rank shapes from them, allocates outputs (the inputs' dtype, or float32) and
intermediates that cross kernels (float32, in device memory), and launches the kernels in
order. `configure(num_warps=..., num_stages=..., fp32_dot="ieee"|"tf32")` sets launch options.
"""

from __future__ import annotations

import ast

from ..mapping.schedule import MappedCascade
from .triton_kernel import emit_kernel
from .triton_plan import plan_kernel

_RUNTIME = '''

CONFIG = {"num_warps": None, "num_stages": None, "fp32_dot": "ieee"}


def configure(**options):
    """Launch options for every kernel: num_warps, num_stages (None: by block size), fp32_dot."""
    for key, value in options.items():
        if key not in CONFIG:
            raise ValueError(f"unknown option {key}: the options are {', '.join(CONFIG)}")
        CONFIG[key] = value


def _pow2(n):
    return 1 << max(0, int(n) - 1).bit_length()


def _shapes(inputs):
    n, given = {}, set()
    for tensor, ranks in INPUTS.items():
        if tensor not in inputs:
            raise ValueError(f"missing input {tensor}")
        t = inputs[tensor]
        if t.dim() != len(ranks):
            raise ValueError(f"input {tensor} has {t.dim()} dimensions, expected {len(ranks)} ({', '.join(ranks)})")
        for rank, size in zip(ranks, t.shape):
            given.add(rank)
            if n.setdefault(rank, int(size)) != int(size):
                raise ValueError(f"input {tensor}: rank {rank} is {int(size)} here but {n[rank]} in another input")
    for rank, size in SHAPES.items():
        n.setdefault(rank, size)
    for rank, (outer, inner, tile) in SPLITS.items():
        parts = -(-n[rank] // tile)
        for part, want in ((outer, parts), (inner, tile)):
            if part in given and n[part] != want:
                raise ValueError(f"the inputs give {part} = {n[part]}, but this module was compiled for "
                                 f"{rank} = {outer} * {inner} with {inner} = {tile}, so {rank} = {n[rank]} needs "
                                 f"{part} = {want}: recompile it for these shapes")
        n[inner] = tile
        n[outer] = parts
    return n


def _value(arg, tensors, n, dtype):
    kind = arg[0]
    if kind == "ptr":
        return tensors[arg[1]]
    if kind == "stride":
        return tensors[arg[1]].stride(arg[2])
    if kind == "rank":
        return n[arg[1]]
    if kind == "grid":
        return -(-n[arg[1]] // arg[2])
    if kind == "float":
        return float(n[arg[1]])
    if kind == "block":
        return _pow2(arg[2] if arg[2] is not None else n[arg[1]])
    if kind == "even":
        return all(n[arg[1]] % t == 0 and t == _pow2(t) for t in (arg[2] or [n[arg[1]]]))
    if kind == "precision":
        return CONFIG["fp32_dot"] if dtype == torch.float32 else "tf32"
    if kind == "fast_exp":  # exp2 by one multiply-add for bf16/fp16 inputs; fp32 keeps tl.exp exactly
        return dtype != torch.float32
    if kind == "index_type":  # int32 tile indices while every tensor's offsets fit with room to spare
        return tl.int64 if max(t.numel() for t in tensors.values()) >= 2 ** 30 else tl.int32
    raise AssertionError(arg)


def _launch(kernel, tensors, n, dtype):
    args = [_value(a, tensors, n, dtype) for a in kernel["args"]]
    consts = {name: _value(a, tensors, n, dtype) for name, a in kernel["consts"]}
    grid = 1
    for rank, span in kernel["grid"]:
        grid *= -(-n[rank] // span)
    blocks = [v for k, v in consts.items() if k.startswith("BLOCK_")]
    biggest = max([a * b for a in blocks for b in blocks] or [1])
    warps = CONFIG["num_warps"] or (4 if biggest <= 128 * 64 else 8)
    stages = CONFIG["num_stages"] or 2
    kernel["fn"][(grid,)](*args, **consts, num_warps=warps, num_stages=stages)


def run(**inputs):
    """Evaluate the cascade on torch tensors (by tensor name, in their declared rank order)."""
    n = _shapes(inputs)
    first = inputs[next(iter(INPUTS))]
    device = first.device
    dtype = torch.float32 if any(inputs[t].dtype == torch.float32 for t in INPUTS) else first.dtype
    tensors = {t: inputs[t] for t in INPUTS}
    for tensor, ranks in OUTPUTS.items():
        tensors[tensor] = torch.empty([n[r] for r in ranks], device=device, dtype=dtype)
    for tensor, ranks in TEMPORARIES.items():
        tensors[tensor] = torch.empty([n[r] for r in ranks], device=device, dtype=torch.float32)
    for kernel in KERNELS:
        _launch(kernel, tensors, n, dtype)
    return {t: tensors[t] for t in OUTPUTS}
'''


# jit helpers a kernel may call (`KernelEmitter.helpers`): fixed text, included only where used
HELPERS = {"_tanh": '''

@triton.jit
def _tanh(x):
    """tanh in fp32 (Triton has none its interpreter runs): near 0 (|x| < 0.25) the odd Taylor
    polynomial to x^9 (truncation under 1e-8 relative), elsewhere 1 - 2 / (exp(2x) + 1), whose
    rounding is a few fp32 ulps of 1 against |tanh x| >= 0.24; exp overflowing gives +-1."""
    z = x * x
    small = x * (1.0 + z * (-1.0 / 3.0 + z * (2.0 / 15.0 + z * (-17.0 / 315.0 + z * (62.0 / 2835.0)))))
    big = 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)
    return tl.where(tl.abs(x) < 0.25, small, big)
'''}


def emit_triton(mc: MappedCascade, spec_label: str = "", mapping_label: str = "") -> str:
    from ..mapping.variants import refuse_variants

    refuse_variants(mc, "the Triton backend")
    sem = mc.semantics
    kernels = []
    for i, group in enumerate(mc.groups):
        plan = plan_kernel(mc, group, i)
        kernels.append((plan, emit_kernel(mc, plan)))
    dram = [t for t, st in mc.storage.items() if st.dram]
    inputs = {t: list(info.ranks) for t, info in sem.tensors.items() if info.kind == "input"}
    outputs = {t: list(info.ranks) for t, info in sem.tensors.items() if info.kind == "output"}
    temps = {t: list(sem.tensors[t].ranks) for t in dram if t not in inputs and t not in outputs}
    splits = {r: (o, i, mc.shapes[i]) for r, (o, i) in sem.splits.items()}
    shapes = {r: n for r, n in mc.shapes.items() if r in {x for info in sem.tensors.values() for x in info.ranks}
              or r in sem.splits}
    for _plan, em in kernels:  # ranks only a filter or a value names (a window W): their compiled shape
        for a in em.scalars:
            if a.startswith("n_") and a[2:] in mc.shapes and a[2:] not in shapes and \
                    not any(a[2:] in parts for parts in sem.splits.values()):
                shapes[a[2:]] = mc.shapes[a[2:]]
    doc = (f"Triton executor for cascade {sem.cascade.name}, generated by cascade.\n\n"
           f"spec:    {spec_label}\nmapping: {mapping_label or 'default'}\n"
           f"kernels: {len(kernels)} (one per fusion group)\n\n"
           "Rank shapes are taken from the inputs; tile shapes are fixed. run(**inputs) -> dict of torch tensors.\n")
    body: list[ast.stmt] = [ast.Expr(ast.Constant(doc)),
                            ast.Import([ast.alias("torch")]), ast.Import([ast.alias("triton")]),
                            ast.Import([ast.alias("triton.language", "tl")])]
    lines = [ast.unparse(ast.fix_missing_locations(ast.Module(body, [])))]
    for helper in sorted({h for _plan, em in kernels for h in em.helpers}):
        lines.append("\n" + HELPERS[helper])
    for _plan, em in kernels:
        lines.append("\n\n" + ast.unparse(ast.fix_missing_locations(em.fn)))
    table = []
    for plan, em in kernels:
        args = []
        for a in em.pointers:
            args.append(("ptr", a[2:]))
        for a in em.scalars:
            args.append(_scalar_arg(a, plan, mc))
        consts = []
        for c in em.constexprs:
            consts.append((c, _const_arg(c, plan, mc)))
        table.append({"fn": plan.name, "group": plan.group.name, "args": args, "consts": consts,
                      "grid": [(r, plan.grid_span[r]) for r in plan.grid]})
    data = [("SHAPES", shapes), ("SPLITS", splits), ("INPUTS", inputs), ("OUTPUTS", outputs),
            ("TEMPORARIES", temps)]
    text = "\n\n"
    for key, value in data:
        text += f"{key} = {value!r}\n"
    text += "KERNELS = [\n"
    for entry in table:
        fn = entry.pop("fn")
        text += f"    dict(fn={fn}, **{entry!r}),\n"
    text += "]\n"
    lines.append(text)
    lines.append(_RUNTIME)
    return "".join(lines)


def _scalar_arg(a: str, plan, mc: MappedCascade):
    kind, _, rest = a.partition("_")
    if kind == "s":
        tensor, _, axis = rest.rpartition("_")
        return ("stride", tensor, int(axis))
    if kind == "n":
        return ("rank", rest)
    if kind == "g":
        return ("grid", rest, plan.grid_span[rest])
    if kind == "f":
        return ("float", rest)
    raise AssertionError(a)


def _const_arg(c: str, plan, mc: MappedCascade):
    if c == "DOT_PRECISION":
        return ("precision",)
    if c == "FAST_EXP":
        return ("fast_exp",)
    if c == "INDEX_TYPE":
        return ("index_type",)
    kind, _, rest = c.partition("_")
    if kind == "BLOCK":
        role = next(r for r in plan.roles.values() if r.level == rest)
        return ("block", rest if role.extent is None else rest, role.extent)
    if kind == "EVEN":
        tiles = sorted({r.extent for r in plan.roles.values() if r.rank == rest and r.kind == "tile" and r.extent})
        return ("even", rest, tiles)
    raise AssertionError(c)
