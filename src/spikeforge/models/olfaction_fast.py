"""The olfaction network's step loop on the CPU with fused kernels: the same results, bit for bit,
as the reference loop of :meth:`.olfaction.OlfactionNet.run_batch` (``net.fast = False``), which
stays the definition (and the path for other devices); ``tests/test_olfaction_fast.py`` compares
the two on every option, and both with digests of the code before this loop existed.

What it does differently, each keeping every float operation of the reference and its order:

* a layer's step (neuron update, readout trace, dropout mask, surrogate gradient, spike counts,
  column sums for the homeostasis, uint8 spikes for STDP) is one pass of
  :mod:`.olfaction_kernels` instead of some 25 whole-tensor operations;
* buffers are made once per batch and the matrix products write into them (``out=``);
* ``|W|`` is taken once per weight change instead of at every use;
* work whose result is never used is skipped (the input traces of STDP blocks, and of every block
  when nothing learns);
* the random draws are the reference's: the same calls of ``net._draw`` in the same order (a
  layer's dropout mask is drawn just before its neuron update instead of just after it, and no
  other draw lies between the two).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..plasticity.pair_stdp import CycleState, stdp_update
from ..surrogate import FastSigmoid
from . import olfaction_kernels as K

_NP: dict[torch.dtype, type[np.floating]] = {torch.float32: np.float32, torch.float64: np.float64}


def supported(x: torch.Tensor) -> bool:
    """Whether the fused loop can run a batch ``x`` (CPU, float32 or float64)."""
    return x.device.type == "cpu" and x.dtype in _NP


def _consts(npt, **values) -> np.ndarray:
    """The kernels' constant array ``k``: each Python scalar rounded to the dtype, as PyTorch does."""
    k = np.zeros(K.N_CONST, dtype=npt)
    k[K.ONE] = 1
    for name, v in values.items():
        k[getattr(K, name)] = v
    return k


def _loss_grad(r: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dL/dr, L)`` for one step, mean reduction (over the batch; SmoothL1: over all elements); ``L``
    stays a tensor so that the step loop does not wait for the device."""
    if kind == "cross_entropy":
        logp = torch.log_softmax(r, 1)
        loss = -logp.gather(1, y[:, None]).mean()
        return (logp.exp() - onehot) / r.shape[0], loss
    d = r - onehot
    ad = d.abs()
    loss = torch.where(ad < 1, 0.5 * d * d, ad - 0.5).mean()
    return d.clamp(-1.0, 1.0) / d.numel(), loss


def _reg_grad(u: torch.Tensor, reg: float) -> torch.Tensor:
    """Gradient of ``reg * (mean(relu(u + 0.01)) + 3e-3 mean(relu(0.1 - sigmoid(u))))`` (lava-decolle)."""
    n = u.numel()
    sg = torch.sigmoid(u)
    return reg / n * ((u > -0.01).to(u.dtype) - 3e-3 * ((sg < 0.1).to(u.dtype) * sg * (1 - sg)))


def run_fast(net: Any, x, yy, onehot, optimizer, generator, record: bool, counts: bool) -> tuple:
    """One batch; arguments and return value as :meth:`.olfaction.OlfactionNet._run_reference`
    (``net`` is that OlfactionNet; typed loosely so that the import runs one way only)."""
    p = net.p
    learn = optimizer is not None
    B, dt = x.shape[0], x.dtype
    npt = _NP[dt]
    x = x.contiguous()
    sizes, nb, stdp = p.layer_sizes, p.n_blocks, net.stdp_set
    c, dl = p.cuba, p.decolle_lif
    cuba = p.neuron == "cuba"
    lam = math.exp(-1.0 / p.readout_tau_steps) if p.readout_tau_steps > 0 else 0.0
    fused_sg = type(net.surrogate) is FastSigmoid

    def zeros(*shape):
        return torch.zeros(*shape, dtype=dt)

    dp_ = p.readout_dropout
    keep = npt(1.0) / npt(1 - dp_) if dp_ > 0 else npt(1.0)
    k_layer = _consts(npt, A_I=1 - c.current_decay, A_V=1 - c.voltage_decay, THR=c.threshold, P_DROP=dp_, KEEP=keep)
    k_layer[[K.LAM, K.OML, K.SLOPE]] = lam, 1 - lam, getattr(net.surrogate, "slope", 1.0)
    k_layer[[K.A_RP, K.C_RP]] = dl.alpha_rp, (1 - dl.alpha_rp) * dl.w_rp
    k_in = _consts(npt, A_I=1 - c.current_decay, A_V=1 - c.voltage_decay, THR=p.input_threshold, SLOPE=p.input_gain)
    a_i, a_v = npt(1 - c.current_decay), npt(1 - c.voltage_decay)
    d_consts = (npt(dl.alpha), npt(1 - dl.alpha), npt(dl.beta), npt((1 - dl.beta) * dl.gain))

    readout_layers = {b + 1 for b in range(nb) if b not in stdp} | {nb}
    grad_blocks = [b for b in range(nb) if b not in stdp] if learn else []
    stdp_layers = set(stdp) | {b + 1 for b in stdp} if learn else set()
    abs_blocks = [b for b in range(1, nb) if p.sign_constraint == "abs"]
    spikes = [zeros(B, n) for n in sizes]
    state = [zeros(B, n) for n in sizes]  # cur (CUBA) or r (DECOLLE); [0]: the input neurons' current
    vol = [zeros(B, n) for n in sizes] if cuba or p.encoding == "current" else []
    trace_blocks = set(range(nb)) if not cuba else set(grad_blocks) if p.eligibility == "trace" else set()
    e_i = {b: zeros(B, sizes[b]) for b in trace_blocks}
    e_v = {b: zeros(B, sizes[b]) for b in trace_blocks}
    mm = [zeros(B, sizes[b + 1]) for b in range(nb)]
    filt = {l: zeros(B, sizes[l]) for l in range(1, nb + 1)} if lam else {}
    sd = {l: zeros(B, sizes[l]) for l in readout_layers} if learn and dp_ > 0 else {}
    sg = {b + 1: zeros(B, sizes[b + 1]) for b in grad_blocks}
    store_u = not fused_sg or p.reg > 0
    u_buf = {b + 1: zeros(B, sizes[b + 1]) for b in grad_blocks} if store_u else {}
    t1 = {b: zeros(B, sizes[b + 1]) for b in grad_blocks}
    du = {b: zeros(B, sizes[b + 1]) for b in grad_blocks}
    gw = {b: zeros(sizes[b + 1], sizes[b]) for b in grad_blocks}
    cnt = [zeros(B, n) for n in sizes] if counts else []
    colsum = {b + 1: zeros(sizes[b + 1]) for b in stdp} if learn and p.stdp_target_rate > 0 else {}
    s8 = {l: torch.zeros(B, sizes[l], dtype=torch.uint8) for l in stdp_layers}
    cycles = {b: CycleState(B, sizes[b], sizes[b + 1]) for b in stdp} if learn else {}
    eff = [net.effective(b) for b in range(nb)]
    prob = (p.input_gain * x).clamp(0.0, 1.0) if p.encoding != "current" else None

    e2, e1, e8 = np.zeros((0, 0), npt), np.zeros(0, npt), np.zeros((0, 0), np.uint8)

    def arr(t: torch.Tensor | None, empty: np.ndarray = e2) -> np.ndarray:
        return empty if t is None else t.numpy()

    def layer_args(l: int, update: bool, after: bool) -> tuple[tuple, tuple]:
        """The layer kernel's arguments before and after the dropout draw, in the burn-in or after it."""
        b = l - 1
        grads = update and b in grad_blocks
        flags = [update and dp_ > 0 and l in readout_layers, lam > 0, grads and fused_sg, grads and store_u]
        flags += [after and counts, update and l in colsum, update and l in s8]
        head: tuple = (mm[b].numpy(), net.biases[b].numpy(), state[l].numpy())
        head += (vol[l].numpy(),) if cuba else ()
        head += (spikes[l].numpy(), k_layer, np.array(flags, dtype=np.int64))
        head += (c.reset == "zero",) if cuba else ()
        tail: tuple = (
            arr(filt.get(l)),
            arr(sd.get(l)),
            arr(sg.get(l)),
            arr(u_buf.get(l)),
            arr(cnt[l] if counts else None),
        )
        tail += (arr(colsum.get(l), e1), arr(s8.get(l), e8))
        return head, tail

    args = {(l, ph): layer_args(l, learn and ph, ph) for l in range(1, nb + 1) for ph in (False, True)}
    layer_kernel = K.cuba_layer if cuba else K.decolle_layer
    x_np, s_np = x.numpy(), [s.numpy() for s in spikes]
    e_np = {b: (e_i[b].numpy(), e_v[b].numpy()) for b in trace_blocks}

    logits = zeros(B, p.n_class)
    rate_sums = [0.0] * len(sizes)
    n_counted = [0] * len(sizes)
    loss_sum, n_upd, rec, first_loss = 0.0, 0, [], None
    e_bias_i = e_bias_v = 0.0
    for t in range(p.steps):
        after = t >= p.burn_in
        update = learn and after
        e_bias_i = (1 - c.current_decay) * e_bias_i + 1.0
        e_bias_v = (1 - c.voltage_decay) * e_bias_v + e_bias_i
        e_bias = e_bias_v if (cuba and p.eligibility == "trace") else 1.0
        if prob is None:
            n_counted[0] = K.cuba_input(x_np, state[0].numpy(), vol[0].numpy(), s_np[0], k_in, p.input_reset == "zero")
        else:
            rnd0 = net._draw(torch.rand, prob.shape, generator, prob.dtype).contiguous()
            n_counted[0] = K.bernoulli_input(rnd0.numpy(), prob.numpy(), s_np[0], k_in)
        if after and counts:
            cnt[0] += spikes[0]
        for b in range(nb):
            l, s_in = b + 1, spikes[b]
            dropped = update and dp_ > 0 and l in readout_layers
            rnd = net._draw(torch.rand, (B, sizes[l]), generator, dt).contiguous() if dropped else None
            head, tail = args[l, after]
            if cuba:
                torch.mm(s_in, eff[b].t(), out=mm[b])
                n_counted[l] = layer_kernel(*head, arr(rnd), *tail)
                if b in trace_blocks:
                    K.cuba_trace(s_np[b], *e_np[b], a_i, a_v)
                elig = e_v.get(b, s_in) if p.eligibility == "trace" else s_in  # (no trace: unused)
            else:
                K.decolle_trace(s_np[b], *e_np[b], *d_consts)
                torch.mm(e_i[b], eff[b].t(), out=mm[b])
                n_counted[l] = layer_kernel(*head, arr(rnd), *tail)
                elig = e_i[b] if p.eligibility == "trace" else s_in
            if update and b in grad_blocks:
                g = net.readouts[b]
                r_in = sd[l] if dropped else filt[l] if lam else spikes[l]
                dr, lv = _loss_grad(r_in @ g.t(), yy, onehot, p.loss)
                torch.mm(dr, g, out=t1[b])
                if not fused_sg:
                    sg[l] = (1 - lam) * net.surrogate.grad(u_buf[l])
                K.local_du(t1[b].numpy(), arr(rnd), sg[l].numpy(), du[b].numpy(), k_layer, dropped)
                dub = du[b] + _reg_grad(u_buf[l], p.reg) if p.reg > 0 else du[b]
                torch.mm(dub.t(), elig, out=gw[b])
                if b in abs_blocks:
                    K.sign_grad(gw[b].numpy(), net.weights[b].numpy(), k_layer)
                net.weights[b].grad = gw[b]
                net.biases[b].grad = dub.sum(0) * e_bias
                loss_sum += float(lv)
        if after:  # the output readout: its logits count (and it learns) only after the burn-in
            top = sd[nb] if update and dp_ > 0 else filt[nb] if lam else spikes[nb]
            out = top @ net.out_w.t() + net.out_b
            logits += out
            for l, n in enumerate(n_counted):  # s.mean(): sum / numel, the sum exact below 2^24 spikes
                exact = n < 1 << 24 or dt == torch.float64
                rate_sums[l] += float(npt(n) / npt(B * sizes[l])) if exact else float(spikes[l].mean())
        if record:
            rec.append([s[0].clone() for s in spikes])
        if update:
            assert optimizer is not None
            dy, lv = _loss_grad(out, yy, onehot, p.loss)
            net.out_w.grad = dy.t() @ top
            net.out_b.grad = dy.sum(0)
            loss_sum += float(lv)
            n_upd += 1
            if n_upd == 1:
                first_loss = loss_sum
            dws = {
                b: stdp_update(
                    net.weights[b], s8[b], s8[b + 1], t - p.burn_in, cycles[b], p.stdp, False, net.masks.get(b)
                )
                for b in stdp
            }
            homeo = {b: colsum[b + 1].div_(B) for b in stdp} if colsum else {}
            net._apply_updates(optimizer, dws, homeo)
            for b in abs_blocks:
                torch.abs(net.weights[b], out=eff[b])
            for v in colsum.values():
                v.zero_()
    return logits, loss_sum, n_upd, first_loss, rate_sums, rec, cnt
