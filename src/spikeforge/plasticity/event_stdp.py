"""Postsynaptic event-based STDP (Tavanaei, Masquelier & Maida 2018).

"Representation learning using event-based STDP", Neural Networks 105:294-303 (arXiv:1706.06699).
The weights are updated only when a postsynaptic neuron spikes (a postsynaptic *event*). When
neuron ``j`` spikes at step ``t``, every incoming weight ``w_ij`` changes::

    dw_ij = eta * A_plus  * (w_max - (1 + lambda) * w_ij)   if input i spiked in [t - eps, t]
    dw_ij = -eta * A_minus * (1 + lambda) * w_ij             otherwise

so inputs that were active within the window ``eps`` (``window_steps``) are potentiated towards
``w_max / (1 + lambda)`` and all the others decay towards 0: the rule has weight decay built in,
which fixes the "blank pixel" problem of pair-based STDP (weights from silent inputs never change).
Both branches are *soft bounds*: for one event with ``eta * A * (1 + lambda) <= 1`` (enforced by
:class:`EventSTDPParams`) a weight in ``[0, w_max / (1 + lambda)]`` stays in that interval. Weights
are finally clipped to ``[0, w_max]``, which only matters for summed batch updates (below).

Defaults are those of the first author's code (tavanaei/Spiking-CNN, ``RLSTDP/SpikeConv.py``):
``A_plus = 1``, ``A_minus = 0.75``, ``lambda = 0``, ``eps = 0`` (only inputs spiking at the same step),
``w_max = 1``, learning rate ``mu = 5e-4``.

Batches. :func:`event_stdp_delta` accepts a batch of independent presentations (``[batch, n_in]``
pre activity, ``[batch, n_out]`` post spikes) and returns the **sum** of their updates computed
from the same weights. With ``batch = 1`` this is exactly the online rule; with larger batches it
is the usual minibatch approximation (the updates of one step are not applied one after another),
which the callers say wherever they use it.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from ..config import Params


class EventSTDPParams(Params):
    """Parameters of postsynaptic event-based STDP; defaults from Tavanaei's RLSTDP code (see the
    module docstring)."""

    learning_rate: float = Field(5e-4, gt=0.0, le=1.0, description="eta (mu in the paper's code)")
    a_plus: float = Field(1.0, ge=0.0, le=10.0, description="LTP scale A+")
    a_minus: float = Field(0.75, ge=0.0, le=10.0, description="LTD scale A-")
    decay_lambda: float = Field(
        0.0, ge=0.0, le=10.0, description="lambda: LTP bound w_max/(1+lambda), LTD factor (1+lambda)"
    )
    w_max: float = Field(1.0, gt=0.0, description="upper weight bound")
    window_steps: int = Field(
        0, ge=0, le=10_000, description="eps: an input counts as active if it spiked in [t-eps, t]"
    )

    @model_validator(mode="after")
    def _soft_bound_holds(self) -> EventSTDPParams:
        worst = self.learning_rate * max(self.a_plus, self.a_minus) * (1.0 + self.decay_lambda)
        if worst > 1.0:
            raise ValueError(
                f"learning_rate * max(a_plus, a_minus) * (1 + decay_lambda) = {worst:.4g} must be "
                f"<= 1, otherwise one update overshoots the soft bounds; lower learning_rate "
                f"(now {self.learning_rate})"
            )
        return self


def pre_active_in_window(last_pre_step: torch.Tensor, t: int, window_steps: int) -> torch.Tensor:
    """Inputs that spiked within ``[t - window_steps, t]``, given the step of each input's last
    spike (``-1`` or less for 'never'); returns a float 0/1 tensor of the same shape."""
    return ((last_pre_step >= 0) & (last_pre_step >= t - window_steps)).to(torch.float32)


def update_last_spike(last_pre_step: torch.Tensor, pre_spikes: torch.Tensor, t: int) -> torch.Tensor:
    """New last-spike steps after the input spikes of step ``t``."""
    return torch.where(pre_spikes.bool(), torch.full_like(last_pre_step, t), last_pre_step)


def event_stdp_delta(
    w: torch.Tensor, pre_active: torch.Tensor, post_spikes: torch.Tensor, p: EventSTDPParams
) -> torch.Tensor:
    """Weight change of event-based STDP (equation in the module docstring), summed over a batch.

    w: ``[n_in, n_out]``; pre_active: ``[n_in]`` or ``[batch, n_in]`` (1 where the input spiked in
    the window); post_spikes: ``[n_out]`` or ``[batch, n_out]`` (1 where the neuron spiked now).
    """
    pre = pre_active.to(w.dtype)
    post = post_spikes.to(w.dtype)
    if pre.dim() == 1:
        pre, post = pre.unsqueeze(0), post.unsqueeze(0)
    n_ltp = pre.T @ post  # [n_in, n_out]: events with input active
    n_ltd = post.sum(0, keepdim=True) - n_ltp  # events with input silent
    scale = 1.0 + p.decay_lambda
    return p.learning_rate * (p.a_plus * n_ltp * (p.w_max - scale * w) - p.a_minus * n_ltd * scale * w)


def event_stdp_update(
    w: torch.Tensor, pre_active: torch.Tensor, post_spikes: torch.Tensor, p: EventSTDPParams
) -> torch.Tensor:
    """``w + dw`` clipped to ``[0, w_max]`` (a new tensor; ``w`` is not modified)."""
    return (w + event_stdp_delta(w, pre_active, post_spikes, p)).clamp_(0.0, p.w_max)
