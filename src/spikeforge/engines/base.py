"""What every Diehl & Cook engine offers, and how randomness is derived.

An engine owns a network's state while it runs and exposes:

- ``present(images, learning, keys)``: the published protocol for a batch of examples (weight
  normalisation before each presentation while learning, Poisson input for ``example_ms``, the retry
  rule, ``rest_ms`` without input); returns spike counts ``[B, N]`` of the last attempt and the
  number of attempts ``[B]``;
- ``run_events(ptr, idx, learning)``: one phase driven by explicit input spikes, for comparisons with
  other simulators on identical input;
- ``set_rate_scale(scale)``: the learning-rate schedule (``stdp.nu_decay``);
- ``export_state()`` / ``dynamic_state()`` / ``load_dynamic_state()`` for checkpoints.

Every random draw of a presentation comes from a seed derived from ``(run seed, key, attempt)``,
where the key names the example (epoch and index): the same seed gives the same run on the same
engine, and a resumed run draws exactly what an uninterrupted one would have drawn.
"""

from __future__ import annotations

import numpy as np

from ..config import ConfigError
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState

ENGINES = ("numba", "torch")


def example_key(seed: int, stage: int, epoch: int, index: int) -> int:
    """A 63-bit key naming one presentation (stage: 0 train, 1 label, 2 test)."""
    ss = np.random.SeedSequence([seed, stage, epoch, index])
    return int(ss.generate_state(2, np.uint64)[0] >> np.uint64(1))


def attempt_seed(key: int, attempt: int) -> int:
    """A 32-bit seed for one attempt of one presentation."""
    return int(np.random.SeedSequence([key, attempt]).generate_state(1)[0])


class DCEngine:
    name = "base"

    def __init__(self, cfg: DiehlCookConfig, state: DiehlCookState, seed: int = 0):
        state.check_shapes(cfg)
        self.cfg = cfg
        self.seed = seed

    def set_rate_scale(self, scale: float) -> None:
        """Multiply the STDP learning rates of the model config by ``scale`` from now on."""
        raise NotImplementedError  # pragma: no cover - interface

    def present(self, images, learning: bool, keys):  # pragma: no cover - interface
        raise NotImplementedError

    def export_state(self) -> DiehlCookState:  # pragma: no cover - interface
        raise NotImplementedError


def make_engine(
    name: str, cfg: DiehlCookConfig, state: DiehlCookState, seed: int = 0, device: str | None = None
) -> DCEngine:
    """Build an engine by name: ``numba`` (exact, sequential, CPU) or ``torch`` (batched, any device)."""
    if name == "numba":
        from .dc_numba import NumbaDCEngine

        return NumbaDCEngine(cfg, state, seed=seed)
    if name == "torch":
        from .dc_torch import TorchDCEngine

        return TorchDCEngine(cfg, state, seed=seed, device=device)
    raise ConfigError(f"unknown engine '{name}' (choose one of: {', '.join(ENGINES)})")
