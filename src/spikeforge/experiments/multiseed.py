"""One experiment command run once per seed, each seed its own process and run directory, and
one summary of the seeds beside the runs.

Layout of the multi-seed directory ``OUT``::

    OUT/seed-0/        the run of seed 0 (an ordinary run directory: resume, re-test, plot it)
    OUT/seed-0.log     what that run's command printed (its command line first)
    OUT/summary.json   mean, standard deviation, and each seed with its run directory and metric
    OUT/summary.md     the same as a table

At most ``jobs`` seeds run at once. A seed whose run is already finished with the same config is
skipped, so running the command again resumes the unfinished seeds and rewrites the summary.
The child processes are launched like the trials of ``spikeforge sweep`` (``python -m
spikeforge.cli.main``, killed with their parent on Linux).
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..io.atomic import atomic_write_json, atomic_write_text
from ..sweep.runner import die_with_parent


@dataclass
class SeedJob:
    """One seed: its run directory, the command that runs it, and whether it is already done."""

    seed: int
    run_dir: Path
    command: list[str]
    finished: bool = False


@dataclass
class SeedOutcome:
    seed: int
    run_dir: Path
    status: str  # "ran", "skipped" (finished before), "failed"
    returncode: int | None = None
    seconds: float | None = None


def seed_dir(out: Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def check_out(out: Path, record: str = "config.json") -> None:
    """Refuse an ``OUT`` that holds a single run (its own ``config.json``)."""
    if (Path(out) / record).is_file():
        raise ConfigError(
            f"--out {out} holds a single run ({out}/{record}); --seeds puts one run per seed under "
            f"{out}/seed-K: choose another --out for the multi-seed runs"
        )


def run_seeds(jobs: Sequence[SeedJob], max_jobs: int, say: Callable[[str], None] = print) -> list[SeedOutcome]:
    """Run the unfinished ``jobs`` as child processes, at most ``max_jobs`` at once; each child's
    output goes to ``RUN_DIR.log``. Ctrl-C interrupts every child (each checkpoints and stops)."""
    if max_jobs < 1:
        raise ConfigError(f"--jobs {max_jobs}: give at least 1 (seeds run at once)")
    outcomes = {j.seed: SeedOutcome(j.seed, j.run_dir, "skipped") for j in jobs if j.finished}
    for seed, o in outcomes.items():
        say(f"seed {seed}: finished before in {o.run_dir}, skipped")
    queue = [j for j in jobs if not j.finished]
    running: dict[int, tuple[SeedJob, subprocess.Popen, Any, float]] = {}
    preexec = die_with_parent if sys.platform.startswith("linux") else None
    try:
        while queue or running:
            while queue and len(running) < max_jobs:
                job = queue.pop(0)
                job.run_dir.parent.mkdir(parents=True, exist_ok=True)
                log = job.run_dir.with_name(job.run_dir.name + ".log").open("ab")
                log.write(("$ " + " ".join(job.command) + "\n").encode())
                log.flush()
                proc = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
                running[job.seed] = (job, proc, log, time.perf_counter())
                say(f"seed {job.seed}: started in {job.run_dir} (pid {proc.pid})")
            time.sleep(0.2)
            for seed, (job, proc, log, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[seed]
                ok = proc.returncode == 0
                outcomes[seed] = SeedOutcome(
                    seed, job.run_dir, "ran" if ok else "failed", proc.returncode, time.perf_counter() - t0
                )
                tail = "" if ok else f": {_last_line(job.run_dir.with_name(job.run_dir.name + '.log'))}"
                say(f"seed {seed}: {'finished' if ok else f'failed (exit status {proc.returncode})'}{tail}")
    except BaseException:
        for _, proc, _log, _ in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # the run checkpoints at the next example and stops
        for _, proc, log, _ in running.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        raise
    return [outcomes[j.seed] for j in sorted(jobs, key=lambda j: j.seed)]


def _last_line(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return f"{lines[-1] if lines else 'no output'} (all of it in {path})"


def _results(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_summary(
    out: Path,
    outcomes: Sequence[SeedOutcome],
    metric: str = "accuracy",
    keys: Sequence[str] = (),
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``OUT/summary.json`` and ``OUT/summary.md`` from each seed's results.json: the metric of each
    seed (and the result ``keys``), their mean, sample standard deviation, minimum and maximum."""
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        res = _results(o.run_dir)
        value = res.get(metric) if o.status != "failed" else None
        row = {"seed": o.seed, "run_dir": str(o.run_dir), "status": o.status, metric: value}
        row.update({k: res.get(k) for k in keys})
        if o.returncode:
            row["returncode"] = o.returncode
        rows.append(row)
    values = [float(r[metric]) for r in rows if isinstance(r[metric], int | float)]
    summary: dict[str, Any] = {
        "metric": metric,
        "n": len(values),
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "failed": [r["seed"] for r in rows if r["status"] == "failed" or r[metric] is None],
        **(info or {}),
        "seeds": rows,
    }
    out = Path(out)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary, keys))
    return summary


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _pct(v: Any) -> str:
    return f"{100 * v:.2f} %" if isinstance(v, int | float) else "—"


def summary_markdown(summary: dict[str, Any], keys: Sequence[str] = ()) -> str:
    m = summary["metric"]
    lines = [f"| seed | {m} | {' | '.join(keys)}{' | ' if keys else ''}run directory |"]
    lines.append("|" + "---|" * (3 + len(keys)))
    for r in summary["seeds"]:
        extra = "".join(f"{_cell(r.get(k))} | " for k in keys)
        status = "" if r["status"] != "failed" else " (failed)"
        lines.append(f"| {r['seed']} | {_pct(r[m])}{status} | {extra}{r['run_dir']} |")
    n, mean, std = summary["n"], summary["mean"], summary["std"]
    if n:
        spread = f" ± {100 * std:.2f}" if std is not None else ""
        head = f"**{m}: {100 * mean:.2f}{spread} %** (mean ± sample standard deviation of {n} seed(s); "
        head += f"{_pct(summary['min'])} to {_pct(summary['max'])})"
    else:
        head = f"**{m}: no seed finished**"
    if summary["failed"]:
        head += f"; no result for seed(s) {', '.join(map(str, summary['failed']))}"
    return head + "\n\n" + "\n".join(lines) + "\n"
