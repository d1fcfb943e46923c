"""spikeforge against Brian2 (runtime mode) on the Diehl & Cook network, side by side, in one run.

    python benchmarks/speed_vs_brian2.py [--neurons 400] [--examples 20] [--targets cython numpy]
                                         [--repeats 3] [--mnist ../shared/data/mnist]

What it does:

1. creates (first time) or reuses a virtual environment ``benchmarks/.venv-brian2`` with
   ``brian2==2.9.*``, ``numpy<2.3`` (Brian2 2.9 calls ``ndarray.ptp``, removed in numpy 2.3),
   ``cython`` and ``setuptools`` (the cython target compiles extension modules: it needs Cython,
   setuptools and a C compiler). Brian2 is never a dependency of spikeforge.
2. draws one initial network state with spikeforge (weights, delays, theta; seed ``--seed``) and
   writes it to ``benchmarks/out/``, so both simulators start from the same network;
3. runs ``benchmarks/brian2_diehl_cook.py`` in that environment, once per target and repeat, as a
   subprocess, and spikeforge's compiled (numba) engine in this process, on the same MNIST training
   images (image 0 is a warm-up that is excluded from the timing and reported separately, then
   images 1..K are timed one by one). Runs are interleaved (Brian2 targets, then spikeforge, per
   repeat) so that a change in machine load hits both sides.
4. prints a table and the per-example ratio, and writes everything to
   ``benchmarks/out/speed_vs_brian2_N{n}.json``.

Settings on both sides: the original Diehl & Cook model (dt 0.5 ms, forward Euler, 350 ms of Poisson
input + 150 ms rest, X->Ae delays U[0, 10) ms, triplet STDP on, column normalisation to 78 before
every presentation, adaptive theta) **with the retry rule on both sides** (fewer than 5 excitatory
spikes: present the same image again with +pixel/8 Hz). Because the two sides draw different Poisson
spikes, they may retry different examples; the ratio is therefore given per presentation (one 500 ms
attempt) as well as per example. Times are wall-clock (``perf_counter``) and CPU time of the process
(``process_time``); the CPU time is less sensitive to other jobs on a shared machine.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import resource
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv-brian2"
BRIAN2_SCRIPT = HERE / "brian2_diehl_cook.py"
OUT = HERE / "out"
BRIAN2_REQS = ["brian2==2.9.*", "numpy<2.3", "cython", "setuptools"]


def default_mnist() -> Path:
    for p in (REPO.parent / "shared" / "data" / "mnist", REPO / "data" / "mnist"):
        if p.exists():
            return p
    return REPO.parent / "shared" / "data" / "mnist"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_brian2_venv(venv: Path) -> str:
    """Create the Brian2 environment if needed; return the Brian2 version it holds."""
    py = venv_python(venv)
    probe = [str(py), "-c", "import brian2, numpy, Cython; print(brian2.__version__)"]
    if py.exists():
        r = subprocess.run(probe, capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip().startswith("2.9"):
            return r.stdout.strip()
    print(f"creating {venv} with {' '.join(BRIAN2_REQS)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *BRIAN2_REQS], check=True)
    r = subprocess.run(probe, capture_output=True, text=True, check=True)
    return r.stdout.strip()


def load_images(mnist: Path, n: int) -> np.ndarray:
    """The first ``n`` MNIST training images as uint8 ``[n, 784]``."""
    try:
        from spikeforge.data.mnist import load_mnist
    except ImportError:  # older checkouts: read the IDX file directly
        load_mnist = None
    if load_mnist is not None:
        images, _ = load_mnist(mnist, "train", limit=n)
        return np.ascontiguousarray(images.reshape(n, -1), dtype=np.uint8)
    path = mnist / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as fh:
        _, total, rows, cols = struct.unpack(">IIII", fh.read(16))
        return np.frombuffer(fh.read(n * rows * cols), np.uint8).reshape(n, rows * cols)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (``VmHWM``; ``ru_maxrss`` where /proc is absent)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def run_spikeforge(cfg, state, images, seed, engine="numba") -> dict:
    """Time one spikeforge engine on images[1:] after a warm-up on images[0]; the final weights and
    theta are returned under ``"final"`` (not written to JSON)."""
    from spikeforge.engines import example_key, make_engine

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    eng = make_engine(engine, cfg, state, seed=seed, device="cpu" if engine == "torch" else None)
    c0, a0 = eng.present(images[:1], learning=True, keys=[example_key(seed, 0, 0, 0)])
    warm = time.perf_counter() - t0
    per, cpu, attempts, spikes = [], [], [], []
    for k in range(1, len(images)):
        t0, p0 = time.perf_counter(), time.process_time()
        c, a = eng.present(images[k : k + 1], learning=True, keys=[example_key(seed, 0, 0, k)])
        per.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - p0)
        attempts.append(int(a[0]))
        spikes.append(int(c.sum()))
    k = len(per)
    final = eng.export_state()
    return {
        "final": (final.weights, final.theta),
        "simulator": "spikeforge",
        "engine": engine,
        "load_avg_before": load_before,
        "warmup_s": warm,
        "warmup_attempts": int(a0[0]),
        "warmup_spikes": int(c0.sum()),
        "examples": k,
        "seconds_per_example": sum(per) / k,
        "median_seconds_per_example": float(np.median(per)),
        "cpu_seconds_per_example": sum(cpu) / k,
        "presentations": sum(attempts),
        "seconds_per_presentation": sum(per) / sum(attempts),
        "cpu_seconds_per_presentation": sum(cpu) / sum(attempts),
        "per_example_s": per,
        "attempts": attempts,
        "spikes_per_example": spikes,
        "mean_exc_spikes_per_example": float(np.mean(spikes)),
        "load_avg_after": os.getloadavg(),
    }


def run_brian2(py: Path, target: str, args, init_path: Path, tag: str) -> dict:
    out = OUT / f"brian2_{target}_N{args.neurons}_{tag}.json"
    cmd = [
        str(py),
        str(BRIAN2_SCRIPT),
        "--neurons",
        str(args.neurons),
        "--examples",
        str(args.examples),
        "--target",
        target,
        "--mnist",
        str(args.mnist),
        "--init",
        str(init_path),
        "--seed",
        str(args.seed),
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-4000:])
        raise RuntimeError(f"Brian2 ({target}) failed with exit code {r.returncode}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["subprocess_wall_s"] = time.perf_counter() - t0
    return res


def identical_input_check(py: Path, args, cfg, state, images, init_path: Path) -> dict:
    """Drive both simulators with the same input spikes (drawn once by spikeforge's Poisson
    generator), retry rule off, STDP on, and compare excitatory spike counts example by example,
    then the final weights and theta."""
    from spikeforge.encoding.poisson import poisson_events
    from spikeforge.engines import attempt_seed, example_key, make_engine

    proto = cfg.protocol
    k_ex = args.identical_input
    steps, inputs, offsets = [], [], [0]
    for k in range(k_ex):
        rates = images[k].astype(np.float64) * (proto.rate_hz_per_level * proto.input_intensity)
        ptr, idx = poisson_events(
            rates, proto.example_steps, proto.dt_ms, attempt_seed(example_key(args.seed, 0, 0, k), 0)
        )
        steps.append(np.repeat(np.arange(proto.example_steps), np.diff(ptr)))
        inputs.append(idx)
        offsets.append(offsets[-1] + len(idx))
    ev_path = OUT / f"events_N{args.neurons}_K{k_ex}.npz"
    np.savez(ev_path, steps=np.concatenate(steps), inputs=np.concatenate(inputs), offsets=np.array(offsets))

    eng = make_engine("numba", cfg, state, seed=args.seed)
    sf_counts = []
    for k in range(k_ex):
        eng.normalize()
        # offsets[k]..offsets[k + 1] delimit example k
        ptr = np.zeros(proto.example_steps + 1, np.int64)
        np.add.at(ptr, steps[k] + 1, 1)
        sf_counts.append(eng.run_events(np.cumsum(ptr), inputs[k], True))
        eng.rest(True)
    sf_counts = np.array(sf_counts)
    sf_state = eng.export_state()

    target = args.targets[0]
    out = OUT / f"identical_input_{target}_N{args.neurons}_K{k_ex}.json"
    cmd = [
        str(py),
        str(BRIAN2_SCRIPT),
        "--neurons",
        str(args.neurons),
        "--target",
        target,
        "--init",
        str(init_path),
        "--events",
        str(ev_path),
        "--out",
        str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-4000:])
        raise RuntimeError("Brian2 identical-input run failed")
    b2 = json.loads(out.read_text())
    b2_counts = np.array(b2["counts"])
    b2_w = np.load(b2["weights_file"])
    same = np.all(b2_counts == sf_counts, axis=1)
    first_diff = int(np.argmin(same)) if not same.all() else None
    res = {
        "examples": k_ex,
        "neurons": args.neurons,
        "brian2_target": target,
        "input_spikes_per_example": float(np.mean(np.diff(offsets))),
        "examples_with_identical_counts": int(same.sum()),
        "first_example_that_differs": first_diff,
        "brian2_mean_exc_spikes": float(b2_counts.sum(1).mean()),
        "spikeforge_mean_exc_spikes": float(sf_counts.sum(1).mean()),
        "brian2_spikes_per_example": b2_counts.sum(1).tolist(),
        "spikeforge_spikes_per_example": sf_counts.sum(1).tolist(),
        "final_weights_max_abs_diff": float(np.abs(b2_w - sf_state.weights).max()),
        "final_weights_mean_abs_diff": float(np.abs(b2_w - sf_state.weights).mean()),
        "final_theta_max_abs_diff_mv": float(np.abs(np.array(b2["theta_mv"]) - sf_state.theta).max()),
    }
    return res


def fingerprint(weights, theta) -> str:
    """SHA-256 of the final float64 weights and theta (bit-for-bit comparisons across revisions)."""
    h = hashlib.sha256(np.ascontiguousarray(weights, np.float64).tobytes())
    h.update(np.ascontiguousarray(theta, np.float64).tobytes())
    return h.hexdigest()


def spikeforge_only(args, cfg, state, images) -> int:
    """Only the spikeforge side: time it and write its final weights and theta with a SHA-256."""
    import torch

    torch.set_num_threads(1)
    runs = []
    for rep in range(args.repeats):
        r = run_spikeforge(cfg, state, images, args.seed, args.engine)
        w, th = r.pop("final")
        r["final_sha256"] = fingerprint(w, th)
        runs.append(r)
        print(
            f"  run {rep + 1}: spikeforge {args.engine} {r['seconds_per_example'] * 1e3:.2f} ms/example "
            f"(cpu {r['cpu_seconds_per_example'] * 1e3:.2f}), warm-up {r['warmup_s']:.1f} s, "
            f"final weights+theta sha256 {r['final_sha256'][:16]}",
            flush=True,
        )
    final = OUT / f"spikeforge_{args.engine}_N{args.neurons}_K{args.examples}_seed{args.seed}_final.npz"
    np.savez(final, weights=w, theta=th)
    out = args.out or OUT / f"spikeforge_{args.engine}_N{args.neurons}.json"
    out.write_text(json.dumps({"machine": machine(), "runs": runs, "final_state": str(final)}, indent=1))
    print(f"final weights and theta: {final}\nwrote {out}")
    return 0


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neurons", type=int, default=400)
    ap.add_argument(
        "--examples", type=int, default=20, help="timed training examples per run (after a warm-up example)"
    )
    ap.add_argument("--targets", nargs="+", default=["cython", "numpy"], choices=("cython", "numpy"))
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side; medians are reported")
    ap.add_argument("--mnist", type=Path, default=default_mnist())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--venv", type=Path, default=VENV)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--identical-input",
        type=int,
        default=0,
        metavar="K",
        help="instead of timing: drive both simulators with the same input spikes for K "
        "examples (retry rule off, STDP on; first --targets entry) and compare spike counts",
    )
    ap.add_argument(
        "--spikeforge-only",
        action="store_true",
        help="skip Brian2: time only spikeforge and write its final weights and theta with their SHA-256",
    )
    ap.add_argument(
        "--engine", choices=("numba", "torch"), default="numba", help="spikeforge engine (with --spikeforge-only)"
    )
    args = ap.parse_args(argv)

    from spikeforge.models.diehl_cook import DiehlCookConfig, init_state

    OUT.mkdir(parents=True, exist_ok=True)
    if args.spikeforge_only:
        images = load_images(args.mnist, args.examples + 1)
        cfg = DiehlCookConfig.from_dict({"network": {"n_neurons": args.neurons}})
        return spikeforge_only(args, cfg, init_state(cfg, np.random.default_rng(args.seed)), images)
    version = ensure_brian2_venv(args.venv)
    py = venv_python(args.venv)
    images = load_images(args.mnist, max(args.examples + 1, args.identical_input))
    cfg = DiehlCookConfig.from_dict({"network": {"n_neurons": args.neurons}})
    state = init_state(cfg, np.random.default_rng(args.seed))
    init_path = OUT / f"init_N{args.neurons}_seed{args.seed}.npz"
    np.savez(init_path, weights=state.weights, delays=state.delays, theta=state.theta)
    if args.identical_input:
        res = identical_input_check(py, args, cfg, state, images, init_path)
        out = args.out or OUT / f"identical_input_N{args.neurons}.json"
        out.write_text(json.dumps(res, indent=1))
        for k, v in res.items():
            if not isinstance(v, list):
                print(f"{k}: {v}")
        print("spikes per example (Brian2):    ", res["brian2_spikes_per_example"])
        print("spikes per example (spikeforge):", res["spikeforge_spikes_per_example"])
        print(f"wrote {out}")
        return 0
    mach = machine()
    print(f"machine: {mach['nproc']} CPUs, {mach['cpu']}; load average {mach['load_avg']}; {mach['date_utc']}")
    print(
        f"Brian2 {version} in {args.venv}; N = {args.neurons}, {args.examples} timed examples "
        f"per run, {args.repeats} runs per side",
        flush=True,
    )

    runs = {t: [] for t in args.targets}
    runs["spikeforge"] = []
    for rep in range(args.repeats):
        for target in args.targets:
            r = run_brian2(py, target, args, init_path, f"rep{rep}")
            runs[target].append(r)
            print(
                f"  run {rep + 1}: brian2 {target:6s} {r['seconds_per_example']:.3f} s/example "
                f"(cpu {r['cpu_seconds_per_example']:.3f}), warm-up {r['warmup_s']:.1f} s, "
                f"code objects {r['code_object_classes']}",
                flush=True,
            )
        r = run_spikeforge(cfg, state, images, args.seed)
        r["final_sha256"] = fingerprint(*r.pop("final"))
        runs["spikeforge"].append(r)
        print(
            f"  run {rep + 1}: spikeforge     {r['seconds_per_example'] * 1e3:.2f} ms/example "
            f"(cpu {r['cpu_seconds_per_example'] * 1e3:.2f}), warm-up {r['warmup_s']:.1f} s",
            flush=True,
        )

    sf = runs["spikeforge"]
    rows, ratios = [], {}
    print()
    print(
        f"{'side':22s} {'s/example':>10s} {'cpu s/ex':>10s} {'s/present.':>10s} {'attempts':>9s} "
        f"{'exc spikes/ex':>13s} {'warm-up1 s':>9s} {'peak RSS MB':>11s}"
    )
    for name in [*args.targets, "spikeforge"]:
        rs = runs[name]
        label = f"Brian2 {version} {name}" if name != "spikeforge" else "spikeforge numba"
        row = {
            "side": label,
            "seconds_per_example": med(rs, "seconds_per_example"),
            "cpu_seconds_per_example": med(rs, "cpu_seconds_per_example"),
            "seconds_per_presentation": med(rs, "seconds_per_presentation"),
            "cpu_seconds_per_presentation": med(rs, "cpu_seconds_per_presentation"),
            "mean_attempts": statistics.mean(r["presentations"] / r["examples"] for r in rs),
            "mean_exc_spikes_per_example": statistics.mean(r["mean_exc_spikes_per_example"] for r in rs),
            "warmup_s": [r["warmup_s"] for r in rs],
            "peak_rss_mb": (max(r["peak_rss_mb"] for r in rs) if name != "spikeforge" else peak_rss_mb()),
        }
        rows.append(row)
        print(
            f"{label:22s} {row['seconds_per_example']:10.4f} {row['cpu_seconds_per_example']:10.4f} "
            f"{row['seconds_per_presentation']:10.4f} {row['mean_attempts']:9.2f} "
            f"{row['mean_exc_spikes_per_example']:13.1f} {row['warmup_s'][0]:9.2f} "
            f"{row['peak_rss_mb']:11.0f}"
        )
        if name != "spikeforge":
            ratios[name] = {
                "per_example_wall": row["seconds_per_example"] / med(sf, "seconds_per_example"),
                "per_example_cpu": row["cpu_seconds_per_example"] / med(sf, "cpu_seconds_per_example"),
                "per_presentation_wall": row["seconds_per_presentation"] / med(sf, "seconds_per_presentation"),
                "per_presentation_cpu": row["cpu_seconds_per_presentation"] / med(sf, "cpu_seconds_per_presentation"),
            }
    print()
    ok = True
    for name, rt in ratios.items():
        print(
            f"spikeforge is {rt['per_example_wall']:.0f}x faster than Brian2 ({name} target) per example "
            f"(wall; {rt['per_example_cpu']:.0f}x in CPU time; "
            f"per presentation {rt['per_presentation_wall']:.0f}x wall, "
            f"{rt['per_presentation_cpu']:.0f}x CPU)"
        )
        ok &= rt["per_example_wall"] >= 100
    print(f"target (>= 100x per example, wall clock, every Brian2 target): {'met' if ok else 'NOT met'}")
    print(f"peak RSS of this process (spikeforge side, includes numba/torch imports): {rows[-1]['peak_rss_mb']:.0f} MB")
    mach["load_avg_end"] = os.getloadavg()
    result = {
        "machine": mach,
        "brian2_version": version,
        "neurons": args.neurons,
        "examples": args.examples,
        "repeats": args.repeats,
        "seed": args.seed,
        "settings": {
            "dt_ms": cfg.protocol.dt_ms,
            "example_ms": cfg.protocol.example_ms,
            "rest_ms": cfg.protocol.rest_ms,
            "stdp": True,
            "retry_rule": "on, both sides",
            "same_initial_state": True,
            "images": f"MNIST train 1..{args.examples}, warm-up train 0",
        },
        "table": rows,
        "ratios": ratios,
        "target_met": bool(ok),
        "runs": runs,
        "command": " ".join(
            [
                os.path.relpath(sys.argv[0], REPO) if sys.argv[0] else "speed_vs_brian2.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
    }
    out = args.out or OUT / f"speed_vs_brian2_N{args.neurons}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
