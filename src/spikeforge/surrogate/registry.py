"""Surrogate spike gradients.

A spiking neuron emits ``S = H(x)`` with ``x = U - theta`` (membrane minus threshold, in membrane
units) and ``H`` the Heaviside step (``H(0) = 0``: a spike needs ``U > theta``). ``H`` has no useful
derivative, so training replaces ``dS/dx`` in the backward pass by a smooth *surrogate* ``g(x)``
while the forward pass stays exactly binary.

Each surrogate is a frozen parameter object with its slope (sharpness) as a field; the derivative
is written out below so that it can be checked against the analytic formula and reused by the
compiled LIF kernels (``code`` selects the same formula there).

========================  ===============================================  ======================
name                      ``g(x) = dS/dx``                                  smooth primitive
========================  ===============================================  ======================
``fast_sigmoid`` (k)      ``1 / (1 + k|x|)^2``  (SuperSpike, Zenke &        ``x/(1+k|x|)`` scaled
                          Ganguli 2018; snn-tha uses k = 10.22 on MNIST)
``arctan`` (alpha)        ``(alpha/2) / (1 + (pi*alpha*x/2)^2)``            ``atan(pi*alpha*x/2)/pi + 1/2``
``sigmoid`` (k)           ``k * s(kx) * (1 - s(kx))``, ``s`` logistic       ``s(kx)``
``straight_through``      ``1``  (identity; slope ignored)                  ``x``
``triangle`` (k)          ``k * max(0, 1 - k|x|)``                          piecewise quadratic
========================  ===============================================  ======================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
from pydantic import Field

from ..config import ConfigError, Params


class Surrogate(Params):
    """Base class: subclasses define ``name``, ``code`` and :meth:`grad`."""

    name: ClassVar[str] = ""
    code: ClassVar[int] = -1
    slope: float = Field(1.0, gt=0.0, description="sharpness of the surrogate (1 / width in membrane units)")

    def grad(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Heaviside forward, surrogate backward."""
        return spike_fn(x, self)


class FastSigmoid(Surrogate):
    """``g(x) = 1/(1 + k|x|)^2``. Default slope 25 (SuperSpike); snn-tha MNIST uses 10.22."""

    name: ClassVar[str] = "fast_sigmoid"
    code: ClassVar[int] = 0
    slope: float = Field(25.0, gt=0.0)

    def grad(self, x):
        return 1.0 / (1.0 + self.slope * x.abs()) ** 2


class ArcTan(Surrogate):
    """``g(x) = (a/2) / (1 + (pi a x / 2)^2)``, the derivative of ``atan(pi a x/2)/pi``. Default a = 2."""

    name: ClassVar[str] = "arctan"
    code: ClassVar[int] = 1
    slope: float = Field(2.0, gt=0.0)

    def grad(self, x):
        return (self.slope / 2.0) / (1.0 + (math.pi / 2.0 * self.slope * x) ** 2)


class Sigmoid(Surrogate):
    """``g(x) = k s(kx)(1 - s(kx))``, the derivative of the logistic ``s(kx)``. Default k = 25."""

    name: ClassVar[str] = "sigmoid"
    code: ClassVar[int] = 2
    slope: float = Field(25.0, gt=0.0)

    def grad(self, x):
        s = torch.sigmoid(self.slope * x)
        return self.slope * s * (1.0 - s)


class StraightThrough(Surrogate):
    """``g(x) = 1``: the gradient passes unchanged (the slope is accepted and ignored)."""

    name: ClassVar[str] = "straight_through"
    code: ClassVar[int] = 3

    def grad(self, x):
        return torch.ones_like(x)


class Triangle(Surrogate):
    """``g(x) = k max(0, 1 - k|x|)``: unit area, support ``|x| < 1/k``. Default k = 1."""

    name: ClassVar[str] = "triangle"
    code: ClassVar[int] = 4

    def grad(self, x):
        return self.slope * torch.clamp(1.0 - self.slope * x.abs(), min=0.0)


SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls for cls in (FastSigmoid, ArcTan, Sigmoid, StraightThrough, Triangle)
}
_ALIASES = {
    "atan": "arctan",
    "ste": "straight_through",
    "fast-sigmoid": "fast_sigmoid",
    "straight-through": "straight_through",
}


def register_surrogate(cls: type[Surrogate]) -> type[Surrogate]:
    """Add a user-defined :class:`Surrogate` subclass to the registry (usable as a decorator).
    User surrogates run on the unfused (pure PyTorch) LIF path; ``code`` must stay -1."""
    if not cls.name:
        raise ConfigError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    if cls.name in SURROGATES:
        raise ConfigError(f"a surrogate named '{cls.name}' is already registered")
    SURROGATES[cls.name] = cls
    return cls


def get_surrogate(name: str | Surrogate, slope: float | None = None) -> Surrogate:
    """Return the surrogate ``name`` with the given slope (or its default slope).

    Raises :class:`ConfigError` listing the known names for an unknown name, and for a slope <= 0.
    """
    if isinstance(name, Surrogate):
        return name if slope is None else name.replace(slope=slope)
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in SURROGATES:
        raise ConfigError(f"unknown surrogate gradient '{name}' (known: {', '.join(sorted(SURROGATES))})")
    cls = SURROGATES[key]
    return cls.from_dict({} if slope is None else {"slope": slope})


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, surrogate):
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(x), None


def spike_fn(x: torch.Tensor, surrogate: Surrogate | str = "fast_sigmoid") -> torch.Tensor:
    """``H(x)`` (1 where ``x > 0``) in the forward pass, ``grad * g(x)`` in the backward pass."""
    if not isinstance(surrogate, Surrogate):
        surrogate = get_surrogate(surrogate)
    return _SpikeFn.apply(x, surrogate)


SurrogateLike = "str | Surrogate"
GradFn = Callable[[torch.Tensor], torch.Tensor]
