"""The Diehl & Cook (2015) network: its complete description and its learnable state.

Input layer X (one Poisson unit per pixel) -> excitatory layer Ae (conductance LIF, adaptive
threshold, STDP on X->Ae) -> inhibitory layer Ai, wired one-to-one Ae->Ai and all-but-self Ai->Ae.

:class:`DiehlCookConfig` is the one model description every engine reads; :class:`DiehlCookState`
holds what training changes (weights, theta) plus the fixed random delays. Nothing is sized by a
constant: every shape derives from ``network.n_input`` and ``network.n_neurons``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator

from ..config import ConfigError, Params
from ..neurons.conductance_lif import ConductanceLIFParams, InhibitoryLIFParams, steps
from ..plasticity.stdp import STDPParams
from ..synapses.projections import normalize_columns  # noqa: F401  (re-exported)


class NetworkParams(Params):
    """Sizes and fixed weights. Defaults: original code l.249-287, 360-425 (reference §2.4)."""

    n_input: int = Field(784, gt=0)
    n_neurons: int = Field(100, gt=0, description="excitatory neurons (= inhibitory neurons)")
    w_ei: float = Field(10.4, ge=0, description="Ae->Ai one-to-one conductance weight")
    w_ie: float = Field(17.0, ge=0, description="Ai->Ae all-but-self conductance weight")
    w_init_scale: float = Field(0.3, ge=0, description="initial X->Ae weights (U[0,1)+offset)*scale")
    w_init_offset: float = Field(0.01, ge=0)
    input_delay_max_ms: float = Field(10.0, ge=0, description="X->Ae delays ~ U[0, max) ms, rounded to dt")
    norm_total: float | None = Field(
        78.0, gt=0, description="column sum of X->Ae before every presentation; None disables"
    )


class ProtocolParams(Params):
    """Presentation protocol. Defaults: original code l.213, 252-253, 288, 447-489 (reference §2.2)."""

    dt_ms: float = Field(0.5, gt=0, le=10)
    example_ms: float = Field(350.0, gt=0)
    rest_ms: float = Field(150.0, ge=0)
    rate_hz_per_level: float = Field(
        0.125, gt=0, description="rate = pixel * this * intensity (pixel/8 Hz per intensity unit)"
    )
    input_intensity: float = Field(2.0, gt=0, description="starting intensity: 2 -> pixel/4 Hz, 0-63.75 Hz")
    intensity_step: float = Field(1.0, ge=0, description="retry rule: intensity += this (+pixel/8 Hz)")
    min_spikes: int = Field(5, ge=0, description="retry when the excitatory layer fires fewer spikes")
    max_retries: int = Field(30, ge=0, description="safety cap on retries per example (the original has none)")
    retry_in_test: bool = Field(True, description="the original applies the retry rule in test mode too")

    @property
    def example_steps(self) -> int:
        return steps(self.example_ms, self.dt_ms)

    @property
    def rest_steps(self) -> int:
        return steps(self.rest_ms, self.dt_ms)


class DiehlCookConfig(Params):
    """Everything that defines the network and its learning; saved with every checkpoint."""

    network: NetworkParams = Field(default_factory=NetworkParams)
    exc: ConductanceLIFParams = Field(default_factory=ConductanceLIFParams)
    inh: InhibitoryLIFParams = Field(default_factory=InhibitoryLIFParams)
    stdp: STDPParams = Field(default_factory=STDPParams)
    protocol: ProtocolParams = Field(default_factory=ProtocolParams)

    @model_validator(mode="after")
    def _check(self):
        if self.stdp.w_max < self.stdp.w_min:
            raise ValueError("stdp.w_max must be >= stdp.w_min")
        return self

    @property
    def max_delay_steps(self) -> int:
        return steps(self.network.input_delay_max_ms, self.protocol.dt_ms)


@dataclass
class DiehlCookState:
    """What learning changes, plus the fixed random delays (all numpy, engine-neutral).

    ``weights``: (n_input, n_neurons) float64, X->Ae; ``theta``: (n_neurons,) mV;
    ``delays``: (n_input, n_neurons) int32, in steps.
    """

    weights: np.ndarray
    theta: np.ndarray
    delays: np.ndarray

    def check_shapes(self, cfg: DiehlCookConfig) -> None:
        want = (cfg.network.n_input, cfg.network.n_neurons)
        for name, arr, shape in (
            ("weights", self.weights, want),
            ("delays", self.delays, want),
            ("theta", self.theta, (want[1],)),
        ):
            if tuple(arr.shape) != shape:
                raise ConfigError(
                    f"{name} have shape {tuple(arr.shape)} but the config asks for {shape} "
                    f"(n_input={want[0]}, n_neurons={want[1]}): start a new run directory or set "
                    f"--neurons {arr.shape[-1]} to match the saved network"
                )


def init_state(cfg: DiehlCookConfig, rng: np.random.Generator) -> DiehlCookState:
    """Random initial weights ``(U[0,1) + 0.01) * 0.3`` and delays ``U[0, 10 ms)`` (original
    random connection generator), theta at ``theta_init_mv``."""
    net = cfg.network
    shape = (net.n_input, net.n_neurons)
    w = (rng.random(shape) + net.w_init_offset) * net.w_init_scale
    w = np.clip(w, cfg.stdp.w_min, cfg.stdp.w_max)
    if net.input_delay_max_ms > 0:
        delays_ms = rng.random(shape) * net.input_delay_max_ms
        d = np.rint(delays_ms / cfg.protocol.dt_ms).astype(np.int32)
        d = np.minimum(d, cfg.max_delay_steps)
    else:
        d = np.zeros(shape, dtype=np.int32)
    theta = np.full(net.n_neurons, cfg.exc.theta_init_mv if cfg.exc.adaptive else 0.0)
    return DiehlCookState(weights=w, theta=theta, delays=d)
