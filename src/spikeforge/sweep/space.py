"""Search spaces for ``spikeforge sweep``, written in TOML.

A space file names the config keys to vary (the keys ``--set section.key=value`` accepts) and how::

    [study]
    sampler = "grid"          # grid | random | tpe
    metric = "accuracy"       # a key of the run's results.json (default: the experiment's own)
    direction = "maximize"    # or "minimize"
    pruner = "none"           # none | median: stop a trial whose running metric falls below the median

    [params]
    "model.stdp.kind" = ["triplet", "postpre"]                      # a list of values
    "model.network.n_neurons" = [100, 400]
    "model.stdp.nu_post" = { low = 0.001, high = 0.02, step = 0.001 } # a range (ints when all bounds are)
    "model.exc.theta_plus_mv" = { low = 0.01, high = 0.1, log = true, num = 4 }  # a log range

A grid needs a finite set for every key: lists, ranges with ``step``, or ranges with ``num`` points
(evenly spaced, or geometrically with ``log = true``). Random and TPE sampling draw from the
ranges directly (``num`` is then ignored).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..config import ConfigError

Sampler = Literal["grid", "random", "tpe"]
SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "median")
_RANGE_KEYS = {"low", "high", "step", "log", "num"}


@dataclass(frozen=True)
class ParamSpec:
    """One swept config key: a list of ``choices`` or a ``low``..``high`` range."""

    key: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    num: int | None = None

    @property
    def is_int(self) -> bool:
        bounds = [b for b in (self.low, self.high, self.step) if b is not None]
        return self.choices is None and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)

    def grid_values(self) -> list[Any]:
        """The finite values this key takes in a grid."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.num is not None:
            if self.num == 1:
                return [self.low]
            if self.log:
                ratio = (self.high / self.low) ** (1 / (self.num - 1))
                vals = [self.low * ratio**i for i in range(self.num)]
            else:
                vals = [self.low + (self.high - self.low) * i / (self.num - 1) for i in range(self.num)]
            return [round(v) for v in vals] if self.is_int else [float(f"{v:.12g}") for v in vals]
        if self.step is None:
            raise ConfigError(
                f"space key '{self.key}': a grid needs a finite set of values; give the range a "
                f"'step' or a number of points 'num', or use sampler = \"random\" or \"tpe\""
            )
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        vals = [self.low + i * self.step for i in range(n)]
        return [int(v) for v in vals] if self.is_int else [float(f"{v:.12g}") for v in vals]

    def suggest(self, trial: Any) -> Any:
        """Draw this key's value for an optuna trial."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Space:
    """A parsed space file."""

    params: tuple[ParamSpec, ...]
    sampler: Sampler = "grid"
    metric: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    pruner: str = "none"

    def grid(self) -> list[dict[str, Any]]:
        """Every configuration of a grid, in a fixed order (first key slowest)."""
        keys = [p.key for p in self.params]
        return [dict(zip(keys, combo)) for combo in itertools.product(*(p.grid_values() for p in self.params))]

    def grid_space(self) -> dict[str, list[Any]]:
        return {p.key: p.grid_values() for p in self.params}


def _parse_param(key: str, spec: Any, where: str) -> ParamSpec:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: '{key}' is an empty list; give at least one value")
        return ParamSpec(key, choices=tuple(spec))
    if not isinstance(spec, dict):
        return ParamSpec(key, choices=(spec,))  # a single fixed value
    unknown = set(spec) - _RANGE_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: '{key}' has unknown field(s) {sorted(unknown)} (allowed: {', '.join(sorted(_RANGE_KEYS))})"
        )
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: range '{key}' needs both 'low' and 'high'")
    low, high = spec["low"], spec["high"]
    for name, v in (("low", low), ("high", high), ("step", spec.get("step", 1))):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{where}: '{key}'.{name} = {v!r} is not a number")
    if not high > low:
        raise ConfigError(f"{where}: range '{key}' is empty (low = {low}, high = {high}); high must exceed low")
    step = spec.get("step")
    if step is not None and not step > 0:
        raise ConfigError(f"{where}: '{key}'.step = {step} must be positive")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"{where}: log range '{key}' needs low > 0 (got {low})")
    if log and step is not None:
        raise ConfigError(f"{where}: '{key}': a log range cannot have a step; give 'num' points instead")
    num = spec.get("num")
    if num is not None and (isinstance(num, bool) or not isinstance(num, int) or num < 1):
        raise ConfigError(f"{where}: '{key}'.num = {num!r} must be a positive integer")
    return ParamSpec(key, low=low, high=high, step=step, log=log, num=num)


def parse_space(data: dict[str, Any], where: str = "space") -> Space:
    """Validate a space given as a dict (the parsed TOML)."""
    unknown = set(data) - {"study", "params"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)} (allowed: study, params)")
    study = data.get("study", {})
    allowed = {"sampler", "metric", "direction", "pruner"}
    if set(study) - allowed:
        raise ConfigError(
            f"{where}: unknown [study] key(s) {sorted(set(study) - allowed)} (allowed: {', '.join(sorted(allowed))})"
        )
    sampler = study.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{where}: sampler = {sampler!r} is not one of {', '.join(SAMPLERS)}")
    direction = study.get("direction")
    if direction not in (None, "maximize", "minimize"):
        raise ConfigError(f'{where}: direction = {direction!r} must be "maximize" or "minimize"')
    pruner = study.get("pruner", "none")
    if pruner not in PRUNERS:
        raise ConfigError(f"{where}: pruner = {pruner!r} is not one of {', '.join(PRUNERS)}")
    raw = data.get("params", {})
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f'{where}: no [params] to sweep; add e.g. "run.seed" = [0, 1] under [params]')
    params = tuple(_parse_param(k, v, where) for k, v in raw.items())
    space = Space(params, sampler=sampler, metric=study.get("metric"), direction=direction, pruner=pruner)
    if sampler == "grid":
        space.grid()  # raises for infinite ranges
    return space


def load_space(path: str | Path) -> Space:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"space file {path} is a directory; pass the TOML file inside it")
    if not path.is_file():
        raise ConfigError(f"space file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"space file {path} is not valid TOML: {err}") from None
    return parse_space(data, where=str(path))


def toml_value(value: Any) -> str:
    """A value written so that ``--set key=<this>`` reads it back as the same TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)
