"""Sweeps and searches over any experiment's config, as Optuna studies on a relational database
(SQLite by default; PostgreSQL or MySQL to share one study between machines). See
:mod:`spikeforge.sweep.space` for the space file, :mod:`spikeforge.sweep.study` for how workers
share a study, :mod:`spikeforge.sweep.runner` for what a trial runs, and
:mod:`spikeforge.sweep.report` for the table and figures."""

from .space import ParamSpec, Space, load_space, parse_space
from .targets import TARGETS, Target

__all__ = ["TARGETS", "ParamSpec", "Space", "Target", "load_space", "parse_space"]
