"""STDP with exponential weight dependence (Diehl & Cook 2015, paper §2.3)::

    pre spike arrives:  no change
    post spike:         w <- w + nu_post * (x_pre * exp(-beta * w) - x_tar * exp(-beta * (w_max - w)))

then ``w`` is clipped to ``[w_min, w_max]``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..jit import kernel
from . import stdp_presynaptic
from .stdp_registry import STDPRule, register_rule


@kernel(inline="always")
def on_post(w, x_pre, x_post2_before, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta):
    return w + nu_post * (x_pre * np.exp(-beta * w) - x_tar * np.exp(-beta * (w_max - w)))


def dw_post(p, w: torch.Tensor, x_pre: torch.Tensor, post: torch.Tensor, x_post2_before: torch.Tensor) -> torch.Tensor:
    pot = torch.einsum("bij,bj->ij", x_pre, post) * torch.exp(-p.beta * w)
    dep = post.sum(0)[None, :] * p.x_tar * torch.exp(-p.beta * (p.w_max - w))
    return p.nu_post * (pot - dep)


# no pre-spike term: the presynaptic rule's (identity) pre-spike functions
RULE = register_rule(
    STDPRule(
        "exponential",
        stdp_presynaptic.on_pre,
        on_post,
        stdp_presynaptic.dw_pre,
        dw_post,
        "exponential weight dependence",
    )
)
