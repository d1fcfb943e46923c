"""CPU time per training example of the compiled engine, and a fingerprint of the result.

    python benchmarks/ab_dc_examples.py N K [integration]

Trains the default Diehl & Cook network (seed 0) on MNIST training images 0..K (image 0 is a
warm-up, not timed) and prints the CPU ms per example (``time.process_time``) with the final
weight sum and mean theta at full precision. Run it with two checkouts in turn (``PYTHONPATH``)
for an interleaved A/B comparison: equal fingerprints mean the same run, bit for bit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n, k = int(argv[0]), int(argv[1])
    extra = {"exc": {"integration": argv[2]}, "inh": {"integration": argv[2]}} if len(argv) > 2 else {}
    sys.path.insert(0, str(HERE))
    from speed_vs_brian2 import default_mnist, load_images

    from spikeforge.engines import example_key, make_engine
    from spikeforge.models.diehl_cook import DiehlCookConfig, init_state

    images = load_images(default_mnist(), k + 1)
    cfg = DiehlCookConfig.from_dict({"network": {"n_neurons": n}, **extra})
    eng = make_engine("numba", cfg, init_state(cfg, np.random.default_rng(0)), seed=0)
    eng.present(images[:1], learning=True, keys=[example_key(0, 0, 0, 0)])
    p0 = time.process_time()
    for i in range(1, k + 1):
        eng.present(images[i : i + 1], learning=True, keys=[example_key(0, 0, 0, i)])
    cpu = (time.process_time() - p0) / k
    w = eng.export_state()
    print(f"N={n} cpu ms/example {cpu * 1e3:.2f} sum W {w.weights.sum():.12g} theta {w.theta.mean():.12g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
