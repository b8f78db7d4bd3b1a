"""The sliding-window row without the host: its generated kernel timed by CUDA graph replay (20
launches per graph, 10 replays) beside `do_bench` (which counts the host's run() time when the
host is the slower), for the bundled spec (running max from -inf) and the same spec from -1e30.

    python benchmarks/gpu_window_graph.py          # on a CUDA machine, from the repository root
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import torch
    from triton.testing import do_bench

    import cascade
    from cascade.codegen.loader import import_source

    spec_path = ROOT / "specs/attention/sliding_window_1pass.einsum"
    text = open(spec_path).read()
    for label, t in (("inf", text), ("1e30", text.replace("RM[0, p]     = -inf", "RM[0, p]     = -1e30"))):
        spec = cascade.loads(t).with_shapes(M=16384, P=16384, W=1024, E=64, F=64)
        mod = import_source(spec.compile(ROOT / "mappings/sliding_window_1pass/h200.yaml", backend="triton"), stem="w_" + label)
        g = torch.Generator(device="cuda").manual_seed(0)
        x = {k: torch.randn(*v.shape, device="cuda", dtype=torch.bfloat16, generator=g) for k, v in spec.random_inputs(1).items()}
        for warps, stages in ((4, 3), (8, 3), (8, 2)):
            mod.configure(num_warps=warps, num_stages=stages)
            fn = lambda: mod.run(**x)
            fn(); torch.cuda.synchronize()
            db = do_bench(fn, warmup=25, rep=100, return_mode="median")
            s = torch.cuda.Stream()
            with torch.cuda.stream(s):
                fn()
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(20):
                    fn()
            graph.replay(); torch.cuda.synchronize()
            st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            st.record()
            for _ in range(10):
                graph.replay()
            en.record(); torch.cuda.synchronize()
            per = st.elapsed_time(en) / 200
            print(f"window {label} w{warps} s{stages}: do_bench {db*1e3:.1f} us, graph replay {per*1e3:.1f} us per kernel", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
