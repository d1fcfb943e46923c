r"""Threshold annealing ("bounded homeostasis", Eshraghian & Lu 2022, snn-tha).

Per LIF layer a scalar threshold relaxes exponentially, once after every optimizer step, from its
initial value towards a fixed ceiling, independently of the data and of the gradients::

    theta <- theta + alpha * (theta_final - theta)          (one call of ThresholdAnnealing.step())

so that after ``n`` steps ``theta(n) = theta_final - (theta_final - theta_0) * (1 - alpha)^n``.
A low initial threshold lets spikes reach the deep layers at the start of training (no dead
neurons); the high final threshold gives binarized-weight neurons a wide membrane range.
In snn-tha (reference §1.6) the MNIST values are theta_0 = (11.666, 14.105, 0.6656),
theta_final = theta_0 + (4.317, 16.29, 3.496), alpha = (0.024, 0.119, 0.0011) per iteration.

The schedule edits the ``threshold`` buffer of each layer in place under ``no_grad``, so the
annealed values are part of the model's ``state_dict`` (and so of every checkpoint); its own state
is just the number of steps taken (:meth:`state_dict`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field, ValidationInfo, field_validator

from ..config import ConfigError, Params


class AnnealParams(Params):
    """One layer's schedule: initial and final threshold (membrane units) and rate per step."""

    theta_initial: float = Field(..., gt=0.0)
    theta_final: float = Field(..., gt=0.0)
    alpha: float = Field(..., gt=0.0, le=1.0, description="relaxation rate per optimizer step, in (0, 1]")

    @field_validator("theta_final")
    @classmethod
    def _final_not_below_initial(cls, v: float, info: ValidationInfo) -> float:
        t0 = info.data.get("theta_initial")
        if t0 is not None and v < t0:
            raise ValueError(
                f"theta_final = {v} is below theta_initial = {t0}; annealing only "
                "raises thresholds (theta_final must be >= theta_initial)"
            )
        return v

    def theta_at(self, n: int | float) -> float:
        """Closed form after ``n`` steps."""
        return self.theta_final - (self.theta_final - self.theta_initial) * (1.0 - self.alpha) ** n


class ThresholdAnnealing:
    """Anneal the ``threshold`` tensors of several layers; call :meth:`step` after each
    ``optimizer.step()``.

    ``layers``: modules with a ``threshold`` tensor (e.g. :class:`spikeforge.neurons.Leaky`);
    ``params``: one :class:`AnnealParams` per layer. :meth:`reset` sets each threshold to
    ``theta_initial`` (done at construction unless ``reset=False``, e.g. when resuming).
    """

    def __init__(self, layers: Sequence[torch.nn.Module], params: Sequence[AnnealParams | dict], reset: bool = True):
        if len(layers) != len(params):
            raise ConfigError(
                f"threshold annealing got {len(layers)} layers but {len(params)} schedules; give one schedule per layer"
            )
        self.layers = list(layers)
        self.params = [p if isinstance(p, AnnealParams) else AnnealParams.from_dict(p) for p in params]
        for i, layer in enumerate(self.layers):
            if not isinstance(getattr(layer, "threshold", None), torch.Tensor):
                raise ConfigError(f"layer {i} ({type(layer).__name__}) has no 'threshold' tensor")
        self.num_steps = 0
        if reset:
            self.reset()

    @torch.no_grad()
    def reset(self) -> None:
        for layer, p in zip(self.layers, self.params):
            layer.threshold.fill_(p.theta_initial)
        self.num_steps = 0

    @torch.no_grad()
    def step(self) -> None:
        for layer, p in zip(self.layers, self.params):
            layer.threshold.add_(p.alpha * (p.theta_final - layer.threshold))
        self.num_steps += 1

    def thresholds(self) -> list[float]:
        return [float(layer.threshold.detach().mean()) for layer in self.layers]

    def state_dict(self) -> dict:
        return {"num_steps": self.num_steps, "params": [p.to_dict() for p in self.params]}

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state["num_steps"])
