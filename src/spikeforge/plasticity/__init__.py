"""Learning rules: parameters and equations of STDP and its relatives."""

from .stdp import RULE_CODES, STDPParams

__all__ = ["RULE_CODES", "STDPParams"]
