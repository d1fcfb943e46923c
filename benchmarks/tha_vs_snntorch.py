"""spikeforge against snnTorch on the snn-tha MNIST network, side by side, in one run.

    python benchmarks/tha_vs_snntorch.py [--iterations 3] [--threads 1] [--batch 128] [--steps 100]
                                         [--mnist ../shared/data/mnist] [--fp]

What it does:

1. snnTorch is not a dependency of spikeforge. If ``import snntorch`` fails, the script creates
   (first time) ``benchmarks/.venv-snntorch`` that sees the running interpreter's packages
   (``benchmarks/helper_env.py``: a ``.pth`` file, not ``--system-site-packages``, so it also works
   when spikeforge is installed in a virtual environment; it reuses the installed torch and
   spikeforge, so pip never downloads a CUDA torch), runs ``pip install snntorch`` in it, and
   re-executes itself with that interpreter.
2. builds the snn-tha MNIST network (binarized by default; ``--fp`` for full precision) once with
   spikeforge (:class:`spikeforge.models.tha_nets.THAMnistNet`: static input computed once, fused
   numba LIF, conv2+pool as one stride-2 convolution over all T x B spike maps, per-step batch
   norm in closed form) and once the way snn-tha writes it with snnTorch: a Python loop over the
   100 steps calling conv -> avg-pool -> BatchNorm2d -> ``snn.Leaky(beta, threshold,
   spike_grad=surrogate.fast_sigmoid(10.22))`` per layer, ``snntorch.functional.mse_count_loss(0.8,
   0.2)``. Both use the same binarized layer classes and the **same initial weights, batch-norm
   state, thresholds and input batch** (128 MNIST training images).
3. checks that both compute the same thing: with dropout off, the first-iteration loss, the output
   spike counts and the gradients of every parameter are compared (float32; the two sum in a
   different order, so equality is up to rounding).
4. times full training iterations (forward, loss, backward, Adam step, threshold-annealing step,
   dropout on as in snn-tha), alternating snnTorch and spikeforge iteration by iteration so that
   changes in machine load hit both; one untimed warm-up each (numba compilation). Reports wall
   time and process CPU time per iteration (CPU time is less sensitive to other jobs on a shared
   machine) and the ratio of iterations per second. Writes ``benchmarks/out/tha_vs_snntorch.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-snntorch"


def _ensure_snntorch() -> None:
    sys.path.insert(0, str(HERE))
    from helper_env import ensure_package

    ensure_package("snntorch", "snntorch", name="snntorch")


def _torch_version() -> str:
    import torch

    return torch.__version__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=3, help="timed iterations per framework")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--mnist", default="../shared/data/mnist")
    ap.add_argument("--fp", action="store_true", help="full-precision weights instead of binarized")
    ap.add_argument("--out", default=str(HERE / "out" / "tha_vs_snntorch.json"))
    args = ap.parse_args()
    _ensure_snntorch()

    import numpy as np
    import snntorch as snn
    import snntorch.functional as SF
    import torch
    import torch.nn.functional as F
    from snntorch import surrogate
    from torch import nn

    from spikeforge.evaluation.spike_losses import spike_count_mse
    from spikeforge.models.tha_nets import THAMnistNet, THAMnistNetParams
    from spikeforge.plasticity.threshold_annealing import AnnealParams, ThresholdAnnealing

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = THAMnistNetParams(num_steps=args.steps, binarize=not args.fp)
    sf_net = THAMnistNet(params)

    class SnnTorchNet(nn.Module):
        """snn-tha's MNIST network written with snnTorch (per-step loop)."""

        def __init__(self, src: THAMnistNet):
            super().__init__()
            p = src.params
            self.p = p
            self.conv1, self.conv2, self.fc = (
                copy.deepcopy(src.conv1),
                copy.deepcopy(src.conv2),
                copy.deepcopy(src.fc),
            )
            self.bn1, self.bn2 = copy.deepcopy(src.bn1), copy.deepcopy(src.bn2)
            sg = surrogate.fast_sigmoid(slope=p.slope)
            self.lif1 = snn.Leaky(beta=p.beta, threshold=p.thresholds[0], spike_grad=sg)
            self.lif2 = snn.Leaky(beta=p.beta, threshold=p.thresholds[1], spike_grad=sg)
            self.lif3 = snn.Leaky(beta=p.beta, threshold=p.thresholds[2], spike_grad=sg)
            self.dropout = nn.Dropout(p.dropout)

        def forward(self, x):
            m1, m2, m3 = self.lif1.reset_mem(), self.lif2.reset_mem(), self.lif3.reset_mem()
            out = []
            for _ in range(self.p.num_steps):
                c = self.bn1(F.avg_pool2d(self.conv1(x), 2))
                s, m1 = self.lif1(c, m1)
                s = s.to(x.dtype)  # snnTorch's Heaviside returns float32 spikes (matters in float64 only)
                c = self.bn2(F.avg_pool2d(self.conv2(s), 2))
                s, m2 = self.lif2(c, m2)
                s = s.to(x.dtype)
                c = self.dropout(self.fc(s.flatten(1)))
                s, m3 = self.lif3(c, m3)
                s = s.to(x.dtype)
                out.append(s)
            return torch.stack(out)  # [T, B, 10]

    st_net = SnnTorchNet(sf_net)

    # the same input batch for both
    try:
        from spikeforge.data import load_mnist

        imgs, labels = load_mnist(args.mnist, "train", args.batch)
        x = torch.from_numpy(imgs.astype(np.float32) / 255.0).unsqueeze(1)
        y = torch.from_numpy(labels.astype(np.int64))
        source = f"MNIST training images 0..{args.batch - 1} from {args.mnist}"
    except Exception as err:  # no data: random images, still identical for both
        g = torch.Generator().manual_seed(0)
        x = torch.rand(args.batch, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (args.batch,), generator=g)
        source = f"random images (MNIST not loaded: {err})"

    st_loss_fn = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)

    # ---- 1. same computation: first-iteration loss, spike counts, gradients (dropout off),
    #         in float32 (what is timed) and in float64 (where summation order hardly matters)
    def compare(dtype):
        a, b = copy.deepcopy(sf_net).to(dtype), copy.deepcopy(st_net).to(dtype)
        a.params = a.params.replace(dropout=0.0)
        b.dropout.p = 0.0
        a.train(), b.train()
        xd = x.to(dtype)
        s_a, _ = a(xd)
        loss_a = spike_count_mse(s_a, y, 0.8, 0.2)
        s_b = b(xd)
        loss_b = st_loss_fn(s_b, y)
        loss_a.backward()
        loss_b.backward()
        counts_a, counts_b = s_a.sum(1), s_b.sum(0)
        pb = dict(b.named_parameters())
        grad_rel = {
            n: (p.grad - pb[n].grad).norm().item() / (pb[n].grad.norm().item() + 1e-30) for n, p in a.named_parameters()
        }
        la, lb = loss_a.item(), loss_b.item()
        out = {
            "loss_spikeforge": la,
            "loss_snntorch": lb,
            "loss_rel_diff": abs(la - lb) / max(abs(lb), 1e-30),
            "output_spike_counts_equal": bool(torch.equal(counts_a, counts_b)),
            "output_spike_count_max_abs_diff": (counts_a - counts_b).abs().max().item(),
            "total_output_spikes": counts_b.sum().item(),
            "grad_rel_diff": grad_rel,
        }
        print(
            f"first iteration, {str(dtype).split('.')[-1]}, dropout off: loss spikeforge "
            f"{la:.10g}, snnTorch {lb:.10g} (rel. diff {out['loss_rel_diff']:.2e}); output spike "
            f"counts equal: {out['output_spike_counts_equal']}; max grad rel. diff "
            f"{max(grad_rel.values()):.2e}",
            flush=True,
        )
        return out

    check = compare(torch.float32)
    check["float64"] = compare(torch.float64)

    # ---- 2. timing: full training iterations, alternating
    anneal = [
        AnnealParams(theta_initial=t0, theta_final=tf, alpha=al)
        for t0, tf, al in zip(params.thresholds, (15.983, 30.395, 4.1616), (0.024, 0.119, 0.0011))
    ]

    def make(kind):
        net = copy.deepcopy(sf_net if kind == "spikeforge" else st_net)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=9.97e-3, betas=(0.9, 0.999))
        tha = ThresholdAnnealing([net.lif1, net.lif2, net.lif3], anneal)
        if kind == "spikeforge":

            def step():
                s, _ = net(x)
                loss = spike_count_mse(s, y, 0.8, 0.2)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tha.step()
                return float(loss)
        else:

            def step():
                s = net(x)
                loss = st_loss_fn(s, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tha.step()
                return float(loss)

        return step

    steps = {k: make(k) for k in ("snntorch", "spikeforge")}
    times = {k: {"wall": [], "cpu": [], "loss": []} for k in steps}
    for i in range(args.iterations + 1):
        for k, fn in steps.items():
            w0, c0 = time.perf_counter(), time.process_time()
            loss = fn()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            print(
                f"  {'warm-up' if i == 0 else f'iteration {i}'}: {k:10s} {w:7.2f} s wall "
                f"{c:7.2f} s CPU  loss {loss:.4f}",
                flush=True,
            )
            if i > 0:
                times[k]["wall"].append(w)
                times[k]["cpu"].append(c)
            times[k]["loss"].append(loss)
    summary = {}
    for k, t in times.items():
        summary[k] = {
            "median_wall_s": statistics.median(t["wall"]),
            "median_cpu_s": statistics.median(t["cpu"]),
            "wall_s": t["wall"],
            "cpu_s": t["cpu"],
            "losses": t["loss"],
        }
    ratio_wall = summary["snntorch"]["median_wall_s"] / summary["spikeforge"]["median_wall_s"]
    ratio_cpu = summary["snntorch"]["median_cpu_s"] / summary["spikeforge"]["median_cpu_s"]
    import snntorch as _s

    import spikeforge as _sf

    res = {
        "benchmark": "tha_vs_snntorch",
        "binarized": not args.fp,
        "batch": args.batch,
        "steps": args.steps,
        "threads": args.threads,
        "input": source,
        "check": check,
        "timing": summary,
        "speedup_wall": ratio_wall,
        "speedup_cpu": ratio_cpu,
        "versions": {
            "snntorch": _s.__version__,
            "torch": torch.__version__,
            "spikeforge": _sf.__version__,
            "python": sys.version.split()[0],
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "loadavg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(
        f"\nsnnTorch   {summary['snntorch']['median_wall_s']:.2f} s/it wall, "
        f"{summary['snntorch']['median_cpu_s']:.2f} s/it CPU"
    )
    print(
        f"spikeforge {summary['spikeforge']['median_wall_s']:.2f} s/it wall, "
        f"{summary['spikeforge']['median_cpu_s']:.2f} s/it CPU"
    )
    print(f"spikeforge is {ratio_wall:.2f}x faster (wall, median), {ratio_cpu:.2f}x (CPU time); written to {args.out}")


if __name__ == "__main__":
    main()
