"""Olfaction network: closed-form DECOLLE gradients against autograd, readouts, STDP placement,
sign constraint, bad input."""

import pytest
import torch

from spikeforge.config import ConfigError
from spikeforge.experiments.olfaction_config import OlfactionConfig
from spikeforge.models.olfaction import OlfactionNet, OlfactionNetParams
from spikeforge.surrogate import spike_fn


class _Capture:
    """Stands in for an optimizer: records the gradients of the first update step."""

    def __init__(self, params):
        self.params, self.grads = params, None

    def step(self):
        if self.grads is None:
            self.grads = [p.grad.clone() for p in self.params]


def _reference_grads(net, x, y, steps):
    """Autograd on the same network: inputs detached, neuron state carried through the steps but
    the reset detached (``eligibility = 'trace'``: dv/dW ignores the reset)."""
    p = net.p
    c, ls = p.cuba, p.label_smoothing
    ws = [w.clone().requires_grad_(True) for w in net.weights]
    bs = [b.clone().requires_grad_(True) for b in net.biases]
    ow, ob = net.out_w.clone().requires_grad_(True), net.out_b.clone().requires_grad_(True)
    B, sizes = x.shape[0], p.layer_sizes
    cur = [torch.zeros(B, n) for n in sizes]
    vol = [torch.zeros(B, n) for n in sizes]
    inp = [torch.zeros(B, sizes[0]), torch.zeros(B, sizes[0])]
    loss = 0.0
    for t in range(steps):
        spikes = [net.encode_step(x, inp, None)]
        for b in range(p.n_blocks):
            w = ws[b].abs() if (b >= 1 and p.sign_constraint == "abs") else ws[b]
            cur[b + 1] = (1 - c.current_decay) * cur[b + 1] + spikes[b].detach() @ w.t() + bs[b]
            v = (1 - c.voltage_decay) * vol[b + 1] + cur[b + 1]
            s = spike_fn(v - c.threshold, net.surrogate)
            vol[b + 1] = v - (v * s).detach()
            spikes.append(s)
            if t == steps - 1 and b not in net.stdp_set:
                loss = loss + torch.nn.functional.cross_entropy(s @ net.readouts[b].t(), y, label_smoothing=ls)
        if t == steps - 1:
            loss = loss + torch.nn.functional.cross_entropy(spikes[-1].detach() @ ow.t() + ob, y, label_smoothing=ls)
    loss.backward()
    out = []
    for b in range(p.n_blocks):
        if b not in net.stdp_set:
            out += [ws[b].grad, bs[b].grad]
    return out + [ow.grad, ob.grad]


@pytest.mark.parametrize(("sign", "smoothing"), [("abs", 0.0), ("none", 0.0), ("abs", 0.2)])
def test_closed_form_gradients_match_autograd(sign, smoothing):
    """Every DECOLLE gradient against autograd; ``label_smoothing``: torch's smoothed cross-entropy."""
    torch.manual_seed(0)
    p = OlfactionNetParams(
        layer_sizes=[6, 20, 8, 30],
        n_class=4,
        steps=9,
        burn_in=8,
        sign_constraint=sign,
        input_gain=1.0,
        init_scale=1.5,
        label_smoothing=smoothing,
    )
    net = OlfactionNet(p, torch.Generator().manual_seed(1))
    x, y = torch.rand(5, 6), torch.tensor([0, 1, 2, 3, 1])
    cap = _Capture(net.trainable())
    net.run_batch(x, y, cap)
    ref = _reference_grads(net, x, y, p.steps)
    assert any(float(g.abs().sum()) > 0 for g in ref[:-2])
    for got, want in zip(cap.grads, ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_readouts_exactly_for_non_stdp_blocks():
    p = OlfactionNetParams(layer_sizes=[5, 7, 6, 9, 11], stdp_block_idx=[1, -1], n_class=3)
    net = OlfactionNet(p, torch.Generator().manual_seed(0))
    assert sorted(net.readouts) == [0, 2]
    assert net.readouts[2].shape == (3, 9) and net.out_w.shape == (3, 11)
    ids = {id(t) for t in net.trainable()}
    assert id(net.weights[1]) not in ids and id(net.weights[3]) not in ids and id(net.weights[2]) in ids
    assert len(OlfactionNet(OlfactionNetParams(layer_sizes=[5, 7, 6]), torch.Generator()).readouts) == 2


@pytest.mark.parametrize("idx", [[1], [2], [-1], [1, 2]])
@pytest.mark.parametrize("rule", ["cycle", "trace"])
def test_stdp_block_at_any_index_trains(idx, rule):
    p = OlfactionNetParams(
        layer_sizes=[6, 20, 8, 30],
        stdp_block_idx=idx,
        n_class=3,
        steps=12,
        burn_in=4,
        input_gain=1.0,
        init_scale=1.0,
        stdp={"rule": rule, "a_plus": 1e-2, "a_minus": 1e-2, "w_max": 1.0, "ignore_zeros": False},
    )
    net = OlfactionNet(p, torch.Generator().manual_seed(0))
    before = [w.clone() for w in net.weights]
    opt = net.make_optimizer("adam", 1e-2)
    res = net.run_batch(torch.rand(4, 6), torch.tensor([0, 1, 2, 0]), opt, torch.Generator().manual_seed(0))
    assert res["logits"].shape == (4, 3)
    for b in range(3):
        assert not torch.equal(before[b], net.weights[b]), f"block {b} did not change"
    for b in net.stdp_set:
        assert float(net.weights[b].min()) >= 0.0 and float(net.weights[b].max()) <= 1.0


@pytest.mark.parametrize("sign", ["abs", "overwrite"])
def test_sign_constraint_holds_after_training(sign):
    p = OlfactionNetParams(
        layer_sizes=[6, 20, 8, 30],
        n_class=3,
        steps=30,
        burn_in=5,
        sign_constraint=sign,
        input_gain=1.0,
        init_scale=1.0,
        neuron="cuba",
    )
    net = OlfactionNet(p, torch.Generator().manual_seed(0))
    opt = net.make_optimizer("adam", 0.05)
    for _ in range(3):
        net.run_batch(torch.rand(8, 6), torch.randint(0, 3, (8,)), opt, torch.Generator().manual_seed(0))
    for b in (1, 2):
        assert float(net.effective(b).min()) >= 0.0
    if sign == "overwrite":
        assert all(float(net.weights[b].min()) >= 0 for b in (1, 2))
    else:
        assert any(float(net.weights[b].min()) < 0 for b in (1, 2))  # raw weights crossed zero; |W| is used
    assert float(net.weights[0].min()) < 0  # the first block is unconstrained


def test_decolle_neuron_and_bernoulli_encoding_run():
    p = OlfactionNetParams(
        layer_sizes=[6, 20, 8, 30],
        n_class=3,
        steps=10,
        burn_in=3,
        neuron="decolle",
        encoding="bernoulli",
        stdp_block_idx=[2],
        loss="smooth_l1",
        reg=0.01,
    )
    net = OlfactionNet(p, torch.Generator().manual_seed(0))
    res = net.run_batch(
        torch.rand(4, 6),
        torch.tensor([0, 1, 2, 0]),
        net.make_optimizer("adamax", 1e-3),
        torch.Generator().manual_seed(0),
    )
    assert res["rates"][0] > 0 and res["loss"] > 0


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"stdp_block_idx": [0]}, r"stdp_block_idx contains 0: allowed 1 \.\. 2"),
        ({"stdp_block_idx": [3]}, r"stdp_block_idx contains 3: allowed 1 \.\. 2"),
        ({"layer_sizes": [50]}, "needs at least two layers"),
        ({"burn_in": 150}, r"burn_in = 150 must be < steps = 150 \(allowed 0 \.\. 149\)"),
        ({"input_gain": -1.0}, "input_gain"),
        ({"cuba": {"current_decay": 1.5}}, "current_decay"),
        ({"stdp": {"tau_plus_steps": -4}}, "tau_plus_steps"),
    ],
)
def test_bad_input_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        OlfactionNetParams.from_dict(bad)


def test_sgd_divides_the_step_gradient_by_the_update_steps():
    """With ``sgd`` one presentation (``steps - burn_in`` online steps) moves the weights by about
    ``lr`` times the time-averaged gradient: each step uses ``lr / (steps - burn_in)``."""
    p = OlfactionNetParams(layer_sizes=[6, 20, 8, 30], n_class=3, steps=10, burn_in=4, input_gain=1.0)
    opt = OlfactionNet(p, torch.Generator().manual_seed(0)).make_optimizer("sgd", 0.6)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1) and opt.param_groups[0]["base_lr"] == pytest.approx(0.1)
    p1 = p.replace(steps=5)  # a single update step: w <- w - lr g
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])
    ref = OlfactionNet(p1, torch.Generator().manual_seed(0))
    cap = _Capture(ref.trainable())
    ref.run_batch(x, y, cap, torch.Generator().manual_seed(0))
    net = OlfactionNet(p1, torch.Generator().manual_seed(0))
    net.run_batch(x, y, net.make_optimizer("sgd", 0.6), torch.Generator().manual_seed(0))
    for before, after, g in zip(ref.trainable(), net.trainable(), cap.grads):
        assert torch.allclose(after, before - 0.6 * g, atol=1e-6)


def test_counts_are_the_spikes_after_the_burn_in():
    p = OlfactionNetParams(layer_sizes=[6, 20, 8, 30], n_class=3, steps=12, burn_in=4, input_gain=1.0, init_scale=1.0)
    net = OlfactionNet(p, torch.Generator().manual_seed(0))
    res = net.run_batch(torch.rand(5, 6), counts=True, record=True)
    assert [tuple(c.shape) for c in res["counts"]] == [(5, 6), (5, 20), (5, 8), (5, 30)]
    for c, r in zip(res["counts"], res["rates"]):
        assert float(c.mean()) / 8 == pytest.approx(r, rel=1e-5)
    sample0 = [sum(step[l] for step in res["record"][4:]) for l in range(4)]
    for c, s in zip(res["counts"], sample0):
        assert torch.equal(c[0], s)


def test_sparse_stdp_block_keeps_its_synapses_and_homeostasis_moves_the_bias():
    """``stdp_fan_in`` k: exactly k non-zero inputs per neuron of the STDP block, and STDP never
    creates a synapse outside them; ``stdp_target_rate``: the bias falls while the neurons fire
    above the target (here every KC fires at every step) by lr * (rate - target) per update step."""
    p = OlfactionNetParams(
        layer_sizes=[6, 20, 8, 30],
        stdp_block_idx=[-1],
        n_class=3,
        steps=12,
        burn_in=4,
        input_gain=1.0,
        init_scale=4.0,
        stdp_fan_in=3,
        stdp_target_rate=0.25,
        homeostasis_lr=1e-3,
        stdp={"a_plus": 1e-2, "a_minus": 1e-3, "w_max": 10.0, "ignore_zeros": False},
    )
    net = OlfactionNet(p, torch.Generator().manual_seed(0))
    mask = net.masks[2]
    assert torch.equal((net.weights[2] != 0).float(), mask) and torch.equal(mask.sum(1), torch.full((30,), 3.0))
    assert 0 not in net.masks and 1 not in net.masks
    before = net.weights[2].clone()
    opt = net.make_optimizer("adam", 1e-3)
    net.run_batch(torch.ones(4, 6), torch.tensor([0, 1, 2, 0]), opt, torch.Generator().manual_seed(0))
    assert not torch.equal(before, net.weights[2])
    assert torch.equal(net.weights[2] * (1 - mask), torch.zeros_like(mask))
    # every KC spiked at every update step (drive far above threshold): bias = -8 * 1e-3 * 0.75
    assert torch.allclose(net.biases[2], torch.full((30,), -8 * 1e-3 * 0.75), atol=1e-6)
    assert "mask2" in net.tensors()


def test_readout_dropout_only_in_training():
    """``readout_dropout`` changes the training updates but not the network's evaluation."""
    kw = dict(layer_sizes=[6, 20, 8, 30], n_class=3, steps=12, burn_in=4, input_gain=1.0, init_scale=1.0)
    x, y = torch.rand(4, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0])
    nets = [
        OlfactionNet(OlfactionNetParams(readout_dropout=d, **kw), torch.Generator().manual_seed(0)) for d in (0, 0.5)
    ]
    ev = [n.run_batch(x)["logits"] for n in nets]
    assert torch.equal(ev[0], ev[1])
    for n in nets:
        n.run_batch(x, y, n.make_optimizer("adam", 1e-2), torch.Generator().manual_seed(0))
    for b in range(3):
        assert not torch.equal(nets[0].weights[b], nets[1].weights[b])
    assert not torch.equal(nets[0].out_w, nets[1].out_w)


def test_weight_decay_is_decoupled_and_per_update_step():
    """AdamW's decay shrinks every trained tensor by (1 - lr * wd) per update step on top of the
    Adam step. With a tiny rate and a large decay the Adam steps (at most about lr each, whatever
    the spikes do) are far below the decay, so plain minus decayed weights equal the accumulated
    decay of the starting weights."""
    p = OlfactionNetParams(layer_sizes=[6, 20, 8, 30], n_class=3, steps=12, burn_in=4, input_gain=1.0, init_scale=1.0)
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(4, 6, generator=g), torch.tensor([0, 1, 2, 0])
    lr, wd = 1e-7, 1e4  # lr * wd = 1e-3 per update step
    nets = [OlfactionNet(p, torch.Generator().manual_seed(0)) for _ in range(2)]
    opts = [nets[0].make_optimizer("adam", lr), nets[1].make_optimizer("adam", lr, weight_decay=wd)]
    assert type(opts[0]) is torch.optim.Adam and type(opts[1]) is torch.optim.AdamW
    assert opts[1].param_groups[0]["weight_decay"] == wd
    start = [w.clone() for w in nets[0].weights]
    for net, opt in zip(nets, opts, strict=True):
        net.run_batch(x, y, opt, torch.Generator().manual_seed(0))
    n_upd = p.steps - p.burn_in
    for b in range(p.n_blocks):
        shrink = start[b] * (1 - (1 - lr * wd) ** n_upd)
        diff = nets[0].weights[b] - nets[1].weights[b]
        assert torch.allclose(diff, shrink, atol=4 * n_upd * lr), f"block {b}"
        assert float(diff.abs().max()) > 100 * n_upd * lr  # the decay did act, far above the Adam steps
    cfg = OlfactionConfig.from_dict({"run": {"weight_decay": 0.01}})
    assert cfg.run.weight_decay == 0.01
    with pytest.raises(Exception, match="weight_decay"):
        OlfactionConfig.from_dict({"run": {"weight_decay": -1.0}})
