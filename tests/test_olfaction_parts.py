"""Olfaction building blocks: data generator, neurons, STDP rule, metrics."""

import numpy as np
import pytest
import torch

from spikeforge.config import ConfigError
from spikeforge.data import olfaction as od
from spikeforge.evaluation.olfaction_metrics import (
    glo_score,
    glo_score_effective,
    glo_score_orn,
    infer_threshold,
    k_all,
    kc_input_degree,
)
from spikeforge.neurons.olfaction_lif import (
    CubaLIFParams,
    DecolleLIFParams,
    cuba_init,
    cuba_step,
    decolle_init,
    decolle_step,
)
from spikeforge.plasticity.pair_stdp import CycleState, PairSTDPParams, stdp_update


# --- data -----------------------------------------------------------------------------------------
def test_labels_are_brute_force_nearest_prototype_mod_classes(tmp_path):
    p = od.OlfactionDataParams(n_or=5, n_prototypes=7, n_class=3, n_train=300, n_test=50, chunk_size=64)
    d = od.load(p, tmp_path)
    for split in ("train", "test"):
        x = d[f"x_{split}"].astype(np.float64)
        brute = np.array([np.argmin([np.sum((xi - pr) ** 2) for pr in d["prototypes"]]) for xi in x])
        np.testing.assert_array_equal(d[f"proto_{split}"], brute)
        np.testing.assert_array_equal(d[f"y_{split}"], brute % 3)
    assert d["x_train"].min() >= 0 and d["x_train"].max() < 1
    # chunking does not change the values; the cache returns the same arrays
    d2 = od.load(p.replace(chunk_size=1000), "")
    np.testing.assert_array_equal(d["x_train"], d2["x_train"])
    assert len(list(tmp_path.glob("olfaction-*.npz"))) == 1
    np.testing.assert_array_equal(od.load(p, tmp_path)["y_train"], d["y_train"])
    assert not np.array_equal(od.load(p.replace(seed=1), "")["x_train"], d["x_train"])


def test_presets_and_bad_input():
    assert od.preset("wang2021").n_train == 1_000_000 and od.preset("wang2021").n_class == 100
    assert od.preset("medium").n_train == 50_000
    with pytest.raises(ConfigError, match="unknown olfaction preset 'big'.*small, medium, wang2021"):
        od.preset("big")
    with pytest.raises(ConfigError, match="n_prototypes = 2 must be >= n_class = 3"):
        od.OlfactionDataParams.from_dict({"n_prototypes": 2, "n_class": 3})


# --- neurons --------------------------------------------------------------------------------------
def test_cuba_step_by_hand():
    p = CubaLIFParams()  # decays 0.25 / 0.03, threshold 1.25
    st = cuba_init(1, 1)
    x = torch.tensor([[0.6]])
    st, s, v = cuba_step(st, x, p)  # i = 0.6, v = 0.6
    assert float(st.current) == pytest.approx(0.6) and float(v) == pytest.approx(0.6) and float(s) == 0
    st, s, v = cuba_step(st, x, p)  # i = 0.45 + 0.6 = 1.05; v = 0.582 + 1.05 = 1.632 > 1.25: spike, reset
    assert float(st.current) == pytest.approx(1.05) and float(v) == pytest.approx(1.632)
    assert float(s) == 1 and float(st.voltage) == 0
    st, s, v = cuba_step(st, torch.zeros(1, 1), p)  # i = 0.7875, v = 0 + 0.7875
    assert float(v) == pytest.approx(0.7875) and float(s) == 0


def test_decolle_step_by_hand():
    p = DecolleLIFParams()  # alpha 0.97, beta 0.92, alpha_rp 0.65
    st = decolle_init(1, 1, 1)
    w, b = torch.tensor([[2.0]]), torch.tensor([-0.01])
    s_in = torch.ones(1, 1)
    st, s, u = decolle_step(st, s_in, w, b, p)  # Q = 0.08, P = 0 (previous Q), U = -0.01
    assert float(st.q) == pytest.approx(0.08) and float(st.p) == 0 and float(u) == pytest.approx(-0.01)
    st, s, u = decolle_step(st, s_in, w, b, p)  # P = 0.03*0.08 = 0.0024, U = 0.0048 - 0.01 < 0
    assert float(st.p) == pytest.approx(0.0024) and float(st.q) == pytest.approx(0.92 * 0.08 + 0.08)
    assert float(u) == pytest.approx(2 * 0.0024 - 0.01) and float(s) == 0
    st = st._replace(s=torch.ones(1, 1))
    st, s, u = decolle_step(st, torch.zeros(1, 1), w, b, p)  # R = -0.35 after a spike
    assert float(st.r) == pytest.approx(-0.35)


# --- STDP ------------------------------------------------------------------------------------------
def _run_pairs(p, pre_times, post_times, steps=12, batch=1, w0=0.05):
    w = torch.full((1, 1), w0)
    st = CycleState(batch, 1, 1)
    total = torch.zeros(1, 1)
    for t in range(steps):
        pre = torch.tensor([[1.0 if t in pre_times else 0.0]]).repeat(batch, 1)
        post = torch.tensor([[1.0 if t in post_times else 0.0]]).repeat(batch, 1)
        total += stdp_update(w, pre, post, t, st, p)
    return float(total)


@pytest.mark.parametrize("rule", ["cycle", "trace"])
def test_stdp_window_on_isolated_pairs(rule):
    p = PairSTDPParams(
        rule=rule, a_plus=1e-3, a_minus=5e-4, tau_plus_steps=4, tau_minus_steps=10, bounds="none", ignore_zeros=False
    )
    for dt in (0, 1, 3, 7):
        assert _run_pairs(p, {2}, {2 + dt}) == pytest.approx(1e-3 * np.exp(-dt / 4), rel=1e-5)
    for dt in (1, 4):
        assert _run_pairs(p, {2 + dt}, {2}) == pytest.approx(-5e-4 * np.exp(-dt / 10), rel=1e-5)
    pz = p.replace(ignore_zeros=True)
    assert _run_pairs(pz, {3}, {3}) == 0.0
    assert _run_pairs(pz, {2}, {5}) == pytest.approx(1e-3 * np.exp(-3 / 4), rel=1e-5)
    np.testing.assert_allclose(p.kernel([0, 2, -2]), [1e-3, 1e-3 * np.exp(-0.5), -5e-4 * np.exp(-0.2)])


def test_update_cycle_variant():
    p = PairSTDPParams(a_plus=1.0, a_minus=1.0, tau_plus_steps=4, tau_minus_steps=10, bounds="none", ignore_zeros=False)
    # the opening neuron fires again: the start moves, one update with the latest pre (dt = 1), none
    # for the first pre (the original's counter would fire at the second pre spike with a stale post time)
    assert _run_pairs(p, {1, 4}, {5}) == pytest.approx(np.exp(-1 / 4))
    # a cycle opened by pre closed by a same-step pre+post: dt = 0 (the original's counter jumps to 3 and
    # the synapse is never updated again); afterwards the synapse still learns (post at 8 opens, pre at 9 closes)
    assert _run_pairs(p, {1, 3, 9}, {3, 8}) == pytest.approx(1.0 - np.exp(-1 / 10))
    # post, pre, pre: one depression pair (dt = -2), then an open cycle without partner
    assert _run_pairs(p, {4, 6}, {2}) == pytest.approx(-np.exp(-2 / 10))
    pz = p.replace(ignore_zeros=True)
    assert _run_pairs(pz, {1, 3, 9}, {3, 8}) == pytest.approx(-np.exp(-1 / 10))  # dt = 0 dropped, cycle closed


def test_stdp_batch_average_and_bounds():
    p = PairSTDPParams(a_plus=1e-2, a_minus=1e-2, bounds="none", ignore_zeros=False)
    w = torch.zeros(1, 1)
    st = CycleState(4, 1, 1)
    pre = torch.tensor([[1.0], [1.0], [0.0], [0.0]])
    dw = stdp_update(w, pre, pre, 0, st, p)  # two of four samples pair at dt = 0
    assert float(dw) == pytest.approx(0.5e-2) and float(w) == pytest.approx(0.5e-2)
    pc = p.replace(bounds="clip", w_max=0.003)
    w = torch.zeros(1, 1)
    stdp_update(w, pre, pre, 0, CycleState(4, 1, 1), pc)
    assert float(w) == pytest.approx(0.003)
    ps = p.replace(bounds="soft", w_max=0.5)
    w = torch.full((1, 1), 0.25)
    dw = stdp_update(w, pre, pre, 0, CycleState(4, 1, 1), ps)
    assert float(dw) == pytest.approx(0.5e-2 * 0.25)


def test_stdp_two_parameter_form_and_errors():
    p = PairSTDPParams.from_combined(1e-7, -2)  # the report: a+ = 1e-7, a- = -1e-7, tau+ = -4, tau- = -10
    assert (p.a_plus, p.a_minus, p.tau_plus_steps, p.tau_minus_steps) == (1e-7, 1e-7, 4, 10)
    with pytest.raises(ConfigError, match="a_plus"):
        PairSTDPParams.from_dict({"a_plus": -1})
    with pytest.raises(ConfigError, match="tau_minus_steps"):
        PairSTDPParams.from_dict({"tau_minus_steps": -10})
    with pytest.raises(ConfigError, match="stdp_learning_rate = -1"):
        PairSTDPParams.from_combined(-1, 2)


# --- metrics --------------------------------------------------------------------------------------
def test_glo_score_hand_built():
    w = np.array([[3.0, 1.0], [1.0, 1.0], [0.0, 1.0]])  # 3 inputs (types 0, 1, 2) onto 2 PNs
    # PN0: top two 3, 1 -> 0.5 ; PN1: 1, 1 -> 0
    assert glo_score(w, np.array([0, 1, 2])) == pytest.approx(0.25)
    # two ORNs per type, one OR each: perfect glomeruli -> 1
    w_or2orn = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.2, 1.0]])  # [n_orn=4, n_or=2]
    w_orn2pn = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0]])  # [n_pn=2, n_orn=4]
    assert glo_score_orn(w_or2orn, w_orn2pn) == pytest.approx(1.0)
    # effective OR->PN: PN0 = [2, 0.1], PN1 = [0.4, 4] -> (1.9/2.1 + 3.6/4.4) / 2
    assert glo_score_effective(w_or2orn, w_orn2pn) == pytest.approx((1.9 / 2.1 + 3.6 / 4.4) / 2)


def test_k_hand_built():
    w = np.zeros((4, 10))
    w[0, :3] = 0.5
    w[1, :5] = 0.5
    w[2, 0] = 0.01  # below 0.02, above 1/N_KC = 0.25? no: 1/4 = 0.25 > 0.01
    k, bad = kc_input_degree(w, 0.02)
    assert k == pytest.approx(4.0) and bad == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    big = np.where(rng.random((200, 50)) < 0.1, rng.uniform(0.2, 0.4, (200, 50)), rng.uniform(1e-4, 2e-4, (200, 50)))
    thr = infer_threshold(big)
    assert 2e-4 < thr < 0.2
    ks = k_all(big)
    assert ks["K_inferred"] == pytest.approx((big > 0.1).sum(1).mean(), rel=0.05)
    assert ks["K_0.02"] == pytest.approx(ks["K_inferred"], rel=0.05)


def test_inferred_threshold_follows_wang():
    """Wang's infer_threshold fits log(w + 1e-10) of all weights, pruned zeros included, over the KCs
    whose max/median input ratio exceeds 15."""
    rng = np.random.default_rng(1)
    # pruned network: per KC 5 surviving weights, bimodal themselves (0.03 or 0.3), the rest 0
    w = np.zeros((400, 50))
    for row in w:
        idx = rng.choice(50, 5, replace=False)
        row[idx] = np.where(rng.random(5) < 0.5, rng.uniform(0.025, 0.035, 5), rng.uniform(0.25, 0.35, 5))
    thr = infer_threshold(w)
    assert thr is not None and thr < 0.025  # the zeros are the lower mode, not the weak survivors
    assert k_all(w)["K_inferred"] == pytest.approx(5.0)
    # KCs with all inputs alike (max/median < 15) are left out of the fit
    strong, weak = rng.uniform(0.2, 0.4, (200, 50)), rng.uniform(1e-4, 2e-4, (200, 50))
    bimodal = np.where(rng.random((200, 50)) < 0.1, strong, weak)
    flat = rng.uniform(0.01, 0.012, (600, 50))
    assert infer_threshold(np.vstack([bimodal, flat])) == pytest.approx(infer_threshold(bimodal))


def _reference_cycles(pre, post, p):
    """The update-cycle rule written per synapse, plainly: [T, B, n] spike arrays -> summed dw [n_post, n_pre]."""
    T, B, n_pre = pre.shape
    n_post = post.shape[2]
    dw = np.zeros((n_post, n_pre))
    for b in range(B):
        for i in range(n_pre):
            for j in range(n_post):
                state, last_pre, last_post = None, 0, 0
                for t in range(T):
                    a, o = pre[t, b, i], post[t, b, j]
                    last_pre = t if a else last_pre
                    last_post = t if o else last_post
                    if not (a or o):
                        continue
                    closes = (a and o) or (a and state == "post") or (o and state == "pre")
                    if closes:
                        dt = last_post - last_pre
                        if not (p.ignore_zeros and dt == 0):
                            dw[j, i] += p.kernel(dt) / B
                        state = None
                    else:
                        state = "pre" if a else "post"
    return dw


@pytest.mark.parametrize("ignore_zeros", [False, True])
def test_cycle_kernel_matches_a_plain_per_synapse_loop(ignore_zeros):
    rng = np.random.default_rng(3)
    T, B, n_pre, n_post = 40, 3, 5, 7
    pre = rng.random((T, B, n_pre)) < 0.3
    post = rng.random((T, B, n_post)) < 0.25
    p = PairSTDPParams(a_plus=1e-3, a_minus=7e-4, bounds="none", ignore_zeros=ignore_zeros)
    w = torch.zeros(n_post, n_pre)
    st = CycleState(B, n_pre, n_post)
    for t in range(T):
        stdp_update(w, torch.from_numpy(pre[t]).float(), torch.from_numpy(post[t]).float(), t, st, p)
    np.testing.assert_allclose(w.numpy(), _reference_cycles(pre, post, p), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("rule", ["cycle", "trace"])
def test_masked_stdp_equals_dense_stdp_on_the_existing_synapses(rule):
    """A mask only skips synapses: each update cycle is per synapse, so the masked kernel gives the
    dense kernel's updates on the synapses that exist and 0 elsewhere."""
    rng = np.random.default_rng(5)
    T, B, n_pre, n_post = 30, 3, 6, 9
    pre = torch.from_numpy(rng.random((T, B, n_pre)) < 0.3).float()
    post = torch.from_numpy(rng.random((T, B, n_post)) < 0.3).float()
    mask = torch.from_numpy(rng.random((n_post, n_pre)) < 0.4).float()
    p = PairSTDPParams(rule=rule, a_plus=1e-3, a_minus=7e-4, bounds="none", ignore_zeros=False)
    states = [CycleState(B, n_pre, n_post), CycleState(B, n_pre, n_post)]
    for t in range(T):
        w = torch.full((n_post, n_pre), 0.5)
        dense = stdp_update(w, pre[t], post[t], t, states[0], p, apply=False)
        masked = stdp_update(w, pre[t], post[t], t, states[1], p, apply=False, mask=mask)
        torch.testing.assert_close(masked, dense * mask, rtol=0, atol=0)
    assert float(dense.abs().sum()) > 0
