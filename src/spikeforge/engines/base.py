"""The contract of a Diehl & Cook engine, the presentation protocol both engines share, and seeding.

An engine owns a network's state while it runs (:class:`DCEngine`, a ``typing.Protocol``):

- ``present(images, learning, keys)``: the published protocol for a batch of examples, written once
  in :func:`present_protocol`: weight normalisation before each presentation while learning, Poisson
  input for ``example_ms``, the retry rule, ``rest_ms`` without input. It returns the spike counts
  ``[B, N]`` of the last attempt and the number of attempts ``[B]``.
- ``run_events(ptr, idx, learning)``: one phase driven by explicit input spikes, for comparisons with
  other simulators on identical input;
- ``normalize()``, ``rest(learning)``, ``set_rate_scale(scale)`` (the learning-rate schedule);
- ``export_state()`` / ``dynamic_state()`` / ``load_dynamic_state()`` for checkpoints;
- ``start_recording(capacity)`` / ``stop_recording()`` for excitatory spike rasters;
- ``stability()``: the integration counters of both layers since the engine was built (neuron-steps
  split into Euler substeps, unstable Euler steps and the first of them, see
  :mod:`spikeforge.neurons.conductance_stability`), kept by a :class:`StabilityMonitor` that warns
  (or raises, ``on_unstable = "error"``) after the presentation in which the first unstable step
  happened, naming it (``present(..., names=)``), the step, the neuron, its conductances and the fix.

Every random draw of a presentation comes from a seed derived from ``(run seed, key, attempt)``.
The key names the example (epoch and index), so the same seed gives the same run on the same
engine, and a resumed run draws exactly what an uninterrupted one would have drawn.

The factory :func:`spikeforge.engines.make_engine` lives in :mod:`.factory`, so this module imports
no engine.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..config import ConfigError
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState
from ..neurons import conductance_stability as cs


def example_key(seed: int, stage: int, epoch: int, index: int) -> int:
    """A 63-bit key naming one presentation (stage: 0 train, 1 label, 2 test)."""
    ss = np.random.SeedSequence([seed, stage, epoch, index])
    return int(ss.generate_state(2, np.uint64)[0] >> np.uint64(1))


def attempt_seed(key: int, attempt: int) -> int:
    """A 32-bit seed for one attempt of one presentation."""
    return int(np.random.SeedSequence([key, attempt]).generate_state(1)[0])


@runtime_checkable
class DCEngine(Protocol):
    """What every Diehl & Cook engine offers (see the module docstring)."""

    name: str
    cfg: DiehlCookConfig
    seed: int
    t: int

    def present(self, images, learning: bool, keys, names=None) -> tuple[np.ndarray, np.ndarray]: ...
    def run_events(self, ptr, idx, learning: bool) -> np.ndarray: ...
    def normalize(self) -> None: ...
    def rest(self, learning: bool) -> None: ...
    def set_rate_scale(self, scale: float) -> None: ...
    def export_state(self) -> DiehlCookState: ...
    def dynamic_state(self) -> dict[str, np.ndarray]: ...
    def load_dynamic_state(self, arrays: dict[str, np.ndarray]) -> bool: ...
    def start_recording(self, capacity: int) -> None: ...
    def stop_recording(self) -> tuple[np.ndarray, np.ndarray]: ...
    def stability(self) -> dict: ...


class StabilityMonitor:
    """The integration counters of both layers (``stats["exc"]``, ``stats["inh"]``, vectors the
    updates write into) and the one report of the first unstable Euler step."""

    def __init__(self, cfg: DiehlCookConfig):
        self.stats = {"exc": cs.new_stats(), "inh": cs.new_stats()}
        self._on_unstable = {"exc": cfg.exc.on_unstable, "inh": cfg.inh.on_unstable}
        self._integration = {"exc": cfg.exc.integration, "inh": cfg.inh.integration}
        self.first_example: str | None = None

    def check(self, names: Sequence[str], t_start: int) -> None:
        """After a presentation (``names``: one per example of the batch) that began at global step
        ``t_start``: warn or raise once, at the first unstable step."""
        if self.first_example is not None:
            return
        found = [(st[3], layer) for layer, st in self.stats.items() if st[3] >= 0]
        if not found:
            return
        layer = min(found)[1]
        first = cs.summary(self.stats[layer])["first_unstable"]
        self.first_example = names[min(first["batch"], len(names) - 1)]
        msg = cs.message(layer, first, self.first_example, first["step"] - t_start)
        if self._on_unstable[layer] == "error":
            raise cs.NumericalInstabilityError(msg)
        warnings.warn(msg, cs.NumericalInstabilityWarning, stacklevel=3)

    @staticmethod
    def names(keys: Sequence[int], names) -> list[str]:
        """The names of a batch's examples for messages: ``names`` as given, or by key."""
        if names is None:
            return [f"the example with key {k}" for k in keys]
        names = [str(n) for n in names]
        if len(names) != len(keys):
            raise ValueError(f"present() got {len(names)} names for {len(keys)} examples: give one name per image")
        return names

    def report(self) -> dict:
        """Totals over both layers, each layer's counters and integration, the first unstable step
        (with the example's name) or None."""
        layers = {k: cs.summary(v) | {"integration": self._integration[k]} for k, v in self.stats.items()}
        firsts = [(v["first_unstable"]["step"], k) for k, v in layers.items() if v["first_unstable"]]
        first = None
        if firsts:
            layer = min(firsts)[1]
            first = dict(layers[layer]["first_unstable"], layer=layer, example=self.first_example)
        return {
            "substep_neuron_steps": sum(v["substep_neuron_steps"] for v in layers.values()),
            "unstable_neuron_steps": sum(v["unstable_neuron_steps"] for v in layers.values()),
            "first_unstable": first,
            "layers": layers,
        }


def check_state(cfg: DiehlCookConfig, state: DiehlCookState) -> None:
    """Shapes of the state against the config, and finite weights and theta (before any compiled
    code reads them)."""
    state.check_shapes(cfg)
    for name, arr in (("weights", state.weights), ("theta", state.theta)):
        a = np.asarray(arr)
        if a.dtype.kind not in "biuf" or not np.all(np.isfinite(a)):
            raise ConfigError(f"{name} must be finite real numbers (got dtype {a.dtype} with NaN or inf)")
    d = np.asarray(state.delays)
    if d.dtype.kind not in "iu" or (d.size and (d.min() < 0 or d.max() > cfg.max_delay_steps)):
        raise ConfigError(
            f"delays must be integers in [0, {cfg.max_delay_steps}] steps (network.input_delay_max_ms / dt_ms)"
        )


def check_images(images, keys, n_input: int) -> tuple[np.ndarray, list[int]]:
    """Validate a batch for :meth:`DCEngine.present` and return it as float64 ``[B, n_input]``.

    ``images``: ``[B, n_input]`` or ``[B, h, w]`` with ``h * w = n_input``, finite, non-negative (pixel
    intensities, 0-255 in MNIST); ``keys``: one integer per image (:func:`example_key`)."""
    arr = np.asarray(images)
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise ValueError(f"images must be numbers (pixel intensities), got dtype {arr.dtype}")
    keys = [int(k) for k in (keys.reshape(-1).tolist() if isinstance(keys, np.ndarray) else keys)]
    if arr.ndim < 1 or arr.shape[0] != len(keys):
        raise ValueError(
            f"present() got {arr.shape[0] if arr.ndim else 0} images but {len(keys)} keys: give one key "
            f"per image (spikeforge.engines.example_key)"
        )
    per = math.prod(arr.shape[1:]) if arr.ndim > 1 else 0
    if per != n_input:
        raise ValueError(
            f"images of shape {arr.shape} have {per} pixels each but the network has network.n_input = "
            f"{n_input} inputs: pass [batch, {n_input}] (or [batch, h, w] with h * w = {n_input})"
        )
    arr = arr.reshape(len(keys), n_input).astype(np.float64)
    if kind == "f" and not np.isfinite(arr).all():
        raise ValueError("images contain NaN or inf: pixel intensities must be finite")
    if kind in "if" and arr.size and arr.min() < 0:
        raise ValueError(f"images contain negative pixels (minimum {arr.min():g}): intensities must be >= 0")
    return arr, keys


def check_events(ptr, idx, n_input: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate CSR input events (``ptr`` non-decreasing from 0 to ``len(idx)``, ``idx`` in
    ``[0, n_input)``) and return them as contiguous int32 arrays."""
    ptr = np.asarray(ptr)
    idx = np.asarray(idx)
    if ptr.ndim != 1 or idx.ndim != 1 or ptr.dtype.kind not in "iu" or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError("events must be 1-D integer arrays: ptr [n_steps + 1] and idx [n_events] (CSR by step)")
    if len(ptr) < 1 or ptr[0] != 0 or ptr[-1] != len(idx) or np.any(np.diff(ptr) < 0):
        raise ValueError(f"ptr must rise from 0 to len(idx) = {len(idx)} (got {ptr[:1].tolist()}..{ptr[-1:].tolist()})")
    if idx.size and (idx.min() < 0 or idx.max() >= n_input):
        raise ValueError(f"input indices must be in [0, {n_input}) (got {idx.min()}..{idx.max()})")
    return np.ascontiguousarray(ptr, np.int32), np.ascontiguousarray(idx, np.int32)


def present_protocol(
    engine: DCEngine,
    pixels: np.ndarray,
    keys: Sequence[int],
    learning: bool,
    run_attempt: Callable[[np.ndarray, list[bool], int], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The Diehl & Cook presentation protocol for a batch ``pixels [B, n_input]`` (float64).

    For each attempt: normalise the weights (learning only), run ``run_attempt(rates_hz [B, n_in],
    pending [B], attempt)`` (input for ``example_ms``; it returns the counts ``[B, N]``), rest,
    and retry the examples with fewer than ``min_spikes`` spikes at ``intensity + intensity_step``,
    up to ``max_retries`` times (in test mode only when ``retry_in_test``). The rates of examples no
    longer pending are 0. (Per-example bookkeeping in plain Python: the batch is small, often 1.)
    """
    proto = engine.cfg.protocol
    b = len(keys)
    counts = np.zeros((b, engine.cfg.network.n_neurons), np.int64)
    attempts = np.zeros(b, np.int64)
    pending = [True] * b
    intensity = [proto.input_intensity] * b
    for attempt in range(proto.max_retries + 1):
        if learning:
            engine.normalize()
        scale = np.array([proto.rate_hz_per_level * x if p else 0.0 for x, p in zip(intensity, pending)])
        c = run_attempt(pixels * scale[:, None], pending, attempt)
        engine.rest(learning)
        totals = c.sum(1).tolist()
        for k in range(b):
            if pending[k]:
                counts[k] = c[k]
                attempts[k] += 1
        if not learning and not proto.retry_in_test:
            break
        pending = [p and t < proto.min_spikes for p, t in zip(pending, totals)]
        if not any(pending):
            break
        intensity = [x + proto.intensity_step if p else x for x, p in zip(intensity, pending)]
    return counts, attempts
