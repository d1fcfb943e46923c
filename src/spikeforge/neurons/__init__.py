"""Neuron models: parameters, state and pure step functions."""

from . import conductance_lif, current_lif
from .conductance_lif import ConductanceLIFParams, inhibitory_defaults
from .current_lif import CurrentLIFParams

__all__ = ["conductance_lif", "current_lif", "ConductanceLIFParams", "CurrentLIFParams",
           "inhibitory_defaults"]
