"""Speed of ``tha fmnist``, ``tha dvs-gesture`` and ``tha shd`` at their snn-tha defaults, on
synthetic data of the real sizes (the data sets are not on this machine).

    python benchmarks/tha_datasets.py [--iterations 3] [--threads 1] [--dvs-events 150000] [--shd-events 8000]

For each experiment: the default config (``configs/tha_*.toml``: batch, time steps, network), its
network and optimizer as the command builds them, and one training batch. Event batches are made
the way the command makes them, from events held per example (:class:`spikeforge.data.events.
EventSet`): DVS recordings of ``--dvs-events`` uniform events over 500 ms on the 128 x 128 sensor,
SHD examples of ``--shd-events`` uniform spikes over 1 s on 700 channels (assumed sizes, not
measured from the data sets). Reports the time to bin a batch into frames, a full training
iteration (forward, spike-count MSE, backward, clipping, step, weight clamp, annealing step; one
untimed warm-up first), one evaluation batch (DVS: 360 steps), and the training epoch that
implies (snn-tha's iterations per epoch). Writes ``benchmarks/out/tha_datasets.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from spikeforge.data.events import EventSet
from spikeforge.evaluation.spike_losses import spike_count_mse
from spikeforge.experiments.tha import DVS_GESTURE_TASK, FMNIST_TASK, SHD_TASK
from spikeforge.experiments.tha.training import make_optimizer, update
from spikeforge.plasticity.threshold_annealing import ThresholdAnnealing

#: training examples of each data set (reference tha_and_libs.md §1.4; DVS: snnTorch's count)
TRAIN_SIZE = {"fmnist": 60000, "dvs-gesture": 1176, "shd": 8156}


class _Synthetic:
    """``n`` examples of ``k`` uniform events over ``span_us`` on ``channels`` flat channels."""

    def __init__(self, n: int, k: int, span_us: int, channels: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.t = [np.sort(rng.integers(0, span_us, k)) for _ in range(n)]
        self.c = [rng.integers(0, channels, k) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.t)

    def events(self, i: int):
        return self.t[i], self.c[i]


def _batch(name: str, cfg, n: int, args, steps: int | None = None) -> tuple[torch.Tensor, float]:
    """One batch of ``n`` inputs and the seconds spent binning it (0 for images)."""
    if name == "fmnist":
        return torch.rand(n, 1, 28, 28), 0.0
    d = cfg.data
    if name == "dvs-gesture":
        side = d.sensor_size // d.downsample
        src = _Synthetic(n, args.dvs_events, 500_000, 2 * side * side)
        events = EventSet(src, np.zeros(n), (2, side, side), steps or d.num_steps, d.dt_us)
    else:
        src = _Synthetic(n, args.shd_events, 1_000_000, d.num_channels)
        events = EventSet(src, np.zeros(n), (d.num_channels,), steps or d.num_steps, d.dt_us)
    t0 = time.perf_counter()
    x = events.frames()
    return x, time.perf_counter() - t0


def measure(name: str, task, args) -> dict:
    cfg = task.spec.default_config()
    torch.manual_seed(0)
    net = task.build_net(cfg)
    opt = make_optimizer(cfg.train, net.parameters())
    annealer = ThresholdAnnealing(net.lif_layers, cfg.anneal_params())
    bs = cfg.train.batch_size
    x, bin_s = _batch(name, cfg, bs, args)
    y = torch.randint(0, cfg.model.num_classes, (bs,))
    times = []
    for i in range(args.iterations + 1):
        t0 = time.perf_counter()
        s, _ = net(x)
        loss = spike_count_mse(s, y, cfg.train.correct_rate, cfg.train.incorrect_rate)
        update(cfg.train, net, opt, loss)
        annealer.step()
        if i:
            times.append(time.perf_counter() - t0)
    test_steps = getattr(cfg.data, "test_num_steps", None) if name != "fmnist" else None
    xe, _ = _batch(name, cfg, cfg.train.eval_batch_size, args, test_steps)
    net.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        net(xe)
    eval_s = time.perf_counter() - t0
    it = statistics.median(times)
    its_per_epoch = -(-TRAIN_SIZE[name] // bs)
    return {
        "input_shape": list(x.shape),
        "bin_batch_s": bin_s,
        "iteration_s_median": it,
        "iteration_s_all": times,
        "eval_batch": cfg.train.eval_batch_size,
        "eval_input_shape": list(xe.shape),
        "eval_batch_s": eval_s,
        "iterations_per_epoch": its_per_epoch,
        "train_epoch_min_estimate": its_per_epoch * (it + bin_s) / 60,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dvs-events", type=int, default=150_000)
    ap.add_argument("--shd-events", type=int, default=8_000)
    ap.add_argument("--only", choices=("fmnist", "dvs-gesture", "shd"), action="append")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"threads": args.threads, "iterations": args.iterations, "torch": torch.__version__, "results": {}}
    for name, task in (("fmnist", FMNIST_TASK), ("dvs-gesture", DVS_GESTURE_TASK), ("shd", SHD_TASK)):
        if args.only and name not in args.only:
            continue
        r = out["results"][name] = measure(name, task, args)
        print(
            f"{name:12s} input {r['input_shape']}: bin {r['bin_batch_s'] * 1e3:.0f} ms, iteration "
            f"{r['iteration_s_median']:.2f} s, eval batch {r['eval_batch']} {r['eval_batch_s']:.2f} s, "
            f"epoch ~{r['train_epoch_min_estimate']:.0f} min ({r['iterations_per_epoch']} it)",
            flush=True,
        )
    path = Path(__file__).parent / "out" / "tha_datasets.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
