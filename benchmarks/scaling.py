"""spikeforge's compiled engine: time per example over real training, and peak memory, against size.

    python benchmarks/scaling.py [--sizes 100 400 1600 6400] [--examples 2000] [--block 500]
                                 [--infer-examples 200] [--repeats 1] [--integration euler_substep]

For every size N (excitatory = inhibitory neurons) a fresh Python process (so that memory figures
do not mix) builds the Diehl & Cook network (``DiehlCookConfig`` defaults: dt 0.5 ms, 350 ms input +
150 ms rest, delays U[0, 10) ms, triplet STDP, retry rule on, the default integration
``euler_substep`` unless ``--integration`` says otherwise), presents one warm-up example with
learning and one without (they include numba's compilation or cache load and are reported
separately), then times

- ``--examples`` consecutive training examples (STDP on, theta adapting; MNIST train images 1..K),
  one by one, reported per block of ``--block`` examples: median, 10th and 90th percentile of the
  wall and CPU (``process_time``) time per example, spikes per presentation, attempts per example,
  mean theta at the block's end and the integration counters (``engine.stability()``: neuron-steps
  split into Euler substeps, unstable Euler steps). Speed measured over the first few examples only
  hides what training does later (issue 10: N = 1600 and 6400 locked into refractory-limited firing
  after a few hundred examples under forward Euler);
- ``--infer-examples`` inference examples (STDP off, theta frozen; the images after them).

Memory: the process's resident-set high-water mark (``VmHWM`` from /proc/self/status, which starts
afresh at exec; ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` elsewhere) at the end, and the resident
size right after importing spikeforge (Python + numpy + numba + torch, before any network exists),
so that the network's own share is the difference.

Prints a table and writes ``benchmarks/out/scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    v = _status_mb("VmHWM")
    return v if v is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def default_mnist() -> Path:
    for p in (REPO.parent / "shared" / "data" / "mnist", REPO / "data" / "mnist"):
        if p.exists():
            return p
    return REPO.parent / "shared" / "data" / "mnist"


def worker(
    n: int, examples: int, mnist: Path, seed: int, block: int, infer_examples: int, integration: str, bound
) -> dict:
    """One size, in this (fresh) process."""
    t_imp = time.perf_counter()
    import numpy as np

    from spikeforge.engines import example_key, make_engine
    from spikeforge.models.diehl_cook import DiehlCookConfig, init_state

    t_imp = time.perf_counter() - t_imp
    rss_imports = _status_mb("VmRSS")

    sys.path.insert(0, str(HERE))
    from speed_vs_brian2 import load_images  # same loader as the Brian2 comparison

    images = load_images(mnist, examples + infer_examples + 2)
    layer = {"integration": integration} | ({} if bound is None else {"euler_factor_bound": bound})
    cfg = DiehlCookConfig.from_dict({"network": {"n_neurons": n}, "exc": layer, "inh": layer})
    state = init_state(cfg, np.random.default_rng(seed))
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    eng = make_engine("numba", cfg, state, seed=seed)
    t_engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    eng.present(images[:1], learning=True, keys=[example_key(seed, 0, 0, 0)])
    warm_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    eng.present(images[-1:], learning=False, keys=[example_key(seed, 2, 0, 0)])
    warm_infer = time.perf_counter() - t0

    def timed(first, count, learning, stage):
        per, cpu, att, spk, blocks = [], [], [], [], []
        for k in range(first, first + count):
            t0, p0 = time.perf_counter(), time.process_time()
            c, a = eng.present(images[k : k + 1], learning=learning, keys=[example_key(seed, stage, 0, k)])
            per.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - p0)
            att.append(int(a[0]))
            spk.append(int(c.sum()))
            if learning and (len(per) % block == 0 or len(per) == count):
                blocks.append(block_row(per, cpu, att, spk, len(per) - (len(per) - 1) % block - 1))
                print(json.dumps({"block": blocks[-1]}), file=sys.stderr, flush=True)
        return {
            "seconds_per_example": sum(per) / count,
            "median_seconds_per_example": statistics.median(per),
            "cpu_seconds_per_example": sum(cpu) / count,
            "median_cpu_seconds_per_example": statistics.median(cpu),
            "seconds_per_presentation": sum(per) / sum(att),
            "mean_attempts": sum(att) / count,
            "mean_exc_spikes_per_example": sum(spk) / count,
            "blocks": blocks,
        }

    def block_row(per, cpu, att, spk, start):
        sl = slice(start, len(per))
        q = statistics.quantiles
        return {
            "examples": [start + 1, len(per)],
            "wall_ms_median": 1e3 * statistics.median(per[sl]),
            "wall_ms_p10_p90": [1e3 * x for x in q(per[sl], n=10)[::8]] if len(per[sl]) > 1 else None,
            "cpu_ms_median": 1e3 * statistics.median(cpu[sl]),
            "cpu_ms_mean": 1e3 * statistics.fmean(cpu[sl]),
            "cpu_ms_p10_p90": [1e3 * x for x in q(cpu[sl], n=10)[::8]] if len(cpu[sl]) > 1 else None,
            "spikes_per_presentation": sum(spk[sl]) / sum(att[sl]),
            "max_spikes_per_presentation": max(spk[sl]),
            "attempts_per_example": sum(att[sl]) / len(att[sl]),
            "mean_theta_mv": float(eng.theta.mean()),
            "max_theta_mv": float(eng.theta.max()),
            "substep_neuron_steps": eng.stability()["substep_neuron_steps"],
            "unstable_neuron_steps": eng.stability()["unstable_neuron_steps"],
            "load_avg": os.getloadavg()[0],
        }

    train = timed(1, examples, True, 0)
    infer = timed(1 + examples, infer_examples, False, 2)
    return {
        "n_neurons": n,
        "examples": examples,
        "infer_examples": infer_examples,
        "integration": integration,
        "euler_factor_bound": cfg.exc.euler_factor_bound,
        "stability": eng.stability(),
        "import_s": t_imp,
        "engine_build_s": t_engine,
        "warmup_train_s": warm_train,
        "warmup_infer_s": warm_infer,
        "train": train,
        "infer": infer,
        "rss_after_imports_mb": rss_imports,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "weights_mb": state.weights.nbytes / 2**20,
        "delays_mb": state.delays.nbytes / 2**20,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
    }


def print_blocks(res: dict) -> None:
    """One line per block of training examples: the spread of the time per example over training."""
    print(
        f"    {'examples':>11s} {'wall ms med':>11s} {'cpu ms med':>10s} {'cpu p10-p90':>13s} "
        f"{'spk/pres':>8s} {'max spk':>7s} {'att/ex':>6s} {'theta mV':>8s} {'substeps':>8s} {'unstable':>8s} "
        f"{'load':>5s}"
    )
    for b in res["train"]["blocks"]:
        p10, p90 = b["cpu_ms_p10_p90"] or (float("nan"), float("nan"))
        print(
            f"    {b['examples'][0]:5d}-{b['examples'][1]:<5d} {b['wall_ms_median']:11.2f} {b['cpu_ms_median']:10.2f} "
            f"{p10:6.2f}-{p90:<6.2f} {b['spikes_per_presentation']:8.1f} {b['max_spikes_per_presentation']:7d} "
            f"{b['attempts_per_example']:6.2f} {b['mean_theta_mv']:8.3f} {b['substep_neuron_steps']:8d} "
            f"{b['unstable_neuron_steps']:8d} {b['load_avg']:5.1f}",
            flush=True,
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1600, 6400])
    ap.add_argument("--examples", type=int, default=2000, help="timed consecutive training examples per size")
    ap.add_argument("--block", type=int, default=500, help="training examples per reported block")
    ap.add_argument("--infer-examples", type=int, default=200, help="timed inference examples per size")
    ap.add_argument(
        "--integration",
        choices=("euler_substep", "euler", "exponential"),
        default="euler_substep",
        help="membrane integration of both layers (euler: the released code's, which locks at 1600/6400)",
    )
    ap.add_argument("--repeats", type=int, default=1, help="fresh processes per size; medians are reported")
    ap.add_argument("--substep-bound", type=float, default=None, help="euler_factor_bound (default: the model's)")
    ap.add_argument("--mnist", type=Path, default=default_mnist())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT / "scaling.json")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker is not None:
        a = args
        res = worker(a.worker, a.examples, a.mnist, a.seed, a.block, a.infer_examples, a.integration, a.substep_bound)
        print(json.dumps(res))
        return 0

    OUT.mkdir(parents=True, exist_ok=True)
    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mach = {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(f"machine: {mach['nproc']} CPUs, {cpu}; load average {mach['load_avg']}; {mach['date_utc']}", flush=True)
    results = {}
    for rep in range(args.repeats):
        for n in args.sizes:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                str(n),
                "--examples",
                str(args.examples),
                "--block",
                str(args.block),
                "--infer-examples",
                str(args.infer_examples),
                "--integration",
                args.integration,
                *(["--substep-bound", str(args.substep_bound)] if args.substep_bound is not None else []),
                "--mnist",
                str(args.mnist),
                "--seed",
                str(args.seed),
            ]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # its stderr (block lines) passes through
            if r.returncode != 0:
                raise RuntimeError(f"worker for N={n} failed (its error is above)")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            results.setdefault(n, []).append(res)
            print(
                f"  run {rep + 1} N={n}: train {res['train']['seconds_per_example'] * 1e3:.1f} ms/example, "
                f"infer {res['infer']['seconds_per_example'] * 1e3:.1f} ms/example, "
                f"peak RSS {res['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            print_blocks(res)

    def m(rs, part, key):
        return statistics.median(r[part][key] for r in rs)

    rows = []
    print()
    print(
        f"{'N':>6s} {'train s/ex':>11s} {'train cpu':>10s} {'attempts':>8s} {'exc spk/ex':>10s} "
        f"{'infer s/ex':>11s} {'infer cpu':>10s} {'warm-up s':>9s} {'RSS imports':>11s} {'peak RSS MB':>11s}"
    )
    for n in args.sizes:
        rs = results[n]
        row = {
            "n_neurons": n,
            "train_seconds_per_example": m(rs, "train", "seconds_per_example"),
            "train_cpu_seconds_per_example": m(rs, "train", "cpu_seconds_per_example"),
            "train_mean_attempts": m(rs, "train", "mean_attempts"),
            "train_mean_exc_spikes": m(rs, "train", "mean_exc_spikes_per_example"),
            "infer_seconds_per_example": m(rs, "infer", "seconds_per_example"),
            "infer_cpu_seconds_per_example": m(rs, "infer", "cpu_seconds_per_example"),
            "warmup_train_s": statistics.median(r["warmup_train_s"] for r in rs),
            "rss_after_imports_mb": statistics.median(r["rss_after_imports_mb"] or 0 for r in rs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
        }
        rows.append(row)
        print(
            f"{n:6d} {row['train_seconds_per_example']:11.4f} {row['train_cpu_seconds_per_example']:10.4f} "
            f"{row['train_mean_attempts']:8.2f} {row['train_mean_exc_spikes']:10.1f} "
            f"{row['infer_seconds_per_example']:11.4f} {row['infer_cpu_seconds_per_example']:10.4f} "
            f"{row['warmup_train_s']:9.2f} {row['rss_after_imports_mb']:11.0f} {row['peak_rss_mb']:11.0f}"
        )
    mach["load_avg_end"] = os.getloadavg()
    out = {
        "machine": mach,
        "examples": args.examples,
        "repeats": args.repeats,
        "seed": args.seed,
        "block": args.block,
        "integration": args.integration,
        "settings": "DiehlCookConfig defaults (dt 0.5 ms, 350+150 ms, delays 0-10 ms, triplet STDP, retry rule on)",
        "table": rows,
        "runs": {str(k): v for k, v in results.items()},
    }
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
