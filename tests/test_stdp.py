"""The Diehl & Cook triplet rule on hand-built spike patterns, and weight normalisation."""

import math

import numpy as np
import pytest

from spikeforge.encoding import raster_to_events
from spikeforge.engines import make_engine
from spikeforge.models.diehl_cook import DiehlCookConfig, DiehlCookState, normalize_columns

DT = 0.5


def _engine(name, w0, trace_mode="set", pre_sign=-1):
    # one input, one excitatory neuron whose threshold lies below rest: it fires at steps
    # 0, 10, 20, ... (5 ms spike block), so post spike times are known; inhibition is off
    cfg = DiehlCookConfig.from_dict(
        {
            "network": {"n_input": 1, "n_neurons": 1, "w_ei": 0.0, "w_ie": 0.0, "input_delay_max_ms": 0.0},
            "exc": {"adaptive": False, "v_thresh_mv": -70.0, "v_init_offset_mv": 0.0},
            "stdp": {"trace_mode": trace_mode, "pre_sign": pre_sign},
        }
    )
    state = DiehlCookState(weights=np.array([[w0]]), theta=np.zeros(1), delays=np.zeros((1, 1), np.int32))
    eng = make_engine(name, cfg, state)
    if name == "torch":
        eng.reset_dynamics(1)
    return cfg, eng


def _run(eng, pre_steps, n_steps):
    raster = np.zeros((n_steps, 1), bool)
    raster[pre_steps, 0] = True
    counts = eng.run_events(*raster_to_events(raster), learning=True)
    return counts, eng.export_state().weights[0, 0]


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_one_pre_post_pair_and_one_triplet(engine):
    cfg, eng = _engine(engine, 0.5)
    sp = cfg.stdp
    counts, w = _run(eng, [3], 15)  # post at 0 and 10, pre at 3
    assert counts[0] == 2
    expected = 0.5
    # step 0: post spike, post2 before it is 0 -> no potentiation; post1 = post2 = 1
    # step 3: pre spike: depression by the post1 trace, 3 steps after the post spike
    expected -= sp.nu_pre * math.exp(-3 * DT / sp.tau_post1_ms)
    # step 10: post spike: pre trace (7 steps old) times post2 just before (10 steps old): a triplet
    expected += sp.nu_post * math.exp(-7 * DT / sp.tau_pre_ms) * math.exp(-10 * DT / sp.tau_post2_ms)
    assert w == pytest.approx(expected, rel=0, abs=1e-14)


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_rate_scale_multiplies_both_learning_rates(engine):
    cfg, eng = _engine(engine, 0.5)
    sp = cfg.stdp
    eng.set_rate_scale(0.25)
    _, w = _run(eng, [3], 15)  # the pair and triplet of the test above, at a quarter of the rates
    expected = (
        0.5
        - 0.25 * sp.nu_pre * math.exp(-3 * DT / sp.tau_post1_ms)
        + 0.25 * sp.nu_post * math.exp(-7 * DT / sp.tau_pre_ms) * math.exp(-10 * DT / sp.tau_post2_ms)
    )
    assert w == pytest.approx(expected, rel=0, abs=1e-14)


def test_learning_rate_schedule_is_piecewise_constant_in_examples():
    from spikeforge.plasticity.stdp import STDPParams

    sp = STDPParams(nu_decay=0.5, nu_decay_every=10)
    assert [sp.rate_scale(k) for k in (0, 9, 10, 19, 20, 35)] == [1, 1, 0.5, 0.5, 0.25, 0.125]
    assert STDPParams().rate_scale(10**6) == 1.0


def test_isolated_pair_gives_no_potentiation_without_earlier_post_spike():
    cfg, eng = _engine("numba", 0.5)
    # only the post spike at step 0 falls in 5 steps; the pre spike at 2 follows it: pure depression
    _, w = _run(eng, [2], 5)
    assert w == pytest.approx(0.5 - cfg.stdp.nu_pre * math.exp(-2 * DT / cfg.stdp.tau_post1_ms), abs=1e-15)


def test_brian2_port_sign_flip_potentiates_on_pre():
    cfg, eng = _engine("numba", 0.5, pre_sign=1)
    _, w = _run(eng, [2], 5)
    assert w > 0.5


def test_weights_are_clipped_to_bounds():
    cfg, eng = _engine("numba", 0.99995)
    _, w = _run(eng, [9], 25)  # pre right before the post spike at 10: strong potentiation
    assert w == cfg.stdp.w_max
    cfg, eng = _engine("numba", 0.0)
    _, w = _run(eng, [1, 2, 3], 5)
    assert w == 0.0


def test_add_mode_accumulates_traces():
    cfg, eng = _engine("numba", 0.5, trace_mode="add")
    _, w = _run(eng, [3, 5], 15)
    sp = cfg.stdp
    e = lambda k, tau: math.exp(-k * DT / tau)
    expected = 0.5 - sp.nu_pre * e(3, sp.tau_post1_ms) - sp.nu_pre * e(5, sp.tau_post1_ms)
    x_pre_at_10 = e(7, sp.tau_pre_ms) + e(5, sp.tau_pre_ms)
    expected += sp.nu_post * x_pre_at_10 * e(10, sp.tau_post2_ms)
    assert w == pytest.approx(expected, abs=1e-14)


def test_delayed_arrival_sets_the_trace_at_arrival():
    # a 4-step delay: the spike emitted at step 3 arrives at step 7; post at 10 sees a 3-step-old trace
    cfg = DiehlCookConfig.from_dict(
        {
            "network": {"n_input": 1, "n_neurons": 1, "w_ei": 0.0, "w_ie": 0.0, "input_delay_max_ms": 10.0},
            "exc": {"adaptive": False, "v_thresh_mv": -70.0, "v_init_offset_mv": 0.0},
        }
    )
    state = DiehlCookState(weights=np.array([[0.5]]), theta=np.zeros(1), delays=np.array([[4]], np.int32))
    sp = cfg.stdp
    for name in ("numba", "torch"):
        eng = make_engine(name, cfg, state)
        _, w = _run(eng, [3], 15)
        expected = (
            0.5
            - sp.nu_pre * math.exp(-7 * DT / sp.tau_post1_ms)
            + sp.nu_post * math.exp(-3 * DT / sp.tau_pre_ms) * math.exp(-10 * DT / sp.tau_post2_ms)
        )
        assert w == pytest.approx(expected, abs=1e-14), name


def test_normalize_columns_sums_and_leaves_zero_columns():
    w = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])
    normalize_columns(w, 78.0)
    np.testing.assert_allclose(w.sum(0), [78.0, 0.0, 78.0])
    np.testing.assert_allclose(w[:, 0], [19.5, 58.5])


def test_engine_normalizes_before_each_training_presentation():
    cfg = DiehlCookConfig.from_dict({"network": {"n_input": 16, "n_neurons": 5, "norm_total": 3.0}})
    from spikeforge.models.diehl_cook import init_state

    eng = make_engine("numba", cfg, init_state(cfg, np.random.default_rng(0)))
    eng.present(np.full((1, 16), 255, np.uint8), learning=True, keys=[7])
    # normalised, then STDP changed it a little during the presentation
    assert np.allclose(eng.W.sum(0), 3.0, atol=0.2)


def _rule_engine(name, kind, w0):
    cfg = DiehlCookConfig.from_dict(
        {
            "network": {"n_input": 1, "n_neurons": 1, "w_ei": 0.0, "w_ie": 0.0, "input_delay_max_ms": 0.0},
            "exc": {"adaptive": False, "v_thresh_mv": -70.0, "v_init_offset_mv": 0.0},
            "stdp": {"kind": kind, "nu_pre": 0.01, "nu_post": 0.05},
        }
    )
    state = DiehlCookState(weights=np.array([[w0]]), theta=np.zeros(1), delays=np.zeros((1, 1), np.int32))
    return cfg, make_engine(name, cfg, state)


@pytest.mark.parametrize("engine", ["numba", "torch"])
@pytest.mark.parametrize("kind", ["postpre", "exponential", "presynaptic"])
@pytest.mark.parametrize("w0", [0.2, 0.7])
def test_other_diehl_cook_rules_on_a_pair_follow_their_equations(engine, kind, w0):
    cfg, eng = _rule_engine(engine, kind, w0)
    sp = cfg.stdp
    _, w = _run(eng, [3], 15)  # post at 0 and 10, pre at 3
    x_post1_at_3 = math.exp(-3 * DT / sp.tau_post1_ms)
    x_pre_at_10 = math.exp(-7 * DT / sp.tau_pre_ms)
    x_pre_at_0 = 0.0
    expected = w0
    # post spike at step 0 (no pre spike yet: x_pre = 0)
    for x_pre in (x_pre_at_0, None):
        if x_pre is None:
            # pre spike at step 3
            if kind == "postpre":
                expected -= sp.nu_pre * x_post1_at_3 * expected**sp.mu
            x_pre = x_pre_at_10
        if kind in ("postpre", "presynaptic"):
            expected += sp.nu_post * (x_pre - sp.x_tar) * (sp.w_max - expected) ** sp.mu
        else:
            expected += sp.nu_post * (
                x_pre * math.exp(-sp.beta * expected) - sp.x_tar * math.exp(-sp.beta * (sp.w_max - expected))
            )
        expected = min(max(expected, sp.w_min), sp.w_max)
    assert w == pytest.approx(expected, abs=1e-13)


@pytest.mark.parametrize("kind", ["postpre", "presynaptic"])
def test_power_law_dependence_is_a_soft_upper_bound(kind):
    # many coincident pre/post pairings drive w towards w_max but the step shrinks as w grows
    cfg, eng = _rule_engine("numba", kind, 0.5)
    _, w = _run(eng, list(range(9, 400, 10)), 400)
    assert 0.5 < w <= cfg.stdp.w_max


def test_projections_against_explicit_matrices():
    import torch

    from spikeforge.synapses.projections import all_but_self, dense, one_to_one

    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    hollow = 17.0 * (torch.ones(4, 4) - torch.eye(4))
    torch.testing.assert_close(all_but_self(x, 17.0), x @ hollow)
    torch.testing.assert_close(one_to_one(x, 10.4), x @ (10.4 * torch.eye(4)))
    w = torch.arange(12.0).reshape(4, 3)
    torch.testing.assert_close(dense(x, w), torch.tensor([[0 + 6 + 9.0, 1 + 7 + 10, 2 + 8 + 11]]))
    with pytest.raises(ValueError, match="weights expect 5"):
        dense(x, torch.ones(5, 2))


@pytest.mark.parametrize("engine", ["numba", "torch"])
@pytest.mark.parametrize("kind", ["postpre", "presynaptic"])
def test_power_law_rules_stay_finite_above_w_max(engine, kind):
    # column normalisation can leave a weight above w_max; the soft bound must then give 0, not NaN
    cfg, eng = _rule_engine(engine, kind, 1.3)
    _, w = _run(eng, [3], 15)
    assert np.isfinite(w) and w <= 1.3
