"""The sweep worker: takes trials from a shared study and runs each as ordinary experiment runs.

One trial = one configuration of the swept values, run once per seed (sequentially, each in its
own run directory ``ROOT/STUDY/CONFIG_ID/seedS``); its value is the mean metric over the seeds,
and the per-seed values and run directories are stored in the trial's user attributes. Pruning
(``pruner = "median"``) watches the first seed's per-epoch metric as the run writes it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .space import Space, toml_value
from .study import _optuna, config_id, local_lock, owner_of, queue_missing_grid
from .targets import Target, command_for, read_history, read_metric


@dataclass
class SweepSettings:
    target: Target
    space: Space
    study_name: str
    root: Path
    seeds: list[int] | None
    trials: int | None
    metric: str
    passthrough: list[str] = field(default_factory=list)
    poll_s: float = 1.0
    heartbeat_s: int = 10
    quiet: bool = False


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the experiment process is killed when its worker dies, so a killed worker leaves no
    orphan holding the run directory."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds in a background thread."""

    def __init__(self, storage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient database error must not kill the run
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class Pruned(Exception):
    pass


def _run_one(s: SweepSettings, trial, cmd: list[str], run_dir: Path, prune: bool) -> float:
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "sweep.log").open("ab")
    results = run_dir / "results.json"
    reported = 0
    with log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        preexec = die_with_parent if sys.platform.startswith("linux") else None
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        try:
            while proc.poll() is None:
                time.sleep(s.poll_s)
                if prune:
                    history = read_history(results, s.target.history)
                    for step in range(reported, len(history)):
                        trial.report(history[step], step)
                    reported = len(history)
                    if reported and trial.should_prune():
                        proc.send_signal(signal.SIGINT)  # lets the run checkpoint at a clean point
                        try:
                            proc.wait(timeout=60)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                        raise Pruned(f"pruned at epoch {reported} ({history[-1]:.4g})")
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
    if proc.returncode != 0:
        tail = (run_dir / "sweep.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"run in {run_dir} exited with status {proc.returncode}:\n  " + "\n  ".join(tail))
    value = read_metric(results, s.metric)
    if value is None:
        raise RuntimeError(f"run in {run_dir} finished but its results.json has no metric '{s.metric}'")
    return value


def _params_for(s: SweepSettings, trial) -> dict[str, Any]:
    if s.space.sampler == "grid":
        grid = s.space.grid_space()
        return {k: trial.suggest_categorical(k, grid[k]) for k in grid}
    return {p.key: p.suggest(trial) for p in s.space.params}


def run_trial(s: SweepSettings, study, trial) -> tuple[str, Any]:
    """Run one trial; returns the state name to tell and its value."""
    params = _params_for(s, trial)
    cid = config_id(params)
    trial.set_user_attr("config_id", cid)
    owner = owner_of(study, trial.number, cid)
    if owner is not None:
        trial.set_user_attr("duplicate_of", owner.number)
        if owner.state.name == "COMPLETE":
            for key in ("values", "run_dirs", "std"):
                if key in owner.user_attrs:
                    trial.set_user_attr(key, owner.user_attrs[key])
            return "COMPLETE", owner.value
        return "FAIL", None  # the same configuration is running or queued elsewhere
    sets = {k: toml_value(v) for k, v in params.items()}
    seeds = s.seeds if s.seeds else [None]
    base = s.root / s.study_name / cid
    run_dirs = {str(seed): str(base / (f"seed{seed}" if seed is not None else "run")) for seed in seeds}
    trial.set_user_attr("run_dirs", run_dirs)
    trial.set_user_attr("params", params)
    values: dict[str, float] = {}
    for i, seed in enumerate(seeds):
        run_dir = Path(run_dirs[str(seed)])
        cmd = command_for(s.target, run_dir, seed, sets, s.passthrough)
        if i == 0:
            trial.set_user_attr("command", " ".join(cmd))
        _say(s, f"trial {trial.number} [{cid}] seed {seed}: {', '.join(f'{k}={v}' for k, v in params.items())}")
        try:
            values[str(seed)] = _run_one(s, trial, cmd, run_dir, prune=(i == 0 and s.space.pruner != "none"))
        except Pruned as why:
            trial.set_user_attr("values", values)
            _say(s, f"trial {trial.number}: {why}")
            return "PRUNED", None
        trial.set_user_attr("values", values)
    mean = statistics.fmean(values.values())
    trial.set_user_attr("std", statistics.stdev(values.values()) if len(values) > 1 else 0.0)
    _say(s, f"trial {trial.number} [{cid}]: {s.metric} = {mean:.4f}")
    return "COMPLETE", mean


def _say(s: SweepSettings, msg: str) -> None:
    if not s.quiet:
        print(f"[sweep {s.study_name} pid {os.getpid()}] {msg}", flush=True)


def _work_left(s: SweepSettings, study) -> str:
    """ "run" (a trial can be taken), "wait" (only trials running in other workers are left: one
    of them may die and be re-queued) or "done"."""
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    waiting, running = counts.get("WAITING", 0), counts.get("RUNNING", 0)
    if waiting:
        return "run"
    if s.space.sampler != "grid":
        assert s.trials is not None
        if counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) + running < s.trials:
            return "run"
    return "wait" if running else "done"


def work(s: SweepSettings, study, storage) -> int:
    """Take and run trials until the study has none left for this worker; returns trials run."""
    optuna = _optuna()
    ran, waited = 0, False
    while True:
        with local_lock(storage.url):
            optuna.storages.fail_stale_trials(study)
            if s.space.sampler == "grid":
                queue_missing_grid(study, s.space)
            left = _work_left(s, study)
            if left == "run":
                trial = study.ask()
        if left == "done":
            return ran
        if left == "run":
            waited = False
        if left == "wait":
            if not waited:
                _say(
                    s, "waiting for trials running in other workers (a dead one is re-queued after its heartbeat stops)"
                )
            waited = True
            time.sleep(min(s.heartbeat_s, 2.0))
            continue
        with _Heartbeat(storage, trial._trial_id, s.heartbeat_s):
            try:
                state, value = run_trial(s, study, trial)
            except (RuntimeError, ConfigError) as err:
                trial.set_user_attr("error", str(err)[-2000:])
                _say(s, f"trial {trial.number} failed: {err}")
                state, value = "FAIL", None
        st = optuna.trial.TrialState[state]
        study.tell(trial, value if state == "COMPLETE" else None, state=st)
        ran += state != "FAIL"


def spawn_workers(argv: list[str], jobs: int) -> int:
    """Run ``jobs`` worker processes of the same sweep command (each with ``--jobs 1``)."""
    base = [sys.executable, "-m", "spikeforge.cli.main", *argv]
    procs = [subprocess.Popen(base) for _ in range(jobs)]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        codes = [p.wait() for p in procs]
    return max(codes)


def check_settings(s: SweepSettings) -> None:
    if s.space.sampler != "grid" and not s.trials:
        raise ConfigError(f'sampler "{s.space.sampler}" needs --trials K (how many configurations to try)')
    if s.space.pruner != "none" and not s.target.history:
        raise ConfigError(
            f'pruner "{s.space.pruner}": {s.target.name} writes no per-epoch metric to prune on; set pruner = "none"'
        )
