"""The registry of Diehl & Cook STDP rules: one entry per rule, in both of its forms.

A rule is one module under ``plasticity/`` (``stdp_triplet.py`` is the model). The module states the
rule's equation in its docstring and defines two things. Its **compiled form** is two numba
functions, ``@spikeforge.jit.kernel(inline="always")``, that return the new weight before clipping to
``[w_min, w_max]``, which the engines do::

    on_pre(w, x_post1, x_post2, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta)
    on_post(w, x_pre, x_post2_before, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta)

Its **tensor form** is two functions that return ``dW [n_in, N]`` summed over a batch::

    dw_pre(p, w, arrived [B, n_in, N], x_post1 [B, N], x_post2 [B, N])
    dw_post(p, w, x_pre [B, n_in, N], post_spikes [B, N], x_post2_before [B, N])

The module then calls :func:`register_rule`. The CLI's ``--rule`` choices, ``STDPParams.kind``'s
allowed values and the engine-equivalence tests all read this registry. The compiled engine builds
its loop once per rule with the rule's two functions inlined
(:func:`spikeforge.engines.dc_numba_kernel.kernel_for`). A rule registered at run time, for example
from a test module, therefore runs in the compiled engine without editing it, and the default rule
runs exactly as fast as when its formulas were written into the loop.

Contract: ``on_pre`` must return ``w`` unchanged when ``x_post1`` is 0. Every Diehl & Cook
pre-spike term is proportional to the post trace, and the compiled engine skips the call then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PARAM_ORDER = ("nu_pre", "nu_post", "pre_sign", "w_min", "w_max", "x_tar", "mu", "beta")


@dataclass(frozen=True)
class STDPRule:
    """One registered rule: its name (``STDPParams.kind``), compiled and tensor forms, a summary."""

    name: str
    on_pre: object
    on_post: object
    dw_pre: Callable
    dw_post: Callable
    summary: str = ""


_RULES: dict[str, STDPRule] = {}


def register_rule(rule: STDPRule, *, replace: bool = False) -> STDPRule:
    """Add ``rule`` to the registry (``replace=True`` to redefine a name)."""
    if not rule.name.isidentifier():
        raise ValueError(f"rule name {rule.name!r} must be an identifier (letters, digits, _)")
    if rule.name in _RULES and not replace and _RULES[rule.name] is not rule:
        raise ValueError(f"an STDP rule named {rule.name!r} is already registered (pass replace=True)")
    for which, fn in (("on_pre", rule.on_pre), ("on_post", rule.on_post)):
        if not hasattr(fn, "py_func"):
            raise TypeError(
                f"rule {rule.name!r}: {which} must be a numba function, e.g. decorated with "
                f"@spikeforge.jit.kernel(inline='always') or @numba.njit"
            )
    _RULES[rule.name] = rule
    return rule


def unregister_rule(name: str) -> None:
    """Remove a rule (tests that register a temporary one)."""
    _RULES.pop(name, None)


def get_rule(name: str) -> STDPRule:
    try:
        return _RULES[name]
    except KeyError:
        raise KeyError(f"unknown STDP rule {name!r} (registered: {', '.join(_RULES)})") from None


PAPER_RULES = ("triplet", "postpre", "exponential", "presynaptic")


def rule_names() -> tuple[str, ...]:
    """Names of the registered rules: the paper's four first (the default, triplet, leading), then
    the others in registration order."""
    return tuple(n for n in PAPER_RULES if n in _RULES) + tuple(n for n in _RULES if n not in PAPER_RULES)
