"""A winner-take-all layer of LIF neurons fed by image patches, trained with event-based STDP.

The pipeline of the talk "Building and Training Spiking Neural Networks" (W. Gebhardt), after
Tavanaei, Masquelier & Maida (2018):

1. **Patches** (:mod:`spikeforge.encoding.patches`): each ``p x p`` patch is one input vector of
   ``n_in = p * p`` pixels in ``[0, 1]``.
2. **Rate coding**: input ``i`` fires at step ``t`` with probability
   ``pixel_i * max_rate_hz * dt_ms / 1000`` (a Bernoulli process, at most one spike per step),
   for ``steps`` steps per patch.
3. **Excitatory LIF layer** of ``N = n_features`` current-based LIF neurons
   (:mod:`spikeforge.neurons.current_lif`, reused unchanged) driven by the current
   ``I_e(t) = input_current_na * (y(t) @ W) - I_inh(t)``, where ``W`` is ``[n_in, N]`` and each
   column ``W[:, j]`` is feature ``j``. The adaptive threshold of the talk,
   ``thr <- thr - alpha * thr + beta * spikes``, is the homeostasis that spreads the inputs over
   all features; it belongs to the neuron, so it is shared by all patches presented in parallel
   (``spikes`` is then the mean over the batch, so the set point ``beta * rate / alpha`` does not
   depend on the batch size) and persists from patch to patch.
4. **Winner-take-all**, one of:

   - ``"ei"`` (the talk's circuit, :mod:`spikeforge.synapses.wta`): excitatory neuron ``j`` drives
     its own inhibitory neuron through the identity matrix ``W_ei = w_ei_na * I``; inhibitory
     neurons are current-based LIF cells too (``inhibitory``), and their spikes feed back through
     the hollow matrix ``W_ie = w_ie_na * (1 - I)``: ``I_inh(t) = s_i(t - 1) @ W_ie``. So an
     excitatory spike silences the *other* excitatory neurons from the next step on; neurons that
     cross threshold in the same step all fire.
   - ``"k_winners"``: the instantaneous limit of that circuit. Of the neurons that cross threshold
     in a step, only the ``k`` with the largest drive ``v + R * I - thr`` fire; the others are
     reset to ``v_reset`` without spiking (as very strong, immediate inhibition would do) and are
     not refractory. With ``k = 1`` at most one feature learns per patch and step.
   - ``"none"``: independent neurons (for comparisons).

5. **Event-based STDP** (:mod:`spikeforge.plasticity.event_stdp`) on every excitatory spike.
   Training presents ``batch_size`` patches in parallel, all sharing ``W``; the STDP updates of one
   step are summed over the batch (exact online learning with ``batch_size = 1``).

The learned features are the columns of ``W``. After training, :func:`respond` runs the same layer
with learning and threshold adaptation frozen, batched over any number of patches (with constant,
expected input a compiled loop, ``engines.event_stdp_numba.respond_constant_compiled``), and returns
spike counts; :func:`reconstruct_patches` maps counts back to pixels through the feature weights.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from pydantic import Field, model_validator

from ..config import ConfigError, Params
from ..encoding.poisson import bernoulli_spikes
from ..neurons import current_lif
from ..neurons.adaptive_threshold import talk_threshold
from ..neurons.current_lif import CurrentLIFParams
from ..plasticity.event_stdp import EventSTDPParams, event_stdp_update, pre_active_in_window, update_last_spike
from ..synapses.wta import hollow_current, k_winners


def _default_excitatory() -> CurrentLIFParams:
    # Talk-style LIF in "membrane units": rest/reset 0, threshold 1; the adaptive threshold
    # (alpha, beta) provides homeostasis. Values tuned for 7x7 MNIST patches (docs/benchmarks.md).
    return CurrentLIFParams(
        v_rest_mv=0.0,
        v_reset_mv=0.0,
        v_thresh_mv=1.0,
        tau_m_ms=10.0,
        r_mohm=1.0,
        refractory_ms=2.0,
        adapt_alpha=0.001,
        adapt_beta_mv=1.6,
    )


def _default_inhibitory() -> CurrentLIFParams:
    # Fast inhibitory cells: one spike of the partner (w_ei_na) brings them over threshold at once.
    return CurrentLIFParams(v_rest_mv=0.0, v_reset_mv=0.0, v_thresh_mv=0.5, tau_m_ms=1.0, r_mohm=1.0, refractory_ms=0.0)


class RateCodingParams(Params):
    """Bernoulli rate code of pixels in [0, 1]; P(spike per step) = pixel * max_rate_hz * dt."""

    steps: int = Field(30, ge=1, le=100_000, description="simulation steps per patch")
    dt_ms: float = Field(1.0, gt=0.0, le=100.0)
    max_rate_hz: float = Field(200.0, gt=0.0, description="rate of a pixel of value 1")

    @model_validator(mode="after")
    def _probability(self) -> RateCodingParams:
        if self.max_rate_hz * self.dt_ms * 1e-3 > 1.0:
            raise ValueError(
                f"max_rate_hz * dt_ms / 1000 = {self.max_rate_hz * self.dt_ms * 1e-3:.3g}"
                f" must be <= 1 (at most one spike per input and step)"
            )
        return self

    @property
    def max_prob(self) -> float:
        return self.max_rate_hz * self.dt_ms * 1e-3


class WTALayerParams(Params):
    """A layer of ``n_features`` excitatory LIF neurons with winner-take-all inhibition."""

    n_features: int = Field(64, ge=1, le=100_000)
    n_inputs: int = Field(49, ge=1, description="pixels per patch (size_px ** 2)")
    input_current_na: float = Field(1.0, gt=0.0, description="current per unit weight per input spike")
    inhibition: Literal["ei", "k_winners", "none"] = "ei"
    w_ei_na: float = Field(10.0, ge=0.0, description="E->I one-to-one (identity) weight")
    w_ie_na: float = Field(20.0, ge=0.0, description="I->E all-others (hollow) weight, inhibitory")
    k: int = Field(1, ge=1, description="winners per step for inhibition = 'k_winners'")
    excitatory: CurrentLIFParams = Field(default_factory=_default_excitatory)
    inhibitory: CurrentLIFParams = Field(default_factory=_default_inhibitory)
    w_init_low: float = Field(0.0, ge=0.0)
    w_init_high: float = Field(1.0, gt=0.0)


class LayerState(NamedTuple):
    exc: current_lif.CurrentLIFState
    inh: current_lif.CurrentLIFState
    inh_spikes: torch.Tensor


def init_weights(p: WTALayerParams, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[n_inputs, n_features]`` weights, uniform in ``[w_init_low, w_init_high)``."""
    u = torch.rand((p.n_inputs, p.n_features), generator=generator)
    return p.w_init_low + (p.w_init_high - p.w_init_low) * u


def init_thresholds(p: WTALayerParams) -> torch.Tensor:
    """Adaptive threshold increments ``[1, n_features]``, starting at 0 (as in the talk)."""
    return torch.zeros((1, p.n_features))


def check_weights(w: torch.Tensor, p: WTALayerParams) -> None:
    """Fail clearly when weights do not have the layer's shape ``[n_inputs, n_features]``."""
    if tuple(w.shape) != (p.n_inputs, p.n_features):
        raise ConfigError(
            f"weights of shape {tuple(w.shape)} do not fit a layer of "
            f"{p.n_features} features on {p.n_inputs}-pixel patches (expected "
            f"{(p.n_inputs, p.n_features)}); set layer.n_features and "
            f"patches.size_px to match the saved features, or retrain"
        )


def _fresh_state(p: WTALayerParams, batch: int, thr: torch.Tensor) -> LayerState:
    exc = current_lif.initial_state(p.excitatory, (batch, p.n_features))._replace(thr=thr)
    inh = current_lif.initial_state(p.inhibitory, (batch, p.n_features))
    return LayerState(exc, inh, torch.zeros((batch, p.n_features), dtype=torch.bool))


def layer_step(
    state: LayerState, input_spikes: torch.Tensor, w: torch.Tensor, p: WTALayerParams, dt_ms: float, adapt: bool
):
    """One step of the layer for a batch of patches. ``input_spikes``: ``[batch, n_in]``.

    Returns ``(new_state, excitatory_spikes [batch, N] bool)``. The adaptive threshold
    ``state.exc.thr`` has shape ``[1, N]`` (shared by the batch); with ``adapt=False`` it is frozen.
    """
    ep = p.excitatory
    current = p.input_current_na * (input_spikes.to(w.dtype) @ w)
    if p.inhibition == "ei":
        current = current - hollow_current(state.inh_spikes, p.w_ie_na)
    thr = state.exc.thr
    new_exc, spikes = current_lif.step(state.exc, current, ep, dt_ms)
    if p.inhibition == "k_winners" and bool(spikes.any()):
        drive = state.exc.v + ep.r_mohm * current - thr
        winners = k_winners(spikes, drive, p.k)
        losers = spikes & ~winners
        left = torch.where(losers, (state.exc.refractory_left - 1).clamp_min(0), new_exc.refractory_left)
        new_exc = new_exc._replace(refractory_left=left)
        spikes = winners
    if adapt:
        # the talk's adaptive threshold; parallel copies of the neuron contribute their mean spike,
        # so the set point does not depend on the batch size (batch 1: the equation exactly)
        new_thr = talk_threshold(thr, spikes.to(thr.dtype).mean(0, keepdim=True), ep.adapt_alpha, ep.adapt_beta_mv)
    else:
        new_thr = thr
    new_exc = new_exc._replace(thr=new_thr)
    inh, inh_spikes = state.inh, state.inh_spikes
    if p.inhibition == "ei":
        inh, inh_spikes = current_lif.step(state.inh, p.w_ei_na * spikes.to(w.dtype), p.inhibitory, dt_ms)
    return LayerState(new_exc, inh, inh_spikes), spikes


def _bernoulli(pixels: torch.Tensor, max_prob: float, generator: torch.Generator | None):
    return bernoulli_spikes(pixels * max_prob, generator, dtype=torch.float32)


def train_batch(
    w: torch.Tensor,
    thr: torch.Tensor,
    patches: torch.Tensor,
    layer: WTALayerParams,
    coding: RateCodingParams,
    stdp: EventSTDPParams,
    generator: torch.Generator | None = None,
):
    """Present a batch of patches ``[batch, n_in]`` (pixels in [0, 1]) for ``coding.steps`` steps
    with event-based STDP on. Returns ``(w, thr, n_post_spikes)``; ``w`` and ``thr`` are new tensors.
    """
    check_weights(w, layer)
    if patches.dim() != 2 or patches.shape[1] != w.shape[0]:
        raise ConfigError(
            f"patches of shape {tuple(patches.shape)} do not match weights of shape "
            f"{tuple(w.shape)}; expected [batch, {w.shape[0]}]"
        )
    if stdp.window_steps >= coding.steps:
        raise ConfigError(
            f"event_stdp.window_steps = {stdp.window_steps} must be shorter than the "
            f"presentation (coding.steps = {coding.steps})"
        )
    batch = patches.shape[0]
    state = _fresh_state(layer, batch, thr)
    last_pre = torch.full(patches.shape, -1, dtype=torch.int64)
    n_spikes = 0
    for t in range(coding.steps):
        y = _bernoulli(patches, coding.max_prob, generator)
        last_pre = update_last_spike(last_pre, y, t)
        state, s = layer_step(state, y, w, layer, coding.dt_ms, adapt=True)
        if bool(s.any()):
            rows = s.any(dim=1)  # only the patches with a post event contribute
            w = event_stdp_update(w, pre_active_in_window(last_pre[rows], t, stdp.window_steps), s[rows], stdp)
            n_spikes += int(s.sum())
    return w, state.exc.thr, n_spikes


@torch.no_grad()
def respond(
    w: torch.Tensor,
    thr: torch.Tensor,
    patches: torch.Tensor,
    layer: WTALayerParams,
    coding: RateCodingParams,
    generator: torch.Generator | None = None,
    chunk: int = 65536,
    deterministic: bool = False,
    engine: Literal["numba", "torch"] = "numba",
) -> torch.Tensor:
    """Spike counts ``[M, N]`` (float32) of the frozen layer (no STDP, no threshold adaptation) for
    ``patches`` ``[M, n_in]``, computed ``chunk`` patches at a time (bounded memory).

    ``deterministic=True`` replaces the Bernoulli input spikes by their expectation
    ``pixel * max_prob`` (a rate-based drive; the layer still spikes). The input current is then
    constant during the presentation, and with ``engine="numba"`` the steps run in a compiled loop
    (``engines.event_stdp_numba.respond_constant_compiled``, several times faster; a test compares it
    with the PyTorch step: equal counts up to rare float32 rounding at the threshold).
    Bernoulli input always uses the PyTorch step."""
    check_weights(w, layer)
    out = torch.empty((patches.shape[0], w.shape[1]), dtype=torch.float32)
    for lo in range(0, patches.shape[0], chunk):
        x = patches[lo : lo + chunk]
        if deterministic and engine == "numba":
            from ..engines.event_stdp_numba import respond_constant_compiled  # the compiled simulator

            current = layer.input_current_na * ((x * coding.max_prob).to(w.dtype) @ w)
            out[lo : lo + chunk] = respond_constant_compiled(current, thr, layer, coding)
            continue
        state = _fresh_state(layer, x.shape[0], thr)
        counts = torch.zeros((x.shape[0], w.shape[1]), dtype=torch.float32)
        for _ in range(coding.steps):
            y = x * coding.max_prob if deterministic else _bernoulli(x, coding.max_prob, generator)
            state, s = layer_step(state, y, w, layer, coding.dt_ms, adapt=False)
            counts += s
        out[lo : lo + chunk] = counts
    return out


def reconstruct_patches(
    counts: torch.Tensor, w: torch.Tensor, scale: float = 1.0, normalize: bool = False
) -> torch.Tensor:
    """Patches rebuilt from feature activity (``[..., N] -> [..., n_in]``).

    ``normalize=False``: ``scale * counts @ W.T``, each feature contributing its weight vector in
    proportion to its spike count. ``normalize=True``: ``scale * (counts / sum(counts)) @ W.T``,
    the count-weighted *mean* of the active features' weight vectors (a prototype code: each
    feature's weights are where its inputs tend to be on); a silent patch gives 0.
    """
    c = counts.to(w.dtype)
    if normalize:
        c = c / c.sum(dim=-1, keepdim=True).clamp_min(1.0)
    return scale * (c @ w.T)


def fit_reconstruction_scale(
    counts: torch.Tensor, w: torch.Tensor, patches: torch.Tensor, normalize: bool = False
) -> float:
    """Least-squares ``scale`` of :func:`reconstruct_patches` for the given patches (0 if silent)."""
    r = reconstruct_patches(counts, w, 1.0, normalize).double()
    denom = float((r * r).sum())
    return float((r * patches.double()).sum()) / denom if denom > 0 else 0.0


class EventSTDPPatchLayer:
    """Thin stateful wrapper of the functions above: holds the features ``w`` and thresholds
    ``thr`` and a seeded generator.

    >>> layer = EventSTDPPatchLayer(WTALayerParams(n_features=16, n_inputs=25), seed=0)
    >>> n_spikes = layer.learn(torch.rand(64, 25))          # event-based STDP on 64 patches
    >>> layer.respond(torch.rand(10, 25)).shape             # frozen spike counts
    torch.Size([10, 16])
    """

    def __init__(
        self,
        layer: WTALayerParams,
        coding: RateCodingParams | None = None,
        stdp: EventSTDPParams | None = None,
        seed: int = 0,
        batch_size: int = 32,
    ):
        self.layer = layer
        self.coding = coding or RateCodingParams()
        self.stdp = stdp or EventSTDPParams()
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.w = init_weights(layer, self.generator)
        self.thr = init_thresholds(layer)

    def learn(self, patches: torch.Tensor) -> int:
        """Present ``patches`` ``[M, n_inputs]`` (in order, ``batch_size`` at a time) with STDP on;
        returns the number of postsynaptic spikes."""
        total = 0
        for lo in range(0, patches.shape[0], self.batch_size):
            self.w, self.thr, n = train_batch(
                self.w, self.thr, patches[lo : lo + self.batch_size], self.layer, self.coding, self.stdp, self.generator
            )
            total += n
        return total

    def respond(
        self, patches: torch.Tensor, layer: WTALayerParams | None = None, deterministic: bool = False
    ) -> torch.Tensor:
        """Spike counts ``[M, n_features]`` of the frozen layer (``layer`` overrides the circuit's
        parameters, e.g. softer inhibition; see :func:`respond`)."""
        return respond(
            self.w, self.thr, patches, layer or self.layer, self.coding, self.generator, deterministic=deterministic
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self.w.clone(), "thresholds": self.thr.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        w = torch.as_tensor(state["weights"], dtype=torch.float32)
        check_weights(w, self.layer)
        self.w = w.clone()
        self.thr = torch.as_tensor(state["thresholds"], dtype=torch.float32).reshape(1, -1).clone()
