"""Surrogate spike gradients: a small registry of named, parameterised derivatives of the spike."""

from .registry import (
    SURROGATES,
    ArcTan,
    FastSigmoid,
    Sigmoid,
    StraightThrough,
    Surrogate,
    Triangle,
    get_surrogate,
    register_surrogate,
    spike_fn,
)

__all__ = [
    "SURROGATES",
    "ArcTan",
    "FastSigmoid",
    "Sigmoid",
    "StraightThrough",
    "Surrogate",
    "Triangle",
    "get_surrogate",
    "register_surrogate",
    "spike_fn",
]
