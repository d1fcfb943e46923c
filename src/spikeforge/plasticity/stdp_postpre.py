"""Pre-and-post STDP with power-law weight dependence (Diehl & Cook 2015, paper §2.3, reference
§1.2)::

    pre spike arrives:  w <- w + pre_sign * nu_pre * x_post1 * w**mu     (pre_sign = -1)
    post spike:         w <- w + nu_post * (x_pre - x_tar) * (w_max - w)**mu

then ``w`` is clipped to ``[w_min, w_max]``. The post-spike term is the presynaptic rule's
(:mod:`.stdp_presynaptic`, its one home); this module adds the pre-spike depression.
"""

from __future__ import annotations

import torch

from ..jit import kernel
from . import stdp_presynaptic
from .stdp_registry import STDPRule, register_rule


@kernel(inline="always")
def on_pre(w, x_post1, x_post2, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta):
    return w + pre_sign * nu_pre * x_post1 * max(w, 0.0) ** mu


def dw_pre(p, w: torch.Tensor, arrived: torch.Tensor, x_post1: torch.Tensor, x_post2: torch.Tensor) -> torch.Tensor:
    return (p.pre_sign * p.nu_pre) * torch.einsum("bij,bj->ij", arrived, x_post1) * w.clamp_min(0) ** p.mu


RULE = register_rule(
    STDPRule(
        "postpre", on_pre, stdp_presynaptic.on_post, dw_pre, stdp_presynaptic.dw_post, "pre-and-post, power-law bound"
    )
)
