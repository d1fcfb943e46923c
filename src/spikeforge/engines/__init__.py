"""Engines advance a network in time: a compiled exact CPU engine (numba) and a batched PyTorch
engine for any device, both implementing :class:`~.base.DCEngine` and reading the same model
description and the same building blocks."""

from .base import DCEngine, attempt_seed, example_key
from .factory import ENGINES, make_engine

__all__ = ["ENGINES", "DCEngine", "attempt_seed", "example_key", "make_engine"]
