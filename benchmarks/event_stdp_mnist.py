"""Benchmark: event-based STDP features on full MNIST (accuracy of a linear readout on the 10,000
test images, reconstruction MSE of learned vs random features, and the time of each stage).

    python benchmarks/event_stdp_mnist.py --data-dir ../shared/data/mnist --out runs/bench-event-stdp

runs ``spikeforge event-stdp run`` with the default config (configs/event_stdp.toml) on all
60,000 training and 10,000 test images (extra ``--set section.key=value`` overrides are passed on)
and prints the Markdown rows recorded in docs/benchmarks.md under "Event-based STDP on patches".
Targets (checked here and printed, never asserted in tests): accuracy >= 0.96, and the learned
features' reconstruction MSE clearly below that of random features of the same count.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch

from spikeforge.experiments.event_stdp import load_config, run
from spikeforge.io.checkpoint import atomic_write_json


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", default="runs/bench-event-stdp")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    cfg = load_config(None, args.set, {"data.data_dir": args.data_dir})
    t0 = time.perf_counter()
    res = run(cfg, args.out, threads=args.threads)
    wall = time.perf_counter() - t0
    ok_acc = res["accuracy"] >= 0.96
    ok_rec = res["reconstruction_mse"] < 0.8 * res["reconstruction_mse_random"]
    print()
    print(
        "| features | patch / stride | train images (features) | test accuracy | "
        "recon. MSE learned | recon. MSE random | feature training | activity (70k images) | "
        "readout | total |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {res['features']} | {res['patch_size']}x{res['patch_size']} / {res['stride']} | "
        f"{res['n_train']} ({res['feature_images']}) | **{100 * res['accuracy']:.2f} %** | "
        f"{res['reconstruction_mse']:.4f} | {res['reconstruction_mse_random']:.4f} | "
        f"{res['train_seconds']:.0f} s | {res['activity_seconds']:.0f} s | "
        f"{res['readout_seconds']:.0f} s | {wall:.0f} s |"
    )
    print()
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{res['threads']} thread(s); targets: accuracy >= 96 %: {'met' if ok_acc else 'NOT met'}; "
        f"learned MSE < 0.8 x random: {'met' if ok_rec else 'NOT met'}"
    )
    atomic_write_json(f"{args.out}/bench.json", {**res, "wall_seconds": wall})
    return 0


if __name__ == "__main__":
    sys.exit(main())
