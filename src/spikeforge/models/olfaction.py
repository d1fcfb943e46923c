"""Hybrid spiking olfaction network: DECOLLE local learning with STDP blocks at any index.

A network is built from ``layer_sizes`` alone (``[50, 500, 50, N_KC]``: OR, ORN, PN, KC). Layer 0
holds the input neurons (one per receptor, driven by the encoded odor); block ``b`` is the dense
projection from layer ``b`` to layer ``b + 1``. Every block that is not listed in
``stdp_block_idx`` is a DECOLLE block: a **fixed random local readout** (``n_class x n_out``,
uniform in ``±readout_ampl / sqrt(n_out)``, decolle-public ``reset_lc_parameters``) on its output
spikes gives a local loss at every step after the burn-in, and the block's weights learn from that
loss alone (its input spikes are detached). STDP blocks learn with :mod:`..plasticity.pair_stdp`
and have no readout. A trainable linear readout (with bias) on the last layer is added in every
mode and gives the prediction: the argmax of its output summed over the steps after the burn-in.

**Closed-form local gradients.** Inputs are detached and the neuron state is not differentiated
across steps, so the gradient of block ``b``'s loss at step ``t`` is exactly::

    dL/dW_b = (dL/dr_b G_b  *  g(u_b - theta)  +  dR/du_b)^T  e_b

with ``r_b = G_b s_b`` the local readout, ``g`` the surrogate, ``R`` DECOLLE's regulariser and
``e_b`` the eligibility: the presynaptic spikes of this step (``eligibility = "step"``: lava-dl's
detached states) or the membrane's filtered input trace (``"trace"``: DECOLLE's ``P``; for CUBA
``e_i <- (1 - current_decay) e_i + s_in``, ``e_v <- (1 - voltage_decay) e_v + e_i``, the
derivative of ``v`` wrt ``W`` ignoring the reset). :class:`OlfactionNet` computes these products
directly (no autograd graph, float32); ``tests/test_olfaction_model.py`` checks them against
PyTorch autograd on the same step.

Sign constraint (blocks after the first): ``"abs"`` uses ``|W|`` in the forward pass (Wang et al.,
``torchmodel.Layer.effective_weight``; the gradient is multiplied by ``sign(W)``), ``"overwrite"``
replaces ``W`` by ``|W|`` after each update (vgp23), ``"none"``.

Data-parallel training (``net.data_parallel``, a :class:`~.data_parallel.BatchShard` of this rank's
rows of the batch): random draws are this rank's rows of the whole batch's draw, and before every
optimizer step the gradients (means over the rank's rows) and the STDP updates (batch means too)
become the whole batch's means in one all-reduce, so the ranks compute what one process computes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field, model_validator

from ..config import Params
from ..neurons.olfaction_lif import CubaLIFParams, DecolleLIFParams
from ..plasticity.pair_stdp import CycleState, PairSTDPParams, apply_stdp, stdp_update
from ..surrogate import get_surrogate
from .olfaction_fast import _loss_grad, _reg_grad, run_fast
from .olfaction_fast import supported as fast_supported

if TYPE_CHECKING:
    from .data_parallel import BatchShard


def _dropped(x: torch.Tensor, keep: torch.Tensor | float) -> torch.Tensor:
    """``x`` times its dropout mask; ``x`` itself where no mask was drawn (no copy per step)."""
    return x if isinstance(keep, float) else x * keep


class OlfactionNetParams(Params):
    """The spiking network. Defaults: vgp23 shape and neuron (reference §1.3-1.4); the training
    choices marked (measured) are ours, see docs/olfaction.md."""

    layer_sizes: list[int] = Field(default_factory=lambda: [50, 500, 50, 2500])
    n_class: int = Field(10, ge=2)
    stdp_block_idx: list[int] = Field(default_factory=list, description="STDP blocks (1 .. n_blocks-1 or -1 ..)")
    neuron: Literal["cuba", "decolle"] = "cuba"
    cuba: CubaLIFParams = Field(default_factory=CubaLIFParams)
    decolle_lif: DecolleLIFParams = Field(default_factory=DecolleLIFParams)
    input_threshold: float = Field(1.0, gt=0.0, description="threshold of the input neurons (vgp23: 1.0)")
    input_reset: Literal["zero", "subtract"] = Field(
        "subtract", description="input neurons: lava's reset to 0, or v <- v - threshold (measured: graded rates)"
    )
    input_gain: float = Field(0.25, gt=0.0, description="odor -> input current (current) or spike probability")
    encoding: Literal["current", "bernoulli", "poisson"] = "current"
    steps: int = Field(150, ge=2, description="time steps per sample (vgp23: 150)")
    burn_in: int = Field(50, ge=0, description="steps without updates (vgp23: 50)")
    eligibility: Literal["step", "trace"] = "trace"
    loss: Literal["cross_entropy", "smooth_l1"] = "cross_entropy"
    reg: float = Field(0.0, ge=0.0, description="DECOLLE regulariser weight")
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="training targets (1 - e) onehot + e / n_class for every readout's loss (0: one-hot); "
        "the logged loss stays that of the label",
    )
    readout_tau_steps: float = Field(
        0.0, ge=0.0, description="readouts see spikes filtered with this time constant (0: the spikes themselves)"
    )
    readout_ampl: float = Field(0.5, gt=0.0, description="local readout U(+-ampl/sqrt(n)) (decolle lc_ampl)")
    init_scale: float = Field(
        0.25, gt=0.0, description="factor on the initial block weights (measured: 1 saturates the KCs)"
    )
    bias: bool = Field(True, description="trainable bias in DECOLLE blocks")
    sign_constraint: Literal["abs", "overwrite", "none"] = "abs"
    noise_std: float = Field(0.0, ge=0.0, description="additive Gaussian receptor noise")
    readout_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="training: dropout on the inputs of every readout, fresh each step"
    )
    stdp_fan_in: int = Field(
        0, ge=0, description="STDP blocks: inputs per neuron, drawn at random (0: dense); STDP keeps the others at 0"
    )
    stdp_target_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="STDP blocks: homeostatic bias towards this rate, spikes/step (0: off)"
    )
    homeostasis_lr: float = Field(1e-3, ge=0.0, description="bias change per update step and unit of rate error")
    stdp: PairSTDPParams = Field(default_factory=PairSTDPParams)

    @model_validator(mode="after")
    def _check(self) -> OlfactionNetParams:
        if len(self.layer_sizes) < 2:
            raise ValueError(f"layer_sizes = {self.layer_sizes} needs at least two layers (input and one more)")
        if any(n < 1 for n in self.layer_sizes):
            raise ValueError(f"layer_sizes = {self.layer_sizes}: every size must be >= 1")
        if self.burn_in >= self.steps:
            raise ValueError(f"burn_in = {self.burn_in} must be < steps = {self.steps} (allowed 0 .. {self.steps - 1})")
        nb = len(self.layer_sizes) - 1
        for i in self.stdp_block_idx:
            if not (1 <= i <= nb - 1 or -(nb - 1) <= i <= -1):
                raise ValueError(
                    f"stdp_block_idx contains {i}: allowed 1 .. {nb - 1} (or -{nb - 1} .. -1) for "
                    f"{nb} blocks; block 0 reads the input layer and cannot be an STDP block"
                )
        return self

    @property
    def n_blocks(self) -> int:
        return len(self.layer_sizes) - 1

    def stdp_blocks(self) -> set[int]:
        return {i % self.n_blocks for i in self.stdp_block_idx}


class OlfactionNet:
    """State-free network object: weights, fixed readouts, the optimizer and the fast step loop."""

    def __init__(self, p: OlfactionNetParams, generator: torch.Generator):
        self.p = p
        self.stdp_set = p.stdp_blocks()
        sizes = p.layer_sizes
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        self.readouts: dict[int, torch.Tensor] = {}
        self.masks: dict[int, torch.Tensor] = {}  # sparse STDP blocks: the synapses that exist
        for b in range(p.n_blocks):
            n_in, n_out = sizes[b], sizes[b + 1]
            k = min(p.stdp_fan_in, n_in) if b in self.stdp_set and p.stdp_fan_in > 0 else n_in
            if b >= 1 and p.sign_constraint != "none":  # non-negative: U(0, 2 scale / fan-in) (Wang-like)
                w = torch.rand(n_out, n_in, generator=generator) * (2.0 * p.init_scale / k)
            else:
                w = torch.randn(n_out, n_in, generator=generator) * (p.init_scale / math.sqrt(k))
            if k < n_in:  # k random inputs per neuron (the fly's K ~ 7 PNs per KC)
                idx = torch.rand(n_out, n_in, generator=generator).argsort(dim=1)[:, :k]
                self.masks[b] = torch.zeros(n_out, n_in).scatter_(1, idx, 1.0)
                w = w * self.masks[b]
            self.weights.append(w)
            self.biases.append(torch.zeros(n_out))
            if b not in self.stdp_set:
                a = p.readout_ampl / math.sqrt(n_out)
                self.readouts[b] = (torch.rand(p.n_class, n_out, generator=generator) * 2 - 1) * a
        a = 1.0 / math.sqrt(sizes[-1])
        self.out_w = (torch.rand(p.n_class, sizes[-1], generator=generator) * 2 - 1) * a
        self.out_b = torch.zeros(p.n_class)
        self.surrogate = get_surrogate(*self._surr())
        self.data_parallel: BatchShard | None = None  # set by data-parallel training (module docstring)
        self.fast = True  # the fused CPU loop where it applies (False: the reference loop everywhere)

    def to_dtype(self, dtype: torch.dtype, device: torch.device | str | None = None) -> OlfactionNet:
        """Every tensor in ``dtype``, and on ``device`` if given (before :meth:`make_optimizer`)."""
        self.weights = [w.to(device, dtype) for w in self.weights]
        self.biases = [x.to(device, dtype) for x in self.biases]
        self.readouts = {b: g.to(device, dtype) for b, g in self.readouts.items()}
        self.masks = {b: m.to(device, dtype) for b, m in self.masks.items()}
        self.out_w, self.out_b = self.out_w.to(device, dtype), self.out_b.to(device, dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.out_w.device

    def _draw(self, fn, shape, generator, dtype=None) -> torch.Tensor:
        """A random draw from the CPU ``generator`` on the network's device: every device sees the
        same draws (data parallel: this rank's rows of the whole batch's draw)."""
        dp = self.data_parallel
        z = fn(shape, generator=generator, dtype=dtype) if dp is None else dp.draw(fn, shape, generator, dtype)
        return z.to(self.device)

    def _surr(self):
        q = self.p.cuba if self.p.neuron == "cuba" else self.p.decolle_lif
        return q.surrogate, q.surrogate_slope

    def trainable(self) -> list[torch.Tensor]:
        out = []
        for b in range(self.p.n_blocks):
            if b not in self.stdp_set:
                out.append(self.weights[b])
                if self.p.bias:
                    out.append(self.biases[b])
        return out + [self.out_w, self.out_b]

    def tensors(self) -> dict[str, torch.Tensor]:
        d = {f"w{b}": w for b, w in enumerate(self.weights)}
        d.update({f"bias{b}": x for b, x in enumerate(self.biases)})
        d.update({f"readout{b}": g for b, g in self.readouts.items()})
        d.update({f"mask{b}": m for b, m in self.masks.items()})
        d.update({"out_w": self.out_w, "out_b": self.out_b})
        return d

    def load_tensors(self, arrays: dict) -> None:
        for name, t in self.tensors().items():
            t.copy_(torch.as_tensor(arrays[name]))

    def effective(self, b: int) -> torch.Tensor:
        w = self.weights[b]
        return w.abs() if (b >= 1 and self.p.sign_constraint == "abs") else w

    def encode_step(self, x, st, generator):
        """Input-layer spikes for one step (``st`` holds the input neurons' current and voltage)."""
        p = self.p
        if p.encoding == "current":
            c = p.cuba
            st[0] = (1 - c.current_decay) * st[0] + p.input_gain * x
            v = (1 - c.voltage_decay) * st[1] + st[0]
            s = (v > p.input_threshold).to(x.dtype)
            st[1] = v * (1 - s) if p.input_reset == "zero" else v - p.input_threshold * s
            return s
        prob = (p.input_gain * x).clamp(0.0, 1.0)
        return (self._draw(torch.rand, prob.shape, generator, prob.dtype) < prob).to(prob.dtype)

    @torch.no_grad()
    def run_batch(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        generator: torch.Generator | None = None,
        record: bool = False,
        counts: bool = False,
    ) -> dict:
        """Present a batch ``x`` [B, n_or] for ``steps`` steps. With ``optimizer`` (and labels ``y``)
        the DECOLLE blocks and the output readout are updated at every step after the burn-in and
        the STDP blocks by their rule; without it the network is only run. Returns ``logits`` (the
        output readout summed over the steps after the burn-in), ``loss`` (mean total loss per
        update step), per-layer spike ``rates``, with ``record`` the spikes of sample 0 and with
        ``counts`` every layer's spike counts after the burn-in (``[B, n]`` per layer).

        On the CPU (float32, float64) the fused loop of :mod:`.olfaction_fast` runs, unless
        ``self.fast`` is False; it gives the reference loop's results bit for bit."""
        p = self.p
        if x.shape[1] != p.layer_sizes[0]:
            raise ValueError(f"input has {x.shape[1]} receptors but layer_sizes[0] = {p.layer_sizes[0]}")
        if optimizer is not None and y is None:
            raise ValueError("run_batch with an optimizer needs the labels y")
        x = x.to(self.device, self.out_w.dtype)
        if y is not None:
            y = y.to(self.device)
        if p.noise_std > 0:
            x = x + p.noise_std * self._draw(torch.randn, x.shape, generator)
        yy = y if y is not None else torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        onehot = torch.nn.functional.one_hot(yy, p.n_class).to(x.dtype)
        if p.label_smoothing > 0:
            onehot = onehot * (1.0 - p.label_smoothing) + p.label_smoothing / p.n_class
        args = (x, yy, onehot, optimizer, generator, record, counts)
        if self.fast and fast_supported(x):
            logits, loss_sum, n_upd, first_loss, rate_sums, rec, count_sums = run_fast(self, *args)
        else:
            logits, loss_sum, n_upd, first_loss, rate_sums, rec, count_sums = self._run_reference(*args)
        n_after = p.steps - p.burn_in
        res = {
            "logits": logits,
            "loss": float(loss_sum) / max(n_upd, 1),
            "first_loss": None if first_loss is None else float(first_loss),
        }
        res["rates"] = [float(r) / n_after for r in rate_sums]
        if record:
            res["record"] = rec
        if counts:
            res["counts"] = count_sums
        return res

    def _run_reference(self, x, yy, onehot, optimizer, generator, record: bool, counts: bool) -> tuple:
        """The step loop in whole-tensor operations (any device): the definition of the network."""
        p = self.p
        learn = optimizer is not None
        B = x.shape[0]
        sizes, nb = p.layer_sizes, p.n_blocks
        zeros = [torch.zeros(B, n, dtype=x.dtype, device=x.device) for n in sizes]
        inp = [zeros[0].clone(), zeros[0].clone()]
        cur = [z.clone() for z in zeros]
        vol = [z.clone() for z in zeros]
        e_i = [z.clone() for z in zeros[:-1]]
        e_v = [z.clone() for z in zeros[:-1]]
        r_tr = [z.clone() for z in zeros]  # DECOLLE refractory traces
        s_last = [z.clone() for z in zeros]
        cycles = {b: CycleState(B, sizes[b], sizes[b + 1]) for b in self.stdp_set} if learn else {}
        logits = torch.zeros(B, p.n_class, dtype=x.dtype, device=x.device)
        rate_sums = [torch.zeros((), dtype=torch.float64, device=x.device) for _ in sizes]  # no sync per step
        count_sums = [z.clone() for z in zeros] if counts else []
        loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)  # summed as tensors: no sync per step
        n_upd, rec, first_loss = 0, [], None
        c, dl = p.cuba, p.decolle_lif
        lam = math.exp(-1.0 / p.readout_tau_steps) if p.readout_tau_steps > 0 else 0.0
        filt = [z.clone() for z in zeros]  # readout inputs: lam f + (1 - lam) s
        drop: list[torch.Tensor | float] = [1.0] * len(sizes)  # readout-input dropout masks (training)
        e_bias_i = e_bias_v = 0.0  # eligibility of a CUBA bias (a constant input): filtered ones
        for t in range(p.steps):
            update = learn and t >= p.burn_in
            e_bias_i = (1 - c.current_decay) * e_bias_i + 1.0
            e_bias_v = (1 - c.voltage_decay) * e_bias_v + e_bias_i
            e_bias = e_bias_v if (p.neuron == "cuba" and p.eligibility == "trace") else 1.0
            spikes = [self.encode_step(x, inp, generator)]
            for b in range(nb):
                s_in, w, l = spikes[b], self.effective(b), b + 1
                if p.neuron == "cuba":
                    cur[l] = (1 - c.current_decay) * cur[l] + s_in @ w.t() + self.biases[b]
                    v = (1 - c.voltage_decay) * vol[l] + cur[l]
                    u = v - c.threshold
                    s = (u > 0).to(u.dtype)
                    vol[l] = v * (1 - s) if c.reset == "zero" else v - c.threshold * s
                    if p.eligibility == "trace":
                        e_i[b] = (1 - c.current_decay) * e_i[b] + s_in
                        e_v[b] = (1 - c.voltage_decay) * e_v[b] + e_i[b]
                        elig = e_v[b]
                    else:
                        elig = s_in
                else:
                    e_i[b], e_v[b] = (
                        dl.alpha * e_i[b] + (1 - dl.alpha) * e_v[b],
                        dl.beta * e_v[b] + (1 - dl.beta) * dl.gain * s_in,
                    )  # e_i = P, e_v = Q
                    r_tr[l] = dl.alpha_rp * r_tr[l] - (1 - dl.alpha_rp) * dl.w_rp * s_last[l]
                    u = e_i[b] @ w.t() + self.biases[b] + r_tr[l]
                    s = (u > 0).to(u.dtype)
                    s_last[l] = s
                    elig = e_i[b] if p.eligibility == "trace" else s_in
                spikes.append(s)
                filt[l] = lam * filt[l] + (1 - lam) * s if lam else s
                if update and p.readout_dropout > 0 and (b not in self.stdp_set or l == nb):  # inverted dropout
                    keep = self._draw(torch.rand, s.shape, generator, s.dtype) >= p.readout_dropout
                    drop[l] = keep.to(s.dtype) / (1 - p.readout_dropout)
                if update and b not in self.stdp_set:
                    g = self.readouts[b]
                    dr, lv = _loss_grad(_dropped(filt[l], drop[l]) @ g.t(), yy, onehot, p.loss)
                    du = (dr @ g) * drop[l] * ((1 - lam) * self.surrogate.grad(u))
                    if p.reg > 0:
                        du = du + _reg_grad(u, p.reg)
                    gw = du.t() @ elig
                    if b >= 1 and p.sign_constraint == "abs":
                        gw = gw * torch.where(self.weights[b] < 0, -1.0, 1.0)
                    self.weights[b].grad = gw
                    self.biases[b].grad = du.sum(0) * e_bias
                    loss_sum = loss_sum + lv.double()
            if t >= p.burn_in:  # the output readout: its logits count (and it learns) only after the burn-in
                top = _dropped(filt[-1], drop[-1])  # the trained readout's input, used twice
                out = top @ self.out_w.t() + self.out_b
                logits += out
                for l, s in enumerate(spikes):
                    rate_sums[l] += s.mean().double()
                    if counts:
                        count_sums[l] += s
            if record:
                rec.append([s[0].clone() for s in spikes])
            if update:
                dy, lv = _loss_grad(out, yy, onehot, p.loss)
                self.out_w.grad = dy.t() @ top
                self.out_b.grad = dy.sum(0)
                loss_sum = loss_sum + lv.double()
                n_upd += 1
                if n_upd == 1:
                    first_loss = loss_sum
                assert optimizer is not None
                dws = {
                    b: stdp_update(
                        self.weights[b],
                        spikes[b],
                        spikes[b + 1],
                        t - p.burn_in,
                        cycles[b],
                        p.stdp,
                        False,
                        self.masks.get(b),
                    )
                    for b in self.stdp_set
                }
                homeo = {b: spikes[b + 1].mean(0) for b in self.stdp_set} if p.stdp_target_rate > 0 else {}
                self._apply_updates(optimizer, dws, homeo)
        return logits, loss_sum, n_upd, first_loss, rate_sums, rec, count_sums

    def _apply_updates(self, optimizer: torch.optim.Optimizer, dws: dict, homeo: dict) -> None:
        """The end of an update step, once the gradients are set: the whole batch's means (data
        parallel: one all-reduce), the optimizer, the STDP updates ``dws``, the homeostatic biases
        from the blocks' rates ``homeo`` and the sign overwrite."""
        p = self.p
        if self.data_parallel is not None:
            grads = [q.grad for group in optimizer.param_groups for q in group["params"]]
            self.data_parallel.mean_over_batch([*grads, *dws.values(), *homeo.values()])
        optimizer.step()
        for b, dw in dws.items():
            apply_stdp(self.weights[b], dw, p.stdp)
        for b, rate in homeo.items():  # a KC threshold that keeps the KCs sparse, not silent
            self.biases[b] -= p.homeostasis_lr * (rate - p.stdp_target_rate)
        if p.sign_constraint == "overwrite":
            for b in range(1, p.n_blocks):
                self.weights[b].abs_()

    def make_optimizer(self, kind: str, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        """``adam``, ``adamax`` or ``sgd`` (momentum 0.9; with ``sgd`` every step's gradient is
        divided by the number of update steps, so ``lr`` is per presentation of a batch).
        ``weight_decay`` > 0: decoupled decay (AdamW; for ``sgd`` and ``adamax`` the optimizer's own
        L2 term), applied at every update step like the gradients."""
        params = self.trainable()
        opt: torch.optim.Optimizer
        if kind == "sgd":
            n_upd = self.p.steps - self.p.burn_in
            opt = torch.optim.SGD(params, lr=lr / n_upd, momentum=0.9, weight_decay=weight_decay)
        elif kind == "adamax":
            opt = torch.optim.Adamax(params, lr=lr, betas=(0.0, 0.95), weight_decay=weight_decay)
        elif weight_decay > 0:
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=lr)
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]  # what a learning-rate schedule scales
        return opt
