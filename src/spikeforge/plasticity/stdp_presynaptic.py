"""The presynaptic-trace rule with a target ``x_tar`` and power-law weight dependence, the rule
Diehl & Cook (2015) present first (paper §2.3, reference §1.2)::

    pre spike arrives:  no change
    post spike:         w <- w + nu_post * (x_pre - x_tar) * (w_max - w)**mu

then ``w`` is clipped to ``[w_min, w_max]``. Inputs whose trace is below ``x_tar`` at a post spike
are depressed. Normalisation can leave ``w`` above ``w_max``; the soft bound then gives 0, not a
complex power. The same post-spike term is used by :mod:`.stdp_postpre`.
"""

from __future__ import annotations

import torch

from ..jit import kernel
from .stdp_registry import STDPRule, register_rule


@kernel(inline="always")
def on_pre(w, x_post1, x_post2, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta):
    return w


@kernel(inline="always")
def on_post(w, x_pre, x_post2_before, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta):
    return w + nu_post * (x_pre - x_tar) * max(w_max - w, 0.0) ** mu


def dw_pre(p, w: torch.Tensor, arrived: torch.Tensor, x_post1: torch.Tensor, x_post2: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(w)


def dw_post(p, w: torch.Tensor, x_pre: torch.Tensor, post: torch.Tensor, x_post2_before: torch.Tensor) -> torch.Tensor:
    return p.nu_post * torch.einsum("bij,bj->ij", x_pre - p.x_tar, post) * (p.w_max - w).clamp_min(0) ** p.mu


RULE = register_rule(
    STDPRule("presynaptic", on_pre, on_post, dw_pre, dw_post, "presynaptic trace with target, power-law bound")
)
