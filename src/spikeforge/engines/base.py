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
- ``start_recording(capacity)`` / ``stop_recording()`` for excitatory spike rasters.

Every random draw of a presentation comes from a seed derived from ``(run seed, key, attempt)``.
The key names the example (epoch and index), so the same seed gives the same run on the same
engine, and a resumed run draws exactly what an uninterrupted one would have drawn.

The factory :func:`spikeforge.engines.make_engine` lives in :mod:`.factory`, so this module imports
no engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..config import ConfigError
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState


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

    def present(self, images, learning: bool, keys) -> tuple[np.ndarray, np.ndarray]: ...
    def run_events(self, ptr, idx, learning: bool) -> np.ndarray: ...
    def normalize(self) -> None: ...
    def rest(self, learning: bool) -> None: ...
    def set_rate_scale(self, scale: float) -> None: ...
    def export_state(self) -> DiehlCookState: ...
    def dynamic_state(self) -> dict[str, np.ndarray]: ...
    def load_dynamic_state(self, arrays: dict[str, np.ndarray]) -> bool: ...
    def start_recording(self, capacity: int) -> None: ...
    def stop_recording(self) -> tuple[np.ndarray, np.ndarray]: ...


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
