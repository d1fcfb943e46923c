"""What a Diehl & Cook run writes besides its checkpoints: ``results.json`` and the figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import __version__
from .diehl_cook_profiles import profile_record

#: results of the test stage: stale once labels are assigned again
TEST_FIELDS = (
    "accuracy",
    "test_examples",
    "test_seconds",
    "test_mean_attempts",
    "confusion_matrix",
    "mean_test_spikes",
)


def save(exp, results: dict[str, Any]) -> dict[str, Any]:
    """Write ``results`` as results.json with the config and provenance: the scaffold's (package,
    commit, numpy/numba/torch versions, CPU model, threads, engine) plus the profile and a hash of
    the compute layers' sources (the engine revision, also outside a git checkout)."""
    from ..jit import kernel_sources_hash

    extra = {"profile": exp.run.profile, "engine_sources_sha256": kernel_sources_hash()}
    return exp.rd.write_results(results, engine=exp.run.engine, provenance_extra=extra)


def write_results(exp, update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into results.json with the training record, the profile (and where each
    derived parameter's value came from) and provenance. Labels assigned anew make the old test
    results stale: they are removed until ``test`` runs."""
    results = exp.rd.read_results()
    if "label_examples" in update and "accuracy" not in update:
        for k in TEST_FIELDS:
            results.pop(k, None)
        results["test"] = f"not run since labels were assigned: run `spikeforge diehl-cook test --out {exp.out}`"
    elif "accuracy" in update:
        results.pop("test", None)
    results.update(update)
    _, _, meta = exp.load()
    prog = meta["progress"]
    results.update(
        {
            "neurons": exp.model.network.n_neurons,
            "train_examples_seen": prog["examples_seen"],
            "train_seconds": prog["train_seconds"],
            "train_examples_per_second": prog["examples_seen"] / prog["train_seconds"]
            if prog["train_seconds"]
            else None,
            "train_mean_attempts": prog["attempts"] / prog["examples_seen"] if prog["examples_seen"] else None,
            "train_stability": prog.get("stability"),
            "engine": exp.run.engine,
            "seed": exp.run.seed,
            "version": __version__,
            "profile": profile_record(exp.run.profile, exp.model),
            "run": exp.run.to_dict(),
            "model": exp.model.to_dict(),
        }
    )
    return save(exp, results)


def plot(exp) -> list[str]:
    """Draw the learned weights, the theta histogram, the training log (``train.log``: running
    accuracy, spikes per presentation, theta and speed over the examples) and (after a test) the
    confusion matrix."""
    from ..plotting.figures import plot_confusion, plot_histogram, plot_training_log, plot_weight_grid
    from .diehl_cook_trainlog import LOG_NAME, read_train_log

    state, _, _ = exp.load()
    paths = [
        plot_weight_grid(state.weights, exp.out / "weights.png"),
        plot_histogram(
            state.theta,
            exp.out / "theta.png",
            xlabel="theta (mV)",
            title=f"adaptive thresholds, N = {state.theta.size}",
        ),
    ]
    log_path = exp.out / LOG_NAME
    if log_path.is_file():
        log = read_train_log(log_path)
        if len(log.get("examples", ())) >= 2:
            title = f"training log, N = {state.theta.size}"
            paths.append(plot_training_log(log, exp.out / "training.png", title=title))
    res = exp.rd.read_results()
    if "confusion_matrix" in res:
        paths.append(plot_confusion(np.array(res["confusion_matrix"]), exp.out / "confusion.png"))
    return [str(p) for p in paths]
