"""Recording the excitatory spikes of the first test examples (``--record-examples``)."""

from __future__ import annotations

import numpy as np

from ..engines import example_key
from ..plotting.figures import plot_raster


def record_test_spikes(exp, images, stage) -> None:
    """Record the spikes of ``images`` on a copy of the engine (the measured run is unaffected)
    into ``test_spikes.safetensors`` and draw ``test_raster.png``."""
    _save_recording(exp, _record(exp, images, stage))


def _record(exp, images, stage):
    """Spikes of the first test examples, on a copy of the engine so the measured run is
    unaffected. Capped at 20,000 spikes per example."""
    state, _, _ = exp.load()
    rec_engine = exp._engine(state)
    out = []
    for i in range(len(images)):
        t0 = rec_engine.t
        rec_engine.start_recording(20_000)
        key = example_key(exp.run.seed, stage, 0, i)
        rec_engine.present(images[i : i + 1], False, [key])
        steps_, neurons = rec_engine.stop_recording()
        out.append((i, steps_ - t0, neurons, rec_engine.t - t0))
    return out


def _save_recording(exp, recorded) -> None:

    ex = np.concatenate([np.full(len(s), i, np.int32) for i, s, _, _ in recorded])
    steps_ = np.concatenate([s for _, s, _, _ in recorded]).astype(np.int64)
    neurons = np.concatenate([n for _, _, n, _ in recorded]).astype(np.int32)
    exp.rd.save_checkpoint(
        "test_spikes",
        {"example": ex, "step": steps_, "neuron": neurons},
        {
            "dt_ms": exp.model.protocol.dt_ms,
            "examples": len(recorded),
            "note": "excitatory spikes of the first test examples; step counts from the "
            "start of each example's presentation (retries and rests included)",
        },
    )
    offsets = np.cumsum([0] + [n for _, _, _, n in recorded[:-1]])
    plot_raster(
        steps_ + np.repeat(offsets, [len(s) for _, s, _, _ in recorded]),
        neurons,
        exp.out / "test_raster.png",
        dt_ms=exp.model.protocol.dt_ms,
        n_neurons=exp.model.network.n_neurons,
        title=f"excitatory spikes, first {len(recorded)} test examples",
        boundaries_ms=[o * exp.model.protocol.dt_ms for o in offsets],
    )
