"""Where the compiled Diehl & Cook engine spends its time per training example.

    python benchmarks/profile_dc.py [--sizes 400 6400] [--examples 200] [--warmup 50]

For every size, in a fresh process: the default network (seed 0) trains on MNIST images 1..W
(warm-up: numba's cache load, the first examples), then on the next ``--examples`` images with

- the compiled loop built with section timers (``kernel_for(rule, profile=True)``: the CPU's
  cycle counter read around each section of every step, ``engines.cycles.SECTIONS``);
- Python-side timers around the Poisson input generation, the weight normalisation (with the
  rebuild of the conductances in flight) and the loop calls; the rest of ``present`` is Python
  overhead (the protocol, the retry rule, checks).

The cycle counter runs at a fixed rate and also counts time when the process is descheduled, so the
loop's sections are reported as shares of the loop's CPU time (``time.process_time`` around each
call), which on a shared machine is the figure that means something. Prints a table (ms of CPU
per example) and writes ``benchmarks/out/profile_dc.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def worker(n: int, examples: int, warmup: int, mnist: Path, seed: int) -> dict:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from speed_vs_brian2 import load_images

    from spikeforge.engines import dc_numba, example_key, make_engine
    from spikeforge.engines.cycles import SECTIONS
    from spikeforge.models.diehl_cook import DiehlCookConfig, init_state

    images = load_images(mnist, warmup + examples + 1)
    cfg = DiehlCookConfig.from_dict({"network": {"n_neurons": n}})
    eng = make_engine("numba", cfg, init_state(cfg, np.random.default_rng(seed)), seed=seed)
    eng.profile = True
    eng._bind()
    cpu = {"poisson": 0.0, "normalize": 0.0, "loop": 0.0}

    def timed(name, f):
        def g(*a, **k):
            t0 = time.process_time()
            try:
                return f(*a, **k)
            finally:
                cpu[name] += time.process_time() - t0

        return g

    dc_numba.poisson_events = timed("poisson", dc_numba.poisson_events)
    eng.normalize = timed("normalize", eng.normalize)
    eng._run = timed("loop", eng._run)
    for k in range(warmup):
        eng.present(images[k : k + 1], learning=True, keys=[example_key(seed, 0, 0, k)])
    for key in cpu:
        cpu[key] = 0.0
    eng.prof[:] = 0
    attempts = spikes = 0
    t0 = time.process_time()
    for k in range(warmup, warmup + examples):
        c, a = eng.present(images[k : k + 1], learning=True, keys=[example_key(seed, 0, 0, k)])
        attempts += int(a[0])
        spikes += int(c.sum())
    total = time.process_time() - t0
    cyc = eng.prof[: len(SECTIONS)].astype(float)
    share = cyc / cyc.sum()
    per = {name: 1e3 * cpu["loop"] * s / examples for name, s in zip(SECTIONS, share)}
    per["weight normalisation (and in-flight rebuild)"] = 1e3 * cpu["normalize"] / examples
    per["Poisson input generation"] = 1e3 * cpu["poisson"] / examples
    per["Python: protocol, checks, calls"] = 1e3 * (total - sum(cpu.values())) / examples
    return {
        "n_neurons": n,
        "examples": examples,
        "warmup": warmup,
        "cpu_ms_per_example": 1e3 * total / examples,
        "attempts_per_example": attempts / examples,
        "spikes_per_example": spikes / examples,
        "ms_per_example": per,
        "loop_cycle_shares": dict(zip(SECTIONS, share.tolist())),
        "load_avg": os.getloadavg(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[400, 6400])
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--mnist", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT / "profile_dc.json")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.examples, args.warmup, args.mnist, args.seed)))
        return 0
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n), "--examples", str(args.examples)]
        cmd += ["--warmup", str(args.warmup), "--mnist", str(args.mnist), "--seed", str(args.seed)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    names = list(rows[0]["ms_per_example"])
    print(f"{'CPU ms per training example':68s}" + "".join(f"{'N = ' + str(r['n_neurons']):>12s}" for r in rows))
    for name in names:
        print(f"{name:68s}" + "".join(f"{r['ms_per_example'][name]:12.3f}" for r in rows))
    print(f"{'total':68s}" + "".join(f"{r['cpu_ms_per_example']:12.3f}" for r in rows))
    print(f"load average during the runs: {[r['load_avg'][0] for r in rows]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
