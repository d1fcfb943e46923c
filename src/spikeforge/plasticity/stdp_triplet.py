"""The triplet STDP rule of Diehl & Cook (2015), the only rule in the released code (l.331-338;
reference §2.5)::

    pre spike arrives:  w <- w + pre_sign * nu_pre * x_post1        (pre_sign = -1: depression)
    post spike:         w <- w + nu_post * x_pre * x_post2(t-)      (x_post2 just before this spike)

then ``w`` is clipped to ``[w_min, w_max]``. Traces and parameters: :mod:`spikeforge.plasticity.stdp`.
"""

from __future__ import annotations

import torch

from ..jit import kernel
from .stdp_registry import STDPRule, register_rule


@kernel(inline="always")
def on_pre(w, x_post1, x_post2, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta):
    return w + pre_sign * nu_pre * x_post1


@kernel(inline="always")
def on_post(w, x_pre, x_post2_before, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta):
    return w + nu_post * x_pre * x_post2_before


def dw_pre(p, w: torch.Tensor, arrived: torch.Tensor, x_post1: torch.Tensor, x_post2: torch.Tensor) -> torch.Tensor:
    return (p.pre_sign * p.nu_pre) * torch.einsum("bij,bj->ij", arrived, x_post1)


def dw_post(p, w: torch.Tensor, x_pre: torch.Tensor, post: torch.Tensor, x_post2_before: torch.Tensor) -> torch.Tensor:
    return p.nu_post * torch.einsum("bij,bj->ij", x_pre, post * x_post2_before)


RULE = register_rule(STDPRule("triplet", on_pre, on_post, dw_pre, dw_post, "the released code's triplet rule"))
