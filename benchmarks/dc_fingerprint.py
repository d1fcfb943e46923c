"""A bit-for-bit fingerprint of a Diehl & Cook training run of the compiled engine.

    python benchmarks/dc_fingerprint.py N K [--profile default|released]

Trains the network (seed 0) on MNIST training images 0..K-1, then runs 5 inference examples, and
prints the sha256 of the final weights, theta and of every example's spike counts and attempts,
with the CPU ms per training example. Run it with two checkouts in turn (``PYTHONPATH``): equal
hashes mean the same run, bit for bit (used to check that a speed-up changes no result).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("k", type=int)
    ap.add_argument("--profile", choices=["default", "released"], default="default")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from speed_vs_brian2 import default_mnist, load_images

    from spikeforge.engines import example_key, make_engine
    from spikeforge.models.diehl_cook import DiehlCookConfig, init_state

    images = load_images(default_mnist(), a.k + 5)
    extra = {"exc": {"integration": "euler"}, "inh": {"integration": "euler"}} if a.profile == "released" else {}
    cfg = DiehlCookConfig.from_dict({"network": {"n_neurons": a.n}, **extra})
    eng = make_engine("numba", cfg, init_state(cfg, np.random.default_rng(0)), seed=0)
    h_counts = hashlib.sha256()
    p0 = time.process_time()
    for i in range(a.k):
        c, att = eng.present(images[i : i + 1], learning=True, keys=[example_key(0, 0, 0, i)])
        h_counts.update(np.ascontiguousarray(c, np.int64).tobytes() + np.ascontiguousarray(att, np.int64).tobytes())
    cpu = (time.process_time() - p0) / a.k
    for i in range(a.k, a.k + 5):
        c, att = eng.present(images[i : i + 1], learning=False, keys=[example_key(0, 1, 0, i)])
        h_counts.update(np.ascontiguousarray(c, np.int64).tobytes() + np.ascontiguousarray(att, np.int64).tobytes())
    s = eng.export_state()
    hw = hashlib.sha256(np.ascontiguousarray(s.weights).tobytes()).hexdigest()[:16]
    ht = hashlib.sha256(np.ascontiguousarray(s.theta).tobytes()).hexdigest()[:16]
    hc = h_counts.hexdigest()[:16]
    print(f"N={a.n} K={a.k} {a.profile}: W {hw} theta {ht} counts {hc} cpu {cpu * 1e3:.2f} ms/ex")
    return 0


if __name__ == "__main__":
    sys.exit(main())
