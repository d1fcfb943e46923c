"""Finely interleaved A/B of the compiled Diehl & Cook engine of two checkouts, for a loaded machine.

    python benchmarks/ab_dc_interleaved.py --a SRC_A --b SRC_B [--neurons 400] [--examples 300]
        [--chunk 10] [--warmup 20]

``SRC_A`` and ``SRC_B`` are the ``src`` folders of two checkouts. One worker process per side
(``PYTHONPATH`` set to its folder) builds the default network (seed 0) and trains on the same MNIST
training images; the workers take turns, ``--chunk`` examples at a time, so that both see the same
load over the run (the per-run A/B of ``ab_dc_examples.py`` compares runs minutes apart, and the
load of a shared machine changes on that scale). Prints each side's CPU ms per training example
(``time.process_time`` over the timed chunks), the median of the per-chunk ratios B / A, and each
side's final weight sum and mean theta at full precision (equal: the same run, bit for bit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(n: int, total: int) -> int:
    import time

    import numpy as np

    sys.path.insert(0, str(HERE))
    from speed_vs_brian2 import default_mnist, load_images

    from spikeforge.engines import example_key, make_engine
    from spikeforge.models.diehl_cook import DiehlCookConfig, init_state

    images = load_images(default_mnist(), total)
    cfg = DiehlCookConfig.from_dict({"network": {"n_neurons": n}})
    eng = make_engine("numba", cfg, init_state(cfg, np.random.default_rng(0)), seed=0)
    k = 0
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        m = int(line)
        t0 = time.process_time()
        for i in range(k, k + m):
            eng.present(images[i : i + 1], learning=True, keys=[example_key(0, 0, 0, i)])
        k += m
        s = eng.export_state()
        out = {"cpu": time.process_time() - t0, "w": float(s.weights.sum()), "theta": float(s.theta.mean())}
        print(json.dumps(out), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", type=Path, required=True, help="src folder of checkout A")
    ap.add_argument("--b", type=Path, required=True, help="src folder of checkout B")
    ap.add_argument("--neurons", type=int, default=400)
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--worker", type=int, nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        return worker(*args.worker)
    total = args.warmup + args.examples
    procs = {}
    for side, src in (("A", args.a), ("B", args.b)):
        env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--a", "-", "--b", "-"]
        cmd += ["--worker", str(args.neurons), str(total)]
        procs[side] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(side, m):
        p = procs[side]
        p.stdin.write(f"{m}\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())

    for p in procs.values():
        json.loads(p.stdout.readline())  # ready (imports and numba's cache load done)
    for side in procs:
        ask(side, args.warmup)
    cpu = {"A": [], "B": []}
    last = {}
    done = 0
    while done < args.examples:
        m = min(args.chunk, args.examples - done)
        order = ("A", "B") if (done // args.chunk) % 2 == 0 else ("B", "A")
        for side in order:
            r = ask(side, m)
            cpu[side].append(r["cpu"] / m)
            last[side] = r
        done += m
    for p in procs.values():
        p.stdin.close()
        p.wait()
    ratios = [b / a for a, b in zip(cpu["A"], cpu["B"])]
    for side, src in (("A", args.a), ("B", args.b)):
        ms = 1e3 * sum(cpu[side]) / len(cpu[side])
        print(f"{side} ({src}): {ms:.3f} CPU ms per example; sum W {last[side]['w']!r} theta {last[side]['theta']!r}")
    print(
        f"N = {args.neurons}, {args.examples} examples in chunks of {args.chunk}: median B / A = "
        f"{statistics.median(ratios):.3f} (quartiles {statistics.quantiles(ratios, n=4)[0]:.3f}, "
        f"{statistics.quantiles(ratios, n=4)[2]:.3f}); load {os.getloadavg()[0]:.1f}"
    )
    print("same results" if last["A"] == {**last["B"], "cpu": last["A"]["cpu"]} else "RESULTS DIFFER")
    return 0


if __name__ == "__main__":
    sys.exit(main())
