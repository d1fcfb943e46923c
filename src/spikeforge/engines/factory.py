"""Build a Diehl & Cook engine by name (outside :mod:`.base`, which imports no engine)."""

from __future__ import annotations

from ..config import ConfigError
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState
from .base import DCEngine

ENGINES = ("numba", "torch")


def make_engine(
    name: str, cfg: DiehlCookConfig, state: DiehlCookState, seed: int = 0, device: str | None = None
) -> DCEngine:
    """``numba`` (exact, sequential, CPU) or ``torch`` (batched, any device)."""
    if name == "numba":
        from .dc_numba import NumbaDCEngine

        return NumbaDCEngine(cfg, state, seed=seed)
    if name == "torch":
        from .dc_torch import TorchDCEngine

        return TorchDCEngine(cfg, state, seed=seed, device=device)
    raise ConfigError(f"unknown engine '{name}' (choose one of: {', '.join(ENGINES)})")
