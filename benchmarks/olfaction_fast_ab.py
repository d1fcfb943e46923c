"""Interleaved A/B of the olfaction network's training speed on one CPU thread, for a loaded machine.

    python benchmarks/olfaction_fast_ab.py --a SRC_A [--b SRC_B] [--mode decolle] [--kc 2500]
        [--batches 8] [--warmup 1] [--batch-size 256] [--dtype float32]

``SRC_A`` and ``SRC_B`` are the ``src`` folders of two checkouts (``--b`` defaults to this
checkout's); ``reference`` instead of a folder is this checkout with ``net.fast = False`` (the
reference loop). One worker process per side builds the experiment's default network
(``configs/olfaction.toml``: preset ``small``, the given mode and KC size, seed 0) and trains on
the same batches of the preset's training set; the workers take turns, one batch at a time, so that
both see the same load (the other processes on a shared machine change it on the scale of
minutes). Prints each side's samples per CPU second (median over the timed batches, process CPU
time), the median of the per-batch ratios B / A, and a sha256 of each side's trained weights,
biases and optimizer state: equal digests are the same training, bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(mode: str, kc: int, batch_size: int, dtype: str, reference: bool) -> int:
    import time

    import numpy as np
    import torch

    from spikeforge.experiments.olfaction import split_data
    from spikeforge.experiments.olfaction_config import OlfactionConfig
    from spikeforge.models.olfaction import OlfactionNet

    torch.set_num_threads(1)
    base = OlfactionConfig()
    cfg = base.replace(run=base.run.replace(mode=mode, kc=kc, cache_dir="")).resolved()
    data = split_data(cfg)
    net = OlfactionNet(cfg.model, torch.Generator().manual_seed(0)).to_dtype(getattr(torch, dtype))
    if reference:
        net.fast = False
    opt = net.make_optimizer(cfg.run.optimizer, cfg.run.lr)
    order = np.random.default_rng(0).permutation(len(data["x_train"]))
    g = torch.Generator().manual_seed(1)
    k = 0
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        idx = order[(k * batch_size) % len(order) :][:batch_size]
        xb = torch.from_numpy(data["x_train"][idx]).to(getattr(torch, dtype))
        yb = torch.from_numpy(data["y_train"][idx])
        t0 = time.process_time()
        net.run_batch(xb, yb, opt, g)
        k += 1
        print(json.dumps({"cpu": time.process_time() - t0, "n": len(idx)}), flush=True)
    h = hashlib.sha256()
    for name, t in sorted(net.tensors().items()):
        h.update(name.encode() + t.contiguous().numpy().tobytes())
    for i, prm in enumerate(net.trainable()):
        for name, v in sorted(opt.state[prm].items()):
            h.update(f"{i}.{name}".encode() + v.contiguous().numpy().tobytes())
    print(json.dumps({"sha256": h.hexdigest()}), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="src folder of checkout A, or 'reference'")
    ap.add_argument("--b", default=str(HERE.parent / "src"), help="src folder of checkout B, or 'reference'")
    ap.add_argument("--mode", default="decolle", choices=("decolle", "hybrid"))
    ap.add_argument("--kc", type=int, default=2500)
    ap.add_argument("--batches", type=int, default=8, help="timed batches per side")
    ap.add_argument("--warmup", type=int, default=1, help="untimed batches per side first (numba's cache load)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--worker", nargs=5, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        mode, kc, bs, dtype, ref = args.worker
        return worker(mode, int(kc), int(bs), dtype, ref == "1")
    procs = {}
    for side, src in (("A", args.a), ("B", args.b)):
        ref = src == "reference"
        path = str(HERE.parent / "src") if ref else str(Path(src).resolve())
        env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--a", "-", "--worker"]
        cmd += [args.mode, str(args.kc), str(args.batch_size), args.dtype, "1" if ref else "0"]
        procs[side] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(side):
        p = procs[side]
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write("1\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())

    for p in procs.values():
        assert p.stdout is not None
        json.loads(p.stdout.readline())  # ready
    for _ in range(args.warmup):
        for side in procs:
            ask(side)
    rate: dict[str, list[float]] = {"A": [], "B": []}
    for i in range(args.batches):
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            r = ask(side)
            rate[side].append(r["n"] / r["cpu"])
    digests = {}
    for side, p in procs.items():
        assert p.stdin is not None and p.stdout is not None
        p.stdin.close()
        digests[side] = json.loads(p.stdout.readline())["sha256"]
        p.wait()
    for side, src in (("A", args.a), ("B", args.b)):
        print(f"{side} ({src}): {statistics.median(rate[side]):.1f} samples per CPU second; sha256 {digests[side]}")
    ratios = [b / a for a, b in zip(rate["A"], rate["B"])]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(
        f"{args.mode}, KC {args.kc}, batch {args.batch_size}, {args.dtype}, {args.batches} batches each: "
        f"median speed B / A = {statistics.median(ratios):.2f} (quartiles {q[0]:.2f}, {q[2]:.2f}); "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print("same results" if digests["A"] == digests["B"] else "RESULTS DIFFER")
    return 0


if __name__ == "__main__":
    sys.exit(main())
