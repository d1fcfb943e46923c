"""Forward Euler of the conductance LIF: substeps where it would overshoot, and the instability report.

Issue 10: at N = 1600 a bold digit made 43 neurons fire in one step; their inhibitory partners added
17 each to g_i, dt/tau_m * (1 + g_i) passed 2 and forward Euler diverged. Here a tiny network is
kicked the same way (most excitatory neurons start above threshold) on injected state.
"""

import warnings

import numpy as np
import pytest
import torch

from spikeforge.encoding import raster_to_events
from spikeforge.engines import example_key, make_engine
from spikeforge.models.diehl_cook import DiehlCookConfig, init_state
from spikeforge.neurons import ConductanceLIFParams
from spikeforge.neurons import conductance_lif as cl
from spikeforge.neurons.conductance_stability import (
    NumericalInstabilityError,
    NumericalInstabilityWarning,
    new_stats,
)

N, KICKED = 40, 30  # 29 coincident inhibitory spikes: g_i = 493, dt/tau_m * (1 + g_i) = 2.47


def _config(integration="euler_substep", on_unstable="warn"):
    return DiehlCookConfig.from_dict(
        {
            "network": {"n_input": 30, "n_neurons": N, "norm_total": 6.0},
            "exc": {"integration": integration, "on_unstable": on_unstable},
            "stdp": {"nu_pre": 0.002, "nu_post": 0.05},
        }
    )


def _kicked(name, cfg, state):
    """An engine whose excitatory membranes sit at rest, the first KICKED of them far above threshold."""
    eng = make_engine(name, cfg, state)
    v0 = np.full(N, cfg.exc.v_rest_mv)
    v0[:KICKED] = 0.0
    if name == "torch":
        eng.reset_dynamics(1)
        eng.exc = eng.exc._replace(v=torch.tensor(v0[None, :], dtype=torch.float64))
    else:
        eng.v_e[:] = v0
    return eng


def _v(eng):
    return eng.v_e.copy() if eng.name == "numba" else eng.exc.v[0].numpy().copy()


def _run_kick(eng, n_steps=60):
    """Step by step with no input; returns spike counts per step and v after each step."""
    counts, vs = [], []
    for _ in range(n_steps):
        counts.append(eng.run_events(np.zeros(2, np.int32), np.zeros(0, np.int32), learning=True))
        vs.append(_v(eng))
    return np.array(counts), np.array(vs)


def test_substeps_follow_hand_computed_euler_substeps_and_never_overshoot():
    p = ConductanceLIFParams()
    f = cl.decay_factors(p, 0.5)
    ge = torch.tensor([0.0, 0.3, 2.0], dtype=torch.float64)
    gi = torch.tensor([1000.0, 0.2, 450.0], dtype=torch.float64)
    v = torch.tensor([-65.0, -60.0, -55.0], dtype=torch.float64)
    stats = new_stats()
    v1, ge1, gi1 = cl.membrane_update(v, ge, gi, p, f, stats)
    # neuron 1 is below the bound: exactly the Euler step
    k1 = 0.005 * (1 + 0.3 + 0.2)
    assert k1 < p.euler_factor_bound
    assert v1[1].item() == -60.0 + 0.005 * ((-65.0 + 60.0) + 0.3 * (0.0 + 60.0) + 0.2 * (-100.0 + 60.0))
    assert (ge1[1].item(), gi1[1].item()) == (0.3 * 0.5, 0.2 * 0.75)
    # neurons 0 and 2: k = 5.005 and 2.265, so 3 and 2 Euler substeps of v and both conductances
    assert p.euler_factor_bound == 2.0
    for j, n in ((0, 3), (2, 2)):
        vv, e, i = v[j].item(), ge[j].item(), gi[j].item()
        for _ in range(n):
            vv = vv + 0.005 / n * ((-65.0 - vv) + e * (0.0 - vv) + i * (-100.0 - vv))
            e, i = e * (1 - 0.5 / n), i * (1 - 0.25 / n)
        assert (v1[j].item(), ge1[j].item(), gi1[j].item()) == (vv, e, i)
    assert stats[0] == 2 and stats[2] == 3
    # within 5 mV of E_inh, where plain Euler throws v to -65 - 5.005 * 34.97 = -240 mV
    assert -105.0 < v1[0].item() < -100.0
    euler = cl.membrane_update(v, ge, gi, p.replace(integration="euler"), f)[0]
    assert euler[0].item() == pytest.approx(-240.0)


def test_euler_substep_is_euler_bit_for_bit_below_the_bound():
    rng = np.random.default_rng(0)
    st = cl.ConductanceLIFState(
        v=torch.tensor(rng.uniform(-80, -50, 500)),
        ge=torch.tensor(rng.uniform(0, 5, 500)),
        gi=torch.tensor(rng.uniform(0, 150, 500)),
        theta=torch.tensor(rng.uniform(15, 25, 500)),
        since_spike=torch.tensor(rng.integers(0, 20, 500)),
    )
    outs = []
    for integration in ("euler", "euler_substep"):
        p = ConductanceLIFParams(integration=integration)
        outs.append(cl.step(st, p, cl.decay_factors(p, 0.5), learning=True))
    (a, sa), (b, sb) = outs
    assert torch.equal(sa, sb)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_kicked_network_stays_stable_by_default_and_both_engines_agree():
    cfg = _config()
    state = init_state(cfg, np.random.default_rng(1))
    runs = []
    for name in ("numba", "torch"):
        eng = _kicked(name, cfg, state)
        with warnings.catch_warnings():
            warnings.simplefilter("error", NumericalInstabilityWarning)
            counts, vs = _run_kick(eng)
            # then a presentation with input and learning, on the state the kick left
            raster = np.random.default_rng(3).random((200, 30)) < 0.075
            counts_in = eng.run_events(*raster_to_events(raster), learning=True)
        stab = eng.stability()
        assert stab["substep_neuron_steps"] > 0 and stab["unstable_neuron_steps"] == 0
        runs.append((counts, vs, counts_in, eng.export_state()))
    (c0, v0, ci0, s0), (c1, v1, ci1, s1) = runs
    assert c0.sum() == KICKED, "only the kicked neurons fire: no refractory-limited firing"
    assert v0.min() > cfg.exc.e_inh_mv - 10.0, "the membrane stays bounded"
    np.testing.assert_array_equal(c0, c1)
    np.testing.assert_array_equal(v0, v1)
    np.testing.assert_array_equal(ci0, ci1)
    np.testing.assert_allclose(s0.weights, s1.weights, rtol=0, atol=1e-10)
    np.testing.assert_allclose(s0.theta, s1.theta, rtol=0, atol=1e-10)


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_euler_reports_the_unstable_step_and_can_stop(engine):
    state = init_state(_config(), np.random.default_rng(1))
    eng = _kicked(engine, _config("euler"), state)
    with pytest.warns(NumericalInstabilityWarning, match=r"global step 3\), exc neuron 0: g_e = 0, g_i = 493") as rec:
        counts, vs = _run_kick(eng, 10)
    assert len(rec) == 1, "one report, at the first unstable step"
    assert "integration 'euler_substep'" in str(rec[0].message)
    assert vs.min() < cfg_e_inh() - 40, "plain Euler overshoots E_inh by tens of mV"
    first = eng.stability()["first_unstable"]
    assert (first["step"], first["neuron"], first["layer"], first["g_i"]) == (3, 0, "exc", 493.0)
    assert first["factor"] == pytest.approx(2.47)
    # the same kick with on_unstable = "error", through present() with named examples
    eng = _kicked(engine, _config("euler", on_unstable="error"), state)
    with pytest.raises(NumericalInstabilityError, match="training example 7 of epoch 0, step 3 of the presentation"):
        eng.present(np.zeros((1, 30)), True, [example_key(0, 0, 0, 7)], names=["training example 7 of epoch 0"])


def cfg_e_inh():
    return ConductanceLIFParams().e_inh_mv
