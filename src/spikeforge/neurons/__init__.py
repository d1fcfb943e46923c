"""Neuron models: parameters, state and pure step functions."""

from . import conductance_lif, current_lif
from .conductance_lif import ConductanceLIFParams, InhibitoryLIFParams, inhibitory_defaults
from .current_lif import CurrentLIFParams
from .leaky import Leaky, LeakyParams, leaky_multistep, leaky_step  # noqa: F401  (gradient-trained LIF)

__all__ = [
    "conductance_lif",
    "current_lif",
    "ConductanceLIFParams",
    "CurrentLIFParams",
    "InhibitoryLIFParams",
    "inhibitory_defaults",
]
