"""Diehl & Cook (2015) in Brian2 runtime mode, for timing against spikeforge.

Runs inside its own virtual environment (Brian2 2.9 needs numpy < 2.3); it never imports spikeforge.
``benchmarks/speed_vs_brian2.py`` creates that environment and calls this script; to run it alone::

    benchmarks/.venv-brian2/bin/python benchmarks/brian2_diehl_cook.py --neurons 400 --examples 20 \
        --target cython --mnist ../shared/data/mnist

The network is written from the equations and parameter values of the original Brian 1 code as
summarised in the project's reference (shared/reference/diehl_cook.md, §2), with the same settings
spikeforge uses by default:

- dt 0.5 ms, forward Euler; each example is 350 ms of Poisson input (PoissonGroup, rate pixel/8 Hz
  times an intensity that starts at 2, i.e. pixel/4 Hz) then 150 ms without input; the state of the
  network is never reset between examples.
- Excitatory layer Ae: conductance LIF, v_rest -65 mV, v_reset -65 mV, threshold theta - 72 mV
  (theta starts at 20 mV, +0.05 mV per spike, tau_theta 1e7 ms), tau_m 100 ms, E_exc 0 mV,
  E_inh -100 mV, tau_ge 1 ms, tau_gi 2 ms; refractory 5 ms as a spike block only (v keeps
  integrating, as in the Brian 1 original). Initial v = v_rest - 40 mV.
- Inhibitory layer Ai: v_rest -60 mV, v_reset -45 mV, threshold -40 mV, tau_m 10 ms, E_inh -85 mV,
  refractory 2 ms with v held at v_reset. Initial v = v_rest - 40 mV.
- X->Ae all-to-all with delays U[0, 10) ms and the triplet STDP rule (traces set to 1 on a spike;
  tau_pre 20 ms, tau_post1 20 ms, tau_post2 40 ms; pre: w -= 1e-4 post1; post:
  w += 1e-2 pre post2(before the spike); w clipped to [0, 1]); Ae->Ai one-to-one 10.4;
  Ai->Ae all-but-self 17.0.
- Before every presentation (retries included) each column of X->Ae is scaled to sum to 78.
- Retry rule: if Ae fires fewer than 5 spikes during the 350 ms, the intensity goes up by 1 (+pixel/8
  Hz), the network rests 150 ms and the same image is presented again (at most ``--max-retries``
  times, 30 as in spikeforge's default).

Timing: the first presentation (image 0) is a warm-up that includes Brian2's code generation and,
for the cython target, compilation; it is timed and reported separately. Then ``--examples`` images
(1..K) are timed one by one. The JSON result goes to stdout (last line) and to ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import struct
import sys
import time

import numpy as np


def read_idx_images(path: str, limit: int) -> np.ndarray:
    """The first ``limit`` images of a (gzipped) IDX3 file as uint8 ``[limit, 784]``."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        magic, n, rows, cols = struct.unpack(">IIII", fh.read(16))
        if magic != 0x0803:
            raise ValueError(f"{path}: not an IDX3 ubyte file (magic {magic:#x})")
        if limit > n:
            raise ValueError(f"{path} holds {n} images, {limit} asked for")
        data = fh.read(limit * rows * cols)
    return np.frombuffer(data, np.uint8).reshape(limit, rows * cols)


def find_images(mnist: str) -> str:
    for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"):
        p = os.path.join(mnist, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"no train-images-idx3-ubyte(.gz) in {mnist}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process image in MB: ``VmHWM`` from /proc (it starts afresh at
    exec; ``ru_maxrss`` would also count the parent's memory at fork time), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(b2, n: int, n_input: int, init: dict | None, dt_ms: float, generator: bool = False):
    """The Diehl & Cook network as a Brian2 Network; returns (net, handles)."""
    ms, mV, Hz = b2.ms, b2.mV, b2.Hz
    b2.defaultclock.dt = dt_ms * ms

    exc_eqs = """
    dv/dt = ((-65*mV - v) + ge*(0*mV - v) + gi*(-100*mV - v)) / (100*ms) : volt
    dge/dt = -ge / (1*ms) : 1
    dgi/dt = -gi / (2*ms) : 1
    dtheta/dt = -theta / (1e7*ms) : volt
    """
    exc = b2.NeuronGroup(
        n,
        exc_eqs,
        threshold="v > theta - 72*mV",
        reset="v = -65*mV\ntheta += 0.05*mV",
        refractory=5 * ms,
        method="euler",
        name="Ae",
    )
    exc.v = (-65 - 40) * mV
    exc.theta = (init["theta"] * mV) if init is not None else 20 * mV

    inh_eqs = """
    dv/dt = ((-60*mV - v) + ge*(0*mV - v) + gi*(-85*mV - v)) / (10*ms) : volt (unless refractory)
    dge/dt = -ge / (1*ms) : 1
    dgi/dt = -gi / (2*ms) : 1
    """
    inh = b2.NeuronGroup(
        n, inh_eqs, threshold="v > -40*mV", reset="v = -45*mV", refractory=2 * ms, method="euler", name="Ai"
    )
    inh.v = (-60 - 40) * mV

    if generator:  # identical-input check: explicit spikes, set before every presentation
        inp = b2.SpikeGeneratorGroup(n_input, np.zeros(0, int), np.zeros(0) * ms, name="X")
    else:
        inp = b2.PoissonGroup(n_input, rates=np.zeros(n_input) * Hz, name="X")

    stdp_model = """
    w : 1
    dpre/dt = -pre / (20*ms) : 1 (event-driven)
    dpost1/dt = -post1 / (20*ms) : 1 (event-driven)
    dpost2/dt = -post2 / (40*ms) : 1 (event-driven)
    """
    # on a pre spike (at its arrival, after the synaptic delay): conduct, set the pre trace, depress.
    on_pre = """
    ge_post += w
    pre = 1
    w = clip(w - 0.0001 * post1, 0, 1)
    """
    # on a post spike: potentiate with the slow trace as it was just before this spike (post2 is
    # read before it is set to 1), then set both post traces.
    on_post = """
    w = clip(w + 0.01 * pre * post2, 0, 1)
    post1 = 1
    post2 = 1
    """
    xe = b2.Synapses(inp, exc, model=stdp_model, on_pre=on_pre, on_post=on_post, method="euler", name="XeAe")
    xe.connect()
    si, sj = np.asarray(xe.i[:]), np.asarray(xe.j[:])
    if init is not None:
        w0 = init["weights"]
        d0 = init["delays"].astype(np.float64) * dt_ms  # steps -> ms
    else:
        rng = np.random.default_rng(0)
        w0 = np.clip((rng.random((n_input, n)) + 0.01) * 0.3, 0, 1)
        d0 = rng.random((n_input, n)) * 10.0
    xe.w[:] = w0[si, sj]
    xe.delay[:] = d0[si, sj] * ms

    ei = b2.Synapses(exc, inh, on_pre="ge_post += 10.4", name="AeAi")
    ei.connect(j="i")
    ie = b2.Synapses(inh, exc, on_pre="gi_post += 17.0", name="AiAe")
    ie.connect(condition="i != j")

    mon = b2.SpikeMonitor(exc, record=False, name="Ae_count")
    net = b2.Network(exc, inh, inp, xe, ei, ie, mon)
    return net, dict(exc=exc, inh=inh, inp=inp, xe=xe, mon=mon, post_index=sj, n=n)


def normalize(h, total=78.0):
    """Scale every column of X->Ae (the inputs of one excitatory neuron) to sum to ``total``."""
    xe, sj, n = h["xe"], h["post_index"], h["n"]
    w = np.asarray(xe.w[:])
    sums = np.bincount(sj, weights=w, minlength=n)
    factors = np.divide(total, sums, out=np.ones_like(sums), where=sums > 0)
    xe.w[:] = w * factors[sj]


def present(b2, net, h, image, example_ms, rest_ms, max_retries, min_spikes=5):
    """One example with the retry rule; returns (spike counts of the last attempt, attempts)."""
    intensity = 2.0
    for attempt in range(max_retries + 1):  # noqa: B007 (returned after the loop)
        normalize(h)
        h["inp"].rates = image * (intensity / 8.0) * b2.Hz
        before = np.asarray(h["mon"].count[:]).copy()
        net.run(example_ms * b2.ms)
        counts = np.asarray(h["mon"].count[:]) - before
        h["inp"].rates = 0 * b2.Hz
        net.run(rest_ms * b2.ms)
        if counts.sum() >= min_spikes:
            break
        intensity += 1.0
    return counts, attempt + 1


def run_identical_input(b2, args) -> dict:
    """Equivalence check: drive the network with given input spikes (no Poisson draws, no retry
    rule) and return the excitatory spike counts of every example and the final weights' summary.

    ``--events`` is an npz with ``steps``, ``inputs`` (concatenated over examples) and ``offsets``
    (example k is ``[offsets[k], offsets[k+1])``), steps counted from the start of each 350 ms
    presentation; ``--init`` gives the initial state."""
    with np.load(args.events) as z:
        steps, inputs, offsets = z["steps"], z["inputs"], z["offsets"]
    with np.load(args.init) as z:
        init = {k: z[k] for k in ("weights", "delays", "theta")}
    n_input = init["weights"].shape[0]
    net, h = build(b2, args.neurons, n_input, init, args.dt, generator=True)
    dt = args.dt * b2.ms
    counts_all = []
    t0 = time.perf_counter()
    for k in range(len(offsets) - 1):
        normalize(h)
        a, b = offsets[k], offsets[k + 1]
        start = net.t
        h["inp"].set_spikes(inputs[a:b], start + steps[a:b] * dt)
        before = np.asarray(h["mon"].count[:]).copy()
        net.run(args.example_ms * b2.ms)
        counts_all.append((np.asarray(h["mon"].count[:]) - before).tolist())
        h["inp"].set_spikes(np.zeros(0, int), np.zeros(0) * b2.ms)
        net.run(args.rest_ms * b2.ms)
    w = np.zeros_like(init["weights"])
    w[np.asarray(h["xe"].i[:]), np.asarray(h["xe"].j[:])] = np.asarray(h["xe"].w[:])
    return {
        "mode": "identical_input",
        "target": args.target,
        "n_neurons": args.neurons,
        "examples": len(offsets) - 1,
        "seconds": time.perf_counter() - t0,
        "counts": counts_all,
        "theta_mv": (np.asarray(h["exc"].theta_[:]) * 1e3).tolist(),
        "weights_file": args.out + ".weights.npy" if args.out else None,
        "_weights": w,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neurons", type=int, default=400)
    ap.add_argument("--examples", type=int, default=10, help="timed examples after the warm-up")
    ap.add_argument("--target", choices=("numpy", "cython"), default="cython")
    ap.add_argument("--mnist", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))
    ap.add_argument("--init", default=None, help="npz with weights [784,N], delays [784,N] (steps), theta [N] (mV)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dt", type=float, default=0.5)
    ap.add_argument("--example-ms", type=float, default=350.0)
    ap.add_argument("--rest-ms", type=float, default=150.0)
    ap.add_argument("--max-retries", type=int, default=30)
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--events",
        default=None,
        help="identical-input check: npz of input spikes per example (needs --init); "
        "no Poisson draws, no retry rule, no timing",
    )
    args = ap.parse_args(argv)

    t_import = time.perf_counter()
    import brian2 as b2

    t_import = time.perf_counter() - t_import
    b2.prefs.codegen.target = args.target
    b2.seed(args.seed)

    if args.events:
        if not args.init:
            raise SystemExit("--events needs --init")
        res = run_identical_input(b2, args)
        w = res.pop("_weights")
        if args.out:
            np.save(res["weights_file"], w)
            with open(args.out, "w") as fh:
                fh.write(json.dumps(res) + "\n")
        print(json.dumps({k: v for k, v in res.items() if k != "counts"}))
        return 0

    images = read_idx_images(find_images(args.mnist), args.examples + 1).astype(np.float64)
    init = None
    if args.init:
        with np.load(args.init) as z:
            init = {k: z[k] for k in ("weights", "delays", "theta")}
        if init["weights"].shape[1] != args.neurons:
            raise SystemExit(f"--init has {init['weights'].shape[1]} neurons, --neurons is {args.neurons}")

    t0 = time.perf_counter()
    net, h = build(b2, args.neurons, images.shape[1], init, args.dt)
    t_build = time.perf_counter() - t0

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    c0, a0 = present(b2, net, h, images[0], args.example_ms, args.rest_ms, args.max_retries)
    t_warm = time.perf_counter() - t0
    # which code generation target actually ran (Brian2 reports it in its code object classes)
    codeobjs = sorted(
        {co.__class__.__name__ for obj in net.sorted_objects for co in obj.code_objects if co is not None}
    )

    per_example, cpu_example, attempts, spikes = [], [], [], []
    for k in range(1, args.examples + 1):
        t0, p0 = time.perf_counter(), time.process_time()
        c, a = present(b2, net, h, images[k], args.example_ms, args.rest_ms, args.max_retries)
        per_example.append(time.perf_counter() - t0)
        cpu_example.append(time.process_time() - p0)
        attempts.append(a)
        spikes.append(int(c.sum()))
    total = float(sum(per_example))
    res = {
        "simulator": "brian2",
        "brian2_version": b2.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "target": args.target,
        "code_object_classes": codeobjs,
        "n_neurons": args.neurons,
        "dt_ms": args.dt,
        "example_ms": args.example_ms,
        "rest_ms": args.rest_ms,
        "retry_rule": True,
        "examples": args.examples,
        "images": f"train 1..{args.examples} (warm-up: train 0)",
        "same_initial_state": bool(args.init),
        "load_avg_before": load_before,
        "import_s": t_import,
        "build_s": t_build,
        "warmup_s": t_warm,
        "warmup_attempts": a0,
        "seconds_per_example": total / args.examples,
        "median_seconds_per_example": float(np.median(per_example)),
        "presentations": int(sum(attempts)),
        "seconds_per_presentation": total / sum(attempts),
        "cpu_seconds_per_example": float(sum(cpu_example)) / args.examples,
        "cpu_seconds_per_presentation": float(sum(cpu_example)) / sum(attempts),
        "per_example_s": per_example,
        "per_example_cpu_s": cpu_example,
        "load_avg_after": os.getloadavg(),
        "attempts": attempts,
        "spikes_per_example": spikes,
        "mean_exc_spikes_per_example": float(np.mean(spikes)),
        "warmup_spikes": int(c0.sum()),
        "peak_rss_mb": peak_rss_mb(),
    }
    line = json.dumps(res)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(line + "\n")
    print(line)


if __name__ == "__main__":
    sys.exit(main())
