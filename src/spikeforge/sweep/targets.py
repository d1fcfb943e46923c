"""What ``spikeforge sweep`` can run: each experiment command, how to call it, and where its
results.json keeps the metric (and, for pruning, the metric after each epoch).

A trial of a sweep is an ordinary run of the experiment's command, with the swept values passed
as ``--set key=value`` and the seed as ``--seed``, in its own run directory (``--out``): any trial
can be re-tested or resumed later with the usual commands.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError


@dataclass(frozen=True)
class Target:
    """An experiment command the sweep runs once per configuration and seed."""

    name: str
    argv: tuple[str, ...]  # after ``spikeforge``
    metric: str  # dotted path into results.json; ``a.0.b`` indexes lists
    direction: str = "maximize"
    history: str | None = None  # dotted path to the per-epoch metric: a list, or records with ``*``
    fixed_args: tuple[str, ...] = ("--quiet",)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def command(self, out: Path, seed: int | None, sets: dict[str, str], passthrough: list[str]) -> list[str]:
        cmd = [sys.executable, "-m", "spikeforge.cli.main", *self.argv, "--out", str(out), *self.fixed_args]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        for key, value in sets.items():
            cmd += ["--set", f"{key}={value}"]
        return cmd + list(passthrough)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "diehl-cook",
            ("diehl-cook", "run"),
            metric="accuracy",
            description="Diehl & Cook (2015): test accuracy by voting",
        ),
        Target(
            "event-stdp",
            ("event-stdp", "run"),
            metric="accuracy",
            description="event-based STDP features + linear readout: test accuracy",
        ),
        *(
            Target(
                f"tha-{command}",
                ("tha", command),
                metric="summary.test_acc_at_best_val_mean",
                history="trials.0.epochs.*.val_acc",
                description=f"threshold annealing on {title}: test accuracy at the best validation epoch "
                "(prunes on validation accuracy per epoch)",
            )
            for command, title in (
                ("mnist", "MNIST"),
                ("fmnist", "Fashion-MNIST"),
                ("dvs-gesture", "DVS128 Gesture"),
                ("shd", "SHD"),
            )
        ),
        Target(
            "olfaction",
            ("olfaction", "run"),
            metric="test_accuracy",
            history="history.val_acc",
            description="hybrid DECOLLE/STDP olfaction network: test accuracy (prunes on validation accuracy)",
        ),
    )
}


def exec_target(template: str, metric: str, history: str | None = None) -> Target:
    """A target for any command: ``template`` is split like a shell line and ``{out}`` is replaced by
    the run directory; the seed and the ``--set`` values are appended."""
    if "{out}" not in template:
        raise ConfigError("--command must contain {out}, where the trial's run directory goes")
    return Target("exec", tuple(shlex.split(template)), metric=metric, history=history, fixed_args=())


def command_for(target: Target, out: Path, seed: int | None, sets: dict[str, str], passthrough: list[str]) -> list[str]:
    if target.name != "exec":
        return target.command(out, seed, sets, passthrough)
    cmd = [a.replace("{out}", str(out)) for a in target.argv]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    return cmd + list(passthrough)


def _walk(node: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(part)
    return node


def read_metric(results_path: Path, path: str) -> float | None:
    """The metric at ``path`` in a results.json, or None when it is not (yet) there."""
    try:
        data = json.loads(results_path.read_text())
        value = _walk(data, path.split("."))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_history(results_path: Path, path: str | None) -> list[float]:
    """The per-epoch metric values written so far (empty when the experiment writes none). ``path``
    names a list of numbers (``history.val_acc``) or, with ``*``, a field of each record of a list
    (``trials.0.epochs.*.val_acc``)."""
    if not path:
        return []
    if "*" not in path:
        try:
            values = _walk(json.loads(results_path.read_text()), path.split("."))
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return []
        if not isinstance(values, list):
            return []
        return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    head, tail = path.split("*", 1)
    try:
        data = json.loads(results_path.read_text())
        records = _walk(data, [p for p in head.strip(".").split(".") if p])
        out = []
        for rec in records:
            v = _walk(rec, [p for p in tail.strip(".").split(".") if p])
            if isinstance(v, int | float) and not isinstance(v, bool):
                out.append(float(v))
        return out
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return []


def validate_sets(target: Target, sets: dict[str, str], passthrough: list[str], workdir: Path) -> str | None:
    """Ask the experiment itself whether it accepts these ``--set`` values (its ``--show-config``
    resolves and validates the config without running). Returns None when accepted, the
    experiment's message when refused; raises nothing. Targets without ``--show-config`` (and
    ``exec`` commands) are not checked before the first trial."""
    import subprocess

    if target.name == "exec":
        return None
    cmd = command_for(target, workdir / "validate", None, sets, passthrough) + ["--show-config"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:
        return None
    err = proc.stderr.strip()
    if "unrecognized arguments: --show-config" in err:
        return None
    return err.splitlines()[-1] if err else f"exit status {proc.returncode}"
