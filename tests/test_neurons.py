"""Neuron dynamics against analytic solutions."""

import math

import numpy as np
import pytest
import torch

from spikeforge.engines import make_engine
from spikeforge.models.diehl_cook import DiehlCookConfig, init_state
from spikeforge.neurons import ConductanceLIFParams, CurrentLIFParams, current_lif
from spikeforge.neurons import conductance_lif as cl


@pytest.mark.parametrize("integration", ["euler", "euler_substep", "exponential"])
def test_conductance_lif_relaxes_to_rest_as_published(integration):
    p = ConductanceLIFParams(integration=integration)
    f = cl.decay_factors(p, 0.5)
    st = cl.initial_state(p, (1,))
    st = st._replace(ge=torch.tensor([0.8], dtype=torch.float64))
    n = 40
    for _ in range(n):
        st, spk = cl.step(st, p, f, learning=True)
        assert not spk.any()
    v0 = p.v_rest_mv + p.v_init_offset_mv
    if integration != "exponential":  # a small conductance: euler_substep is plain Euler
        ge = 0.8 * (1 - 0.5 / p.tau_ge_ms) ** n
        # v follows the Euler recursion with the decaying conductance; compute it by hand
        v, g = v0, 0.8
        for _ in range(n):
            v = v + 0.5 / p.tau_m_ms * ((p.v_rest_mv - v) + g * (p.e_exc_mv - v))
            g *= 1 - 0.5 / p.tau_ge_ms
    else:
        ge = 0.8 * math.exp(-n * 0.5 / p.tau_ge_ms)
        v, g = v0, 0.8
        for _ in range(n):
            v_inf = (p.v_rest_mv + g * p.e_exc_mv) / (1 + g)
            v = v_inf + (v - v_inf) * math.exp(-0.5 / p.tau_m_ms * (1 + g))
            g *= math.exp(-0.5 / p.tau_ge_ms)
    assert st.ge.item() == pytest.approx(ge, rel=1e-12)
    assert st.v.item() == pytest.approx(v, rel=1e-12)


def test_exponential_integration_is_exact_without_input():
    p = ConductanceLIFParams(integration="exponential")
    st = cl.initial_state(p, (1,))
    f = cl.decay_factors(p, 0.5)
    for _ in range(200):
        st, _ = cl.step(st, p, f, learning=False)
    t = 200 * 0.5
    expected = p.v_rest_mv + p.v_init_offset_mv * math.exp(-t / p.tau_m_ms)
    assert st.v.item() == pytest.approx(expected, rel=1e-12)


def test_compiled_engine_membrane_decay_matches_euler_solution():
    cfg = DiehlCookConfig.from_dict({"network": {"n_input": 4, "n_neurons": 3}})
    eng = make_engine("numba", cfg, init_state(cfg, np.random.default_rng(0)))
    n = 300
    eng.run_events(np.zeros(n + 1, np.int32), np.zeros(0, np.int32), learning=False)
    v0 = cfg.exc.v_rest_mv + cfg.exc.v_init_offset_mv
    expected = cfg.exc.v_rest_mv + (v0 - cfg.exc.v_rest_mv) * (1 - 0.5 / cfg.exc.tau_m_ms) ** n
    np.testing.assert_allclose(eng.v_e, expected, rtol=1e-12)
    vi0 = cfg.inh.v_rest_mv + cfg.inh.v_init_offset_mv
    expected_i = cfg.inh.v_rest_mv + (vi0 - cfg.inh.v_rest_mv) * (1 - 0.5 / cfg.inh.tau_m_ms) ** n
    np.testing.assert_allclose(eng.v_i, expected_i, rtol=1e-12)


def test_adaptive_threshold_and_refractory_spike_block():
    # threshold below rest: the neuron fires as soon as the spike block allows; theta grows per spike
    p = ConductanceLIFParams(
        v_thresh_mv=-50.0,
        theta_offset_mv=0.0,
        theta_init_mv=-30.0,
        v_init_offset_mv=0.0,
        refractory_ms=5.0,
        clamp_ms=0.0,
        theta_plus_mv=0.05,
    )
    f = cl.decay_factors(p, 0.5)
    st = cl.initial_state(p, (1,))
    times = []
    for t in range(60):
        st, spk = cl.step(st, p, f, learning=True)
        if spk.item():
            times.append(t)
    assert times[:4] == [0, 10, 20, 30]  # 5 ms spike block at dt 0.5 ms
    assert st.theta.item() == pytest.approx(
        -30.0 * f.theta**60 + 0.05 * sum(f.theta ** (59 - t) for t in times), rel=1e-9
    )


def test_current_lif_first_spike_time_is_analytic():
    p = CurrentLIFParams(v_rest_mv=-65, v_reset_mv=-65, v_thresh_mv=-50, tau_m_ms=10, r_mohm=10, refractory_ms=2)
    i_na = 2.0  # v_inf = -45 mV
    dt = 0.1
    st = current_lif.initial_state(p, (1,), dtype=torch.float64)
    first = None
    for k in range(1, 1000):
        st, spk = current_lif.step(st, torch.tensor([i_na], dtype=torch.float64), p, dt)
        if spk.item():
            first = k
            break
    t_star = p.tau_m_ms * math.log((-45 + 65) / (-45 + 50))  # ms, = 10 ln 4
    assert first == math.ceil(t_star / dt - 1e-9)


def test_current_lif_adaptive_threshold_rule():
    p = CurrentLIFParams(adapt_alpha=0.1, adapt_beta_mv=2.0, refractory_ms=0.0)
    st = current_lif.initial_state(p, (1,), dtype=torch.float64)
    st, spk = current_lif.step(st, torch.tensor([100.0], dtype=torch.float64), p, 1.0)
    assert spk.item() and st.thr.item() == pytest.approx(2.0)
    st, spk = current_lif.step(st, torch.tensor([0.0], dtype=torch.float64), p, 1.0)
    assert not spk.item() and st.thr.item() == pytest.approx(2.0 - 0.1 * 2.0)
