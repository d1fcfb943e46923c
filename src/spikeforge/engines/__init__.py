"""Engines advance a network in time: a compiled exact CPU engine (numba) and a batched PyTorch
engine for any device. Both read the same model description."""

from .base import ENGINES, DCEngine, attempt_seed, example_key, make_engine

__all__ = ["ENGINES", "DCEngine", "attempt_seed", "example_key", "make_engine"]
