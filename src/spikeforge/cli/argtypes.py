"""argparse value types shared by the sub-commands: each rejects bad input with a message that
names the problem (argparse adds the flag's name). Defined with the experiment scaffold's flags."""

from ..experiments.scaffold.cli import nonneg_int, number, positive_int, whole

__all__ = ["nonneg_int", "number", "positive_int", "whole"]
