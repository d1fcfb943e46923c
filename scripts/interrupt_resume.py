"""Interrupt a Diehl & Cook training run at random moments and check that resuming it gives the
weights of an uninterrupted run, bit for bit.

Each trial starts ``spikeforge diehl-cook train`` on a tiny network in a subprocess, waits until it
has written its first checkpoint, then after a random delay sends Ctrl-C (SIGINT) or ``kill -9``
(SIGKILL), and runs the same command again until it finishes. The final weights, thresholds and
delays must equal those of one uninterrupted run. Checkpoints are written every few examples, so
many kills land during or between the steps of a checkpoint save.

    python scripts/interrupt_resume.py --trials 10          # 10 SIGINT + 10 SIGKILL trials

(``tests/test_interrupts.py`` runs two of each.)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TINY = [
    "--neurons",
    "8",
    "--train-examples",
    "240",
    "--checkpoint-every",
    "5",
    "--quiet",
    "--set",
    "model.protocol.example_ms=100",
    "--set",
    "model.protocol.rest_ms=20",
]


def _command(out: Path) -> list[str]:
    return [sys.executable, "-m", "spikeforge.cli.main", "diehl-cook", "train", "--out", str(out), *TINY]


def _env() -> dict[str, str]:
    return {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _final(out: Path) -> dict[str, np.ndarray]:
    from spikeforge.io import load_checkpoint

    arrays, meta = load_checkpoint(out / "checkpoint")
    return {k: arrays[k] for k in ("weights", "theta", "delays")} | {
        "seen": np.array(meta["progress"]["examples_seen"])
    }


def _run_again(out: Path, in_process: bool) -> tuple[int, str]:
    """The same command, to completion: in a subprocess, or in this process (faster in tests)."""
    if in_process:
        from spikeforge.cli.main import main

        return main(_command(out)[3:]), ""
    done = subprocess.run(_command(out), env=_env(), capture_output=True, text=True)
    return done.returncode, done.stderr


def reference(workdir: Path, in_process: bool = False) -> dict[str, np.ndarray]:
    out = workdir / "reference"
    code, err = _run_again(out, in_process)
    if code != 0:
        raise RuntimeError(f"the uninterrupted run failed ({code}): {err}")
    return _final(out)


def trial(
    workdir: Path, sig: int, rng: random.Random, max_delay_s: float = 0.6, in_process: bool = False
) -> dict[str, object]:
    """One interrupted run, resumed until finished; returns what happened."""
    out = workdir / f"trial-{sig}-{rng.random():.6f}"
    proc = subprocess.Popen(_command(out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.safetensors"
    while not ckpt.exists() and proc.poll() is None:
        time.sleep(0.002)
    delay = rng.uniform(0.0, max_delay_s)
    time.sleep(delay)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(sig)
    _, err = proc.communicate()
    code = proc.returncode
    resumes, codes = 0, []
    while True:  # resume until training completes (a resume stopped by a signal is resumed again)
        again, again_err = _run_again(out, in_process)
        resumes += 1
        codes.append(again)
        if again == 0:
            break
        if again > 0 or resumes >= 5:
            raise RuntimeError(f"resume failed ({codes}): {again_err}")
    leftovers = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))
    return {
        "signal": signal.Signals(sig).name,
        "delay_s": round(delay, 3),
        "interrupted": interrupted,
        "exit_code": code,
        "resumes": resumes,
        "resume_codes": codes,
        "final": _final(out),
        "tmp_files": leftovers,
        "stderr": err.decode(errors="replace")[-300:],
    }


def run(trials: int, seed: int = 0, workdir: Path | None = None, in_process: bool = False) -> list[dict[str, object]]:
    """``trials`` SIGINT and ``trials`` SIGKILL trials; each result says whether it matched."""
    rng = random.Random(seed)
    own = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="spikeforge-interrupts-"))
    try:
        ref = reference(workdir, in_process)
        results = []
        for sig in [signal.SIGINT] * trials + [signal.SIGKILL] * trials:
            r = trial(workdir, sig, rng, in_process=in_process)
            final = r.pop("final")
            r["identical"] = all(np.array_equal(final[k], ref[k]) for k in ref)
            results.append(r)
        return results
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="trials per signal (default: 10)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random delays (default: 0)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = run(args.trials, args.seed)
    print("| # | signal | delay after first checkpoint (s) | interrupted | exit code | identical to uninterrupted |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(results, 1):
        print(
            f"| {i} | {r['signal']} | {r['delay_s']} | {'yes' if r['interrupted'] else 'no (had finished)'} | "
            f"{r['exit_code']} | {'yes' if r['identical'] else 'NO'} |"
        )
    bad = [r for r in results if not r["identical"] or r["tmp_files"]]
    hit = sum(r["interrupted"] for r in results)
    print(
        f"\n{len(results)} trials ({hit} interrupted mid-training), {len(bad)} differing or leaving .tmp files; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
