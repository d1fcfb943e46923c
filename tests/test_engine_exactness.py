"""Exactness of the compiled engine's event scheduling over long runs with carried state.

The compiled engine computes the pre-spike (depression) update of a synapse only for neurons whose
fast post trace is still live, and schedules those updates when an input fires or when a neuron
fires after a quiet spell. These tests pin the scheduling against the PyTorch engine (which decays
every trace every step and applies every update) and against the analytic value.
"""

import math

import numpy as np
import pytest

from spikeforge.encoding import raster_to_events
from spikeforge.engines import make_engine
from spikeforge.models.diehl_cook import DiehlCookConfig, DiehlCookState, init_state
from spikeforge.plasticity import rule_names


def _in_flight_case(rule):
    """One neuron, a driver input (delay 0, weight 1) that makes it fire the step after each of
    its spikes, and a test input (delay 10 steps) whose spike is emitted shortly before the neuron's
    second spike and arrives after it, but after the end of the trace window opened by the first."""
    cfg = DiehlCookConfig.from_dict(
        {
            "network": {"n_input": 2, "n_neurons": 1, "norm_total": None},
            "exc": {"adaptive": False, "v_thresh_mv": -64.9, "v_init_offset_mv": 0.0, "clamp_ms": 5.0},
            "stdp": {"kind": rule, "tau_post1_ms": 2.0, "nu_pre": 0.01, "nu_post": 0.0},
        }
    )
    state = DiehlCookState(weights=np.array([[1.0], [0.5]]), theta=np.zeros(1), delays=np.array([[0], [10]], np.int32))
    return cfg, state


@pytest.mark.parametrize("rule", ["triplet", "postpre"])
def test_spike_in_flight_past_the_old_trace_window_gets_its_depression(rule):
    cfg, state = _in_flight_case(rule)
    dt = cfg.protocol.dt_ms
    window = math.ceil(46.0 * cfg.stdp.tau_post1_ms / dt) + 1  # steps the engine keeps a post trace live
    t1 = 1  # driver at step 0 -> post spike at step 1
    t_emit = t1 + window - 10 + 5  # arrival t_emit + 10 falls 5 steps past the old window ...
    t2 = t_emit + 4  # ... and the neuron fires again (within the old window) while it is in flight
    assert t2 - t1 < window <= t_emit + 10 - t1
    raster = np.zeros((t2 + 40, 2), bool)
    raster[[0, t2 - 1], 0] = True
    raster[t_emit, 1] = True
    x_post1 = math.exp(-(t_emit + 10 - t2) * dt / cfg.stdp.tau_post1_ms)  # trace of the 2nd spike at arrival
    w = 0.5
    expected = w - cfg.stdp.nu_pre * x_post1 * (1.0 if rule == "triplet" else w**cfg.stdp.mu)
    for name in ("numba", "torch"):
        eng = make_engine(name, cfg, state)
        counts = eng.run_events(*raster_to_events(raster), learning=True)
        assert counts.tolist() == [2], name
        assert eng.export_state().weights[1, 0] == pytest.approx(expected, rel=1e-12, abs=0), name


# Long runs with carried state. Shortened so that the rare event schedules come often: 30 inputs,
# 8 neurons, 40 ms presentations with 10 ms rests (the delays of up to 10 ms keep spikes in flight
# across the weight normalisation), and a 2 ms fast post trace, whose live window (92.5 ms) is then
# close to the gap between a neuron's spikes in consecutive presentations. The equations, the
# schedule within a step and the state carried between presentations are the published ones.
RULES = list(rule_names())  # every registered rule
REFRACTORINESS = {"brian1": (5.0, 0.0), "brian2-ports": (50.0, 5.0)}


def _long_config(rule, refractoriness):
    refractory_ms, clamp_ms = REFRACTORINESS[refractoriness]
    return DiehlCookConfig.from_dict(
        {
            "network": {"n_input": 30, "n_neurons": 8, "norm_total": 6.0},
            "exc": {"refractory_ms": refractory_ms, "clamp_ms": clamp_ms},
            "stdp": {"kind": rule, "tau_post1_ms": 2.0, "nu_pre": 0.002, "nu_post": 0.05},
            "protocol": {"example_ms": 40.0, "rest_ms": 10.0},
        }
    )


def _long_run(name, cfg, n_presentations, bucket_capacity=None):
    """Counts per presentation, weights and theta after ``n_presentations`` learning presentations
    (normalise, input, rest), all on one engine whose state carries over."""
    state = init_state(cfg, np.random.default_rng(1))
    rng = np.random.default_rng(7)
    eng = make_engine(name, cfg, state, seed=0)
    if name == "numba":
        eng.bucket_capacity = bucket_capacity
        eng.reset_dynamics()
    else:
        eng.reset_dynamics(1)
    counts = []
    for _ in range(n_presentations):
        raster = rng.random((cfg.protocol.example_steps, cfg.network.n_input)) < 150.0 * cfg.protocol.dt_ms * 1e-3
        eng.normalize()
        counts.append(eng.run_events(*raster_to_events(raster), learning=True))
        eng.rest(True)
    s = eng.export_state()
    return np.array(counts), s.weights, s.theta


@pytest.mark.parametrize("refractoriness", list(REFRACTORINESS))
@pytest.mark.parametrize("rule", RULES)
def test_scheduled_and_scanned_pre_updates_agree_over_long_runs(rule, refractoriness):
    # capacity 0: no buckets, every step finds its arrivals at live neurons by a scan
    cfg = _long_config(rule, refractoriness)
    (c0, w0, th0), (c1, w1, th1) = (_long_run("numba", cfg, 600, cap) for cap in (None, 0))
    assert c0.sum() > 500
    np.testing.assert_array_equal(c0, c1)
    np.testing.assert_array_equal(w0, w1)
    np.testing.assert_array_equal(th0, th1)


@pytest.mark.parametrize("refractoriness", list(REFRACTORINESS))
@pytest.mark.parametrize("rule", RULES)
def test_engines_agree_over_long_runs(rule, refractoriness):
    cfg = _long_config(rule, refractoriness)
    (c0, w0, th0), (c1, w1, th1) = (_long_run(name, cfg, 200) for name in ("numba", "torch"))
    assert c0.sum() > 200
    np.testing.assert_array_equal(c0, c1)
    np.testing.assert_allclose(w0, w1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(th0, th1, rtol=0, atol=1e-12)


def _stepwise_run(cfg, n_presentations, force_live):
    """Like :func:`_long_run` on the compiled engine, one step per call; ``force_live`` marks every
    delivery-ring row as possibly non-zero before each step (the loop then adds both copies of
    the row at every arrival, as before rows were skipped). Checks after every step that each row
    marked all-zero is all zeros."""
    eng = make_engine("numba", cfg, init_state(cfg, np.random.default_rng(1)), seed=0)
    rng = np.random.default_rng(7)
    counts = []
    for _ in range(n_presentations):
        raster = rng.random((cfg.protocol.example_steps, cfg.network.n_input)) < 150.0 * cfg.protocol.dt_ms * 1e-3
        eng.normalize()
        c = np.zeros(cfg.network.n_neurons, np.int64)
        for row in raster:
            if force_live:
                eng.ring_live[:] = True
            c += eng.run_events(*raster_to_events(row[None, :]), learning=True)
            assert not eng.ring_ge[~eng.ring_live].any()
        counts.append(c)
        eng.rest(True)
    s = eng.export_state()
    return np.array(counts), s.weights, s.theta


def test_skipped_delivery_rows_change_no_bit():
    cfg = _long_config("triplet", "brian1")
    (c0, w0, th0), (c1, w1, th1) = (_stepwise_run(cfg, 40, force) for force in (False, True))
    assert c0.sum() > 30
    np.testing.assert_array_equal(c0, c1)
    assert w0.tobytes() == w1.tobytes() and th0.tobytes() == th1.tobytes()
