"""Learning rules: parameters and equations of STDP and its relatives, each rule in one module."""

from .stdp import STDPParams
from .stdp_registry import STDPRule, get_rule, register_rule, rule_names

__all__ = ["STDPParams", "STDPRule", "get_rule", "register_rule", "rule_names"]
