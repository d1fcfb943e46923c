"""The two LIF neurons of the hybrid olfaction networks, as pure step functions.

**CUBA LIF of lava-dl** (``slayer/neuron/cuba.py`` v0.4.0; the neuron of vgp23/olfactory_network,
reference §1.4), per time step, with ``x[t]`` the weighted input::

    i[t] = (1 - current_decay) i[t-1] + x[t]
    v[t] = (1 - voltage_decay) v[t-1] + i[t]
    s[t] = H(v[t] - threshold)             (a spike needs v > threshold; lava: v >= threshold)
    v[t] <- v[t] (1 - s[t])                (reset to 0; reset = "subtract": v[t] - threshold s[t])

Defaults: current_decay 0.25, voltage_decay 0.03, threshold 1.25 (lava-dl DECOLLE tutorial, used by
vgp23; input neurons use threshold 1.0). lava integrates in fixed point (decays quantised to 1/4096);
this is the float version.

**P/Q/R LIF of DECOLLE** (``nmi-lab/decolle-public:decolle/base_model.py LIFLayer``, reference §3.1)::

    Q[t] = beta Q[t-1] + (1 - beta) gain S_in[t]        (synaptic trace, per input)
    P[t] = alpha P[t-1] + (1 - alpha) Q[t-1]            (membrane trace, per input; previous Q)
    R[t] = alpha_rp R[t-1] - (1 - alpha_rp) w_rp S[t-1] (refractory trace, per neuron)
    U[t] = W P[t] + b + R[t];   S[t] = H(U[t])          (spike at U > 0: the bias is a negative threshold)

Defaults: alpha 0.97, beta 0.92, alpha_rp 0.65 (``scripts/parameters/params*.yml``), w_rp 1, gain 1.
``dU/dW = P``: the presynaptic trace is the eligibility trace of DECOLLE's local gradient.

Both step functions take and return plain tensors (``[batch, n]``), so they run on any device and
dtype and are differentiable where their inputs are; the surrogate comes from
:mod:`spikeforge.surrogate`'s registry by name.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from pydantic import Field

from ..config import Params
from ..surrogate import exponential as _exponential  # noqa: F401  (registers "exponential")
from ..surrogate import get_surrogate, spike_fn


class CubaLIFParams(Params):
    """lava-dl CUBA LIF; defaults from the lava-dl DECOLLE tutorial (reference §1.4)."""

    current_decay: float = Field(0.25, ge=0.0, le=1.0, description="fraction of the current lost per step")
    voltage_decay: float = Field(0.03, ge=0.0, le=1.0, description="fraction of the voltage lost per step")
    threshold: float = Field(1.25, gt=0.0, description="spike threshold (input neurons: 1.0)")
    reset: Literal["zero", "subtract"] = Field("zero", description="lava: v <- 0; or v <- v - threshold")
    surrogate: str = Field("fast_sigmoid", description="name in spikeforge.surrogate's registry")
    surrogate_slope: float = Field(1.0, gt=0.0, description="slope of the surrogate (membrane units^-1)")


class DecolleLIFParams(Params):
    """DECOLLE's P/Q/R LIF; defaults from decolle-public ``scripts/parameters/params.yml``."""

    alpha: float = Field(0.97, ge=0.0, lt=1.0, description="membrane (P) trace retention per step")
    beta: float = Field(0.92, ge=0.0, lt=1.0, description="synaptic (Q) trace retention per step")
    alpha_rp: float = Field(0.65, ge=0.0, lt=1.0, description="refractory (R) trace retention per step")
    w_rp: float = Field(1.0, ge=0.0, description="refractory jump per spike")
    gain: float = Field(1.0, gt=0.0, description="input gain of the Q trace")
    surrogate: str = Field("fast_sigmoid", description="name in spikeforge.surrogate's registry")
    surrogate_slope: float = Field(10.0, gt=0.0, description="decolle-public FastSigmoid: 1/(10|U|+1)^2")


class CubaState(NamedTuple):
    current: torch.Tensor
    voltage: torch.Tensor


class DecolleState(NamedTuple):
    p: torch.Tensor  # [batch, n_in] membrane trace of the inputs
    q: torch.Tensor  # [batch, n_in] synaptic trace of the inputs
    r: torch.Tensor  # [batch, n_out] refractory trace
    s: torch.Tensor  # [batch, n_out] last spikes


def cuba_init(batch: int, n: int, *, dtype=torch.float32, device=None) -> CubaState:
    z = torch.zeros(batch, n, dtype=dtype, device=device)
    return CubaState(z, z.clone())


def cuba_step(
    state: CubaState, x: torch.Tensor, p: CubaLIFParams, threshold: float | None = None
) -> tuple[CubaState, torch.Tensor, torch.Tensor]:
    """One CUBA step: returns ``(new_state, spikes, v_pre_reset)``. Spikes use the surrogate
    (differentiable wrt ``v_pre_reset - threshold``); ``threshold`` overrides ``p.threshold``."""
    theta = p.threshold if threshold is None else threshold
    i = (1.0 - p.current_decay) * state.current + x
    v = (1.0 - p.voltage_decay) * state.voltage + i
    s = spike_fn(v - theta, get_surrogate(p.surrogate, p.surrogate_slope))
    v_new = v * (1.0 - s) if p.reset == "zero" else v - theta * s
    return CubaState(i, v_new), s, v


def cuba_rate(activation: torch.Tensor, gain: float, steps: int, p: CubaLIFParams, threshold: float = 1.0):
    """Spikes per step of input neurons driven by the constant current ``gain * activation``
    over ``steps`` steps (the rate curve of reference §1.5)."""
    x = gain * activation
    st = cuba_init(x.shape[0], x.shape[1], dtype=x.dtype)
    total = torch.zeros_like(x)
    with torch.no_grad():
        for _ in range(steps):
            st, s, _ = cuba_step(st, x, p, threshold)
            total += s
    return total / steps


def decolle_init(batch: int, n_in: int, n_out: int, *, dtype=torch.float32, device=None) -> DecolleState:
    def z(n):
        return torch.zeros(batch, n, dtype=dtype, device=device)

    return DecolleState(z(n_in), z(n_in), z(n_out), z(n_out))


def decolle_traces(state: DecolleState, s_in: torch.Tensor, p: DecolleLIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The presynaptic traces ``(P[t], Q[t])`` from ``S_in[t]`` (P uses the previous Q)."""
    q = p.beta * state.q + (1.0 - p.beta) * p.gain * s_in
    pp = p.alpha * state.p + (1.0 - p.alpha) * state.q
    return pp, q


def decolle_step(
    state: DecolleState,
    s_in: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    p: DecolleLIFParams,
) -> tuple[DecolleState, torch.Tensor, torch.Tensor]:
    """One P/Q/R step: returns ``(new_state, spikes, U)``."""
    pp, q = decolle_traces(state, s_in, p)
    r = p.alpha_rp * state.r - (1.0 - p.alpha_rp) * p.w_rp * state.s
    u = pp @ weight.t() + r
    if bias is not None:
        u = u + bias
    s = spike_fn(u, get_surrogate(p.surrogate, p.surrogate_slope))
    return DecolleState(pp, q, r, s.detach()), s, u
