"""What a Diehl & Cook training run reports as it goes: the running accuracy and ``train.log``.

``train.log`` (in the run directory) gets one line every ``every`` training examples::

    2026-12-01T23:10:00Z examples=1000 epoch=0 index=1000 running_acc=0.7120 ex_per_s=45.2
        spikes_per_presentation=12.31 presentations_per_example=1.05 mean_theta_mv=21.304
        max_theta_mv=23.110 peak_rss_mib=412

(one line in the file), plus ``#`` lines when a run starts or resumes, and when the labelling and
test stages start, resume, checkpoint and end. The file is opened for appending and
line-buffered, so a killed run keeps every line written before the kill. A run
resumed from its last checkpoint first drops the lines of examples past that checkpoint (work
the kill lost, which the resumed run trains again), so every example appears in the log once.
Nothing here grows with the number of examples but the file: the figures of a line are sums
over its interval, and the running accuracy keeps one window of responses.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.labels import accuracy, assign_labels, vote
from ..io.atomic import atomic_write_text

LOG_NAME = "train.log"
_EXAMPLES = re.compile(r"^\S+ examples=(\d+) ")


def log_interval(every: int, total: int) -> int:
    """Examples between log lines: ``every``, or a tenth of a shorter run (at least 1)."""
    return max(1, min(every, total // 10))


def peak_rss_mib() -> float | None:
    """This process's peak resident memory (MiB), where the platform reports it."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def log_note(out: str | os.PathLike[str], text: str) -> None:
    """Append the ``#`` line ``text`` to the run directory's ``train.log`` (the frozen stages'
    starts, resumes and checkpoints; data lines come from :class:`TrainLog`)."""
    with (Path(out) / LOG_NAME).open("a", encoding="utf-8") as fh:
        fh.write(f"# {_now()} {text}\n")


class RunningAccuracy:
    """The running accuracy shown while training, as in the original: labels assigned on the
    previous window of training responses, scored on the current one (None until two windows)."""

    def __init__(self, window: int, n_neurons: int):
        self.counts = np.zeros((window, n_neurons), np.int64)
        self.labels = np.full(window, -1, np.int64)
        self.filled = 0
        self.value: float | None = None
        self._assign: np.ndarray | None = None

    def add(self, counts: np.ndarray, label: int) -> None:
        window = len(self.labels)
        self.counts[self.filled % window], self.labels[self.filled % window] = counts, label
        self.filled += 1
        if self.filled % window == 0:
            if self._assign is not None:
                self.value = accuracy(self.labels, vote(self.counts, self._assign, 10))
            self._assign = assign_labels(self.counts, self.labels, 10)


class TrainLog:
    """``train.log`` of the run directory ``out``: opened for appending, one line every ``every``
    examples (counted over all epochs), resumed at ``examples_seen``."""

    def __init__(self, out: Path, every: int, examples_seen: int, intro: str):
        self.path = Path(out) / LOG_NAME
        self.every = every
        self._drop_lost_lines(examples_seen)
        self._file = self.path.open("a", buffering=1, encoding="utf-8")
        self._file.write(f"# {_now()} {intro} at example {examples_seen} (pid {os.getpid()})\n")
        self._start_interval()

    def _drop_lost_lines(self, examples_seen: int) -> None:
        """Remove the lines of examples past the checkpoint the run resumes from."""
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        for i, line in enumerate(lines):
            m = _EXAMPLES.match(line)
            if m and int(m.group(1)) > examples_seen:
                note = (
                    f"# {_now()} dropped {len(lines) - i} line(s) after example {examples_seen}: the run "
                    "stopped before its next checkpoint and trains those examples again\n"
                )
                atomic_write_text(self.path, "".join(lines[:i]) + note)
                return

    def _start_interval(self) -> None:
        self._t0 = time.perf_counter()
        self._examples = 0
        self._spikes = 0
        self._presentations = 0

    def add(self, counts: np.ndarray, attempts: np.ndarray) -> None:
        """Account for a chunk of examples: their spike counts (examples x neurons) and attempts."""
        self._examples += len(counts)
        self._spikes += int(counts.sum())
        self._presentations += int(attempts.sum())

    def due(self, examples_seen: int) -> bool:
        """Whether a line is due after ``examples_seen`` examples (a chunk that crosses a multiple
        of ``every`` counts too)."""
        return self._examples > 0 and (examples_seen // self.every) > ((examples_seen - self._examples) // self.every)

    def write(self, progress: dict[str, Any], running_acc: float | None, engine) -> str:
        """Write the line of the interval that ends now and start the next; returns the line."""
        seconds = time.perf_counter() - self._t0
        theta = engine.theta
        fields: dict[str, Any] = {
            "examples": progress["examples_seen"],
            "epoch": progress["epoch"],
            "index": progress["index"],
            "running_acc": "none" if running_acc is None else f"{running_acc:.4f}",
            "ex_per_s": f"{self._examples / seconds:.2f}" if seconds > 0 else "inf",
            "spikes_per_presentation": f"{self._spikes / max(1, self._examples):.2f}",
            "presentations_per_example": f"{self._presentations / max(1, self._examples):.3f}",
            "mean_theta_mv": f"{float(theta.mean()):.3f}",
            "max_theta_mv": f"{float(theta.max()):.3f}",
        }
        stability = getattr(engine, "stability", None)
        if callable(stability):
            info = stability()
            for key in ("substep_neuron_steps", "unstable_neuron_steps"):
                if key in info:
                    fields[key] = info[key]
        rss = peak_rss_mib()
        if rss is not None:
            fields["peak_rss_mib"] = f"{rss:.0f}"
        line = f"{_now()} " + " ".join(f"{k}={v}" for k, v in fields.items())
        self._file.write(line + "\n")
        self._start_interval()
        return line

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TrainLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_train_log(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The data lines of a ``train.log`` as one array per field (``running_acc`` is NaN where it
    was still ``none``); ``#`` lines are skipped. Fields missing from some lines (an older run
    resumed by a newer version) are NaN there."""
    rows: list[dict[str, str]] = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not _EXAMPLES.match(line):
            continue
        rows.append(dict(f.split("=", 1) for f in line.split(" ")[1:] if "=" in f))
    keys = list(dict.fromkeys(k for row in rows for k in row))

    def number(text: str | None) -> float:
        try:
            return float(text) if text is not None else float("nan")
        except ValueError:
            return float("nan")

    return {k: np.array([number(row.get(k)) for row in rows]) for k in keys}


def stability_so_far(before: dict[str, Any] | None, engine) -> dict[str, Any] | None:
    """The engine's numerical-stability record (``engine.stability()``: counts of substepped and
    unstable neuron-steps, the first unstable one) added to ``before``, the record of the same
    run's earlier processes (a resumed run starts a new engine). None where the engine keeps none."""
    stability = getattr(engine, "stability", None)
    if not callable(stability):
        return before
    now = _plain(dict(stability()))
    return _add(before, now) if before else now


def _add(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Counters summed (``max_*`` the larger), sections added key by key, and the earlier of two
    ``first_unstable`` records kept."""
    out = dict(before)
    for key, value in now.items():
        old = before.get(key)
        if old is None:
            out[key] = value
        elif key == "first_unstable":
            continue
        elif isinstance(value, dict) and isinstance(old, dict):
            out[key] = _add(old, value)
        elif _number(value) and _number(old):
            out[key] = max(old, value) if key.startswith("max_") else old + value
    return out


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars made Python numbers (for the checkpoint's JSON metadata)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value
