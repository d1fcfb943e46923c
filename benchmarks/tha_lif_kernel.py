"""Multi-step LIF over time: fused numba kernel vs the plain PyTorch loop (vs torch.compile).

    python benchmarks/tha_lif_kernel.py [--steps 100] [--neurons 294912] [--threads 1] [--compile]

The default size is layer 1 of the snn-tha MNIST network (batch 128 x 16 x 12 x 12 = 294,912
neurons, 100 steps). Each form runs forward + backward (loss = sum of spikes + 0.01 * sum of the
membrane, so both outputs carry gradients) ``--repeats`` times after one warm-up; the median wall
time is printed and written to ``benchmarks/out/tha_lif_kernel.json``. ``--compile`` adds the
PyTorch loop wrapped in ``torch.compile`` (needs a C++ compiler; compilation time is reported
separately and excluded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from spikeforge.neurons.leaky import leaky_multistep


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--neurons", type=int, default=128 * 16 * 12 * 12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "tha_lif_kernel.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.steps, args.neurons) * 0.5 + 0.2
    x.requires_grad_()

    def run(fused):
        s, u = leaky_multistep(x, 0.99, 1.0, "fast_sigmoid", time_dim=0, fused=fused)
        (s.sum() + 0.01 * u.sum()).backward()
        x.grad = None

    forms = {"fused (numba custom autograd)": lambda: run(True), "unfused (PyTorch loop)": lambda: run(False)}
    compile_s = None
    if args.compile:
        fn = torch.compile(lambda: leaky_multistep(x, 0.99, 1.0, time_dim=0, fused=False))

        def comp():
            s, u = fn()
            (s.sum() + 0.01 * u.sum()).backward()
            x.grad = None

        t0 = time.perf_counter()
        comp()
        compile_s = time.perf_counter() - t0
        forms["unfused + torch.compile"] = comp
    res = {}
    for name, f in forms.items():
        f()  # warm-up (numba compilation, caches)
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        res[name] = statistics.median(ts)
        print(f"{name:32s} {res[name]:.3f} s (forward + backward, median of {args.repeats})", flush=True)
    base = res["unfused (PyTorch loop)"]
    for name, t in res.items():
        print(f"  {name:30s} {base / t:5.2f}x vs the PyTorch loop")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "steps": args.steps,
                "neurons": args.neurons,
                "threads": args.threads,
                "median_s": res,
                "compile_s": compile_s,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
