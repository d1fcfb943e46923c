"""Trace-based STDP rules of Diehl & Cook (2015) for the input-to-excitatory synapses.

Every rule keeps a presynaptic trace ``x_pre`` per synapse and postsynaptic traces ``x_post1``
(fast) and ``x_post2`` (slow) per neuron, each decaying exponentially between spikes::

    dx/dt = -x / tau      and on a spike   x <- 1      (trace_mode="set", the released code)
                                           x <- x + 1  (trace_mode="add", the paper's wording)

Each rule is one module, which holds its equation and both of its forms, registered in
:mod:`.stdp_registry`. ``w`` is clipped to ``[w_min, w_max]`` after each update.

- ``triplet``: :mod:`.stdp_triplet`, the only rule in the released code;
- ``postpre``: :mod:`.stdp_postpre`, pre-and-post with power-law weight dependence;
- ``exponential``: :mod:`.stdp_exponential`, exponential weight dependence;
- ``presynaptic``: :mod:`.stdp_presynaptic`, a presynaptic trace with a target and power-law weight
  dependence, the rule the paper presents first.

Only ``triplet`` is in the released code; for the other three the paper's parameter values could not
be checked (reference §1.2). Our defaults: ``mu = 0.2`` is the value of the unused
``exp_ee_pre/exp_ee_post = 0.2`` of the released code, which look like leftovers of these rules;
``beta = 3`` is our choice. ``x_tar`` is "the target value of the presynaptic trace at the moment of
a postsynaptic spike": inputs whose trace is below it are depressed. The default ``x_tar = 0.2`` was
chosen by measurement (docs/benchmarks.md, N = 400, one epoch): the released code's unused
``STDP_offset = 0.4`` gives 80.6 % (presynaptic), 81.8 % (postpre), 87.7 % (exponential); 0.2 gives
87.5 %, 87.3 %, 88.1 % (triplet: 89.4 %).

The Brian 2 ports flipped the sign of the pre-spike term (zxzhijia/Brian2STDPMNIST#15); it is
available as ``pre_sign=+1`` for comparison, never the default.

Rules are identified by ``kind``, a name in the registry. A new rule is a new module under
``plasticity/`` that calls :func:`~.stdp_registry.register_rule`; no engine changes
(docs/architecture.md, "add a learning rule").
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from ..config import Params
from . import stdp_exponential, stdp_postpre, stdp_presynaptic, stdp_triplet  # noqa: F401  (register)
from .stdp_registry import PARAM_ORDER, STDPRule, get_rule, rule_names


class STDPParams(Params):
    """STDP on the input-to-excitatory weights. Defaults: Diehl & Cook (2015), original code
    l.331-338 (tc_pre 20 ms, tc_post1 20 ms, tc_post2 40 ms, nu_pre 1e-4, nu_post 1e-2, wmax 1)."""

    kind: str = Field("triplet", description="a registered rule (plasticity.stdp_registry.rule_names())")
    tau_pre_ms: float = Field(20.0, gt=0)
    tau_post1_ms: float = Field(20.0, gt=0)
    tau_post2_ms: float = Field(40.0, gt=0)
    nu_pre: float = Field(1e-4, ge=0, le=1)
    nu_post: float = Field(1e-2, ge=0, le=1)
    pre_sign: Literal[-1, 1] = -1
    w_min: float = 0.0
    w_max: float = Field(1.0, gt=0)
    trace_mode: Literal["set", "add"] = "set"
    x_tar: float = Field(0.2, ge=0, description="target pre trace (postpre, exponential, presynaptic)")
    mu: float = Field(0.2, ge=0, description="power-law weight dependence exponent")
    beta: float = Field(3.0, ge=0, description="exponential weight dependence")
    nu_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description=(
            "learning-rate schedule: nu_pre and nu_post are multiplied by nu_decay every nu_decay_every "
            "training examples (1 = constant rates, as in the original code)"
        ),
    )
    nu_decay_every: int = Field(250, ge=1, description="training examples per learning-rate decay step")

    @field_validator("kind")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in rule_names():
            raise ValueError(f"unknown STDP rule {v!r}: choose one of {', '.join(rule_names())}")
        return v

    @property
    def rule(self) -> STDPRule:
        """The registered rule named by ``kind`` (its compiled and tensor forms)."""
        return get_rule(self.kind)

    def rate_scale(self, examples_seen: int) -> float:
        """Factor on nu_pre and nu_post after ``examples_seen`` training examples:
        ``nu_decay ** (examples_seen // nu_decay_every)`` (piecewise constant, a function of the
        example count only, so a resumed run continues the same schedule)."""
        return float(self.nu_decay ** (int(examples_seen) // self.nu_decay_every))

    def scaled(self, scale: float) -> STDPParams:
        """The same rule with nu_pre and nu_post multiplied by ``scale`` (the schedule's factor)."""
        return self.model_copy(update={"nu_pre": self.nu_pre * scale, "nu_post": self.nu_post * scale})

    def kernel_params(self) -> np.ndarray:
        """The rule's numbers in the fixed order the update formulas read them."""
        return np.array([float(getattr(self, k)) for k in PARAM_ORDER], dtype=np.float64)
