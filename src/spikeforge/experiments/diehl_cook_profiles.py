"""Profiles of the Diehl & Cook experiment: which model values follow from the network size.

``run.profile`` chooses how the model parameters that the released code tuned for one size are
set, unless the config sets them itself (``--set``, ``--config``: an explicit value always wins):

``default``
    Size-adaptive values that reach the paper at every size. The threshold increment grows with
    the square root of the network size, ``theta_plus_mv = 0.05 * sqrt(N / 400)``: exactly the
    released 0.05 mV at N = 400 (the size the released script was written for), 0.025 mV at
    N = 100, 0.1 mV at N = 1600, 0.2 mV at N = 6400. Both layers integrate with
    ``"euler_substep"``: forward Euler as in the original, with substeps only on the neuron-steps
    where Euler is unstable (the lock-up at N >= 1600 that forward Euler alone runs into).
    The measurements behind the rule are in docs/benchmarks.md ("theta+ and the network size").
``released``
    The released code's exact settings at every size: ``theta_plus_mv = 0.05`` and forward
    ``"euler"`` in both layers (bit for bit the engine output of spikeforge before profiles).

The packaged TOML leaves these keys out; :func:`fill_profile` puts the profile's value into the
config data wherever a key is absent, before the config is validated, so ``--show-config`` and
``config.json`` show the values a run uses. :func:`profile_record` is what results.json records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

PROFILES = ("default", "released")
DEFAULT_PROFILE = "default"

#: the released script's size and threshold increment (Diehl & Cook 2015 code, n_e = 400)
RELEASED_N = 400
RELEASED_THETA_PLUS_MV = 0.05


def theta_plus_for(n_neurons: int) -> float:
    """The default profile's threshold increment (mV) for ``n_neurons`` excitatory neurons:
    ``0.05 * sqrt(N / 400)``, so exactly the released 0.05 mV at N = 400."""
    return RELEASED_THETA_PLUS_MV * math.sqrt(n_neurons / RELEASED_N)


#: (dotted key, {profile: (value of N, rule in words)})
DERIVED: dict[str, dict[str, tuple[Callable[[int], Any], str]]] = {
    "model.exc.theta_plus_mv": {
        "default": (theta_plus_for, "0.05 mV * sqrt(N / 400)"),
        "released": (lambda n: RELEASED_THETA_PLUS_MV, "0.05 mV at every size (released code)"),
    },
    "model.exc.integration": {
        "default": (lambda n: "euler_substep", "Euler, substeps where Euler is unstable"),
        "released": (lambda n: "euler", "forward Euler (released code)"),
    },
    "model.inh.integration": {
        "default": (lambda n: "euler_substep", "Euler, substeps where Euler is unstable"),
        "released": (lambda n: "euler", "forward Euler (released code)"),
    },
}


def profile_value(profile: str, key: str, n_neurons: int) -> Any:
    """The value ``profile`` gives the derived ``key`` for a network of ``n_neurons``."""
    return DERIVED[key][profile][0](n_neurons)


def _n_neurons(model: Mapping[str, Any]) -> int | None:
    from ..models.diehl_cook import NetworkParams

    net = model.get("network", {})
    if isinstance(net, Mapping):
        n = net.get("n_neurons", NetworkParams.model_fields["n_neurons"].default)
    else:  # a NetworkParams object
        n = getattr(net, "n_neurons", None)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def fill_profile(data: Any) -> Any:
    """``data`` (the raw dict of a whole experiment config) with every derived key that it does
    not set filled in from its profile. Anything malformed is passed on untouched for validation
    to report (an unknown profile, a bad size, a model given as an object)."""
    if not isinstance(data, Mapping):
        return data
    run = data.get("run", {})
    profile = run.get("profile", DEFAULT_PROFILE) if isinstance(run, Mapping) else getattr(run, "profile", None)
    model = data.get("model", {})
    if profile not in PROFILES or not isinstance(model, Mapping):
        return data
    n = _n_neurons(model)
    if n is None:
        return data
    model = dict(model)
    for key in DERIVED:
        _, section, field = key.split(".")
        part = model.get(section, {})
        if not isinstance(part, Mapping):  # a parameter object: its values are explicit
            continue
        if field not in part:
            model[section] = {**part, field: profile_value(profile, key, n)}
    return {**data, "model": model}


def profile_record(profile: str, model: Any) -> dict[str, Any]:
    """For results.json: the profile and, for each derived parameter, its value, the profile's
    value, the rule, and ``source``: ``"profile"`` when the run used the profile's value,
    ``"set"`` when the config replaced it (``--set``, ``--config``, or a run saved with another
    value)."""
    n = model.network.n_neurons
    derived = {}
    for key, rules in DERIVED.items():
        _, section, field = key.split(".")
        value = getattr(getattr(model, section), field)
        wanted = profile_value(profile, key, n)
        derived[key] = {
            "value": value,
            "profile_value": wanted,
            "rule": rules[profile][1],
            "source": "profile" if value == wanted else "set",
        }
    return {"name": profile, "n_neurons": n, "derived": derived}
