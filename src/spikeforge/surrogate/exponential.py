"""The exponential (Laplace) surrogate of lava-dl SLAYER, registered as ``exponential``.

lava-dl v0.4.0 (``slayer/spike/spike.py``) uses ``dS/dx = scale / (2 tau) * exp(-|x| / tau)`` with
``tau = 100 * tau_grad * theta`` and ``scale = 0.1 * scale_grad`` (reference §1.4). Here the slope is
``k = 1 / tau`` and the amplitude is normalised to unit area, ``g(x) = (k / 2) exp(-k |x|)``; the
lava factor ``scale`` (0.3 for scale_grad 3) only rescales every gradient of a layer, which Adam's
per-parameter normalisation removes. The lava-dl DECOLLE tutorial values (tau_grad 0.03,
theta 1.25) give ``tau = 3.75``, so the default slope is ``1 / 3.75``.

Importing this module registers the surrogate (``get_surrogate("exponential")``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from .registry import SURROGATES, Surrogate, register_surrogate


class Exponential(Surrogate):
    """``g(x) = (k/2) exp(-k|x|)``. Default k = 1/3.75 (lava-dl tau_grad 0.03 at threshold 1.25)."""

    name: ClassVar[str] = "exponential"
    slope: float = Field(1.0 / 3.75, gt=0.0)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.slope * torch.exp(-self.slope * x.abs())


if Exponential.name not in SURROGATES:
    register_surrogate(Exponential)
