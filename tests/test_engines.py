"""Both engines, driven by the same input spikes, must compute the same network."""

import numpy as np
import pytest

from spikeforge.encoding import raster_to_events
from spikeforge.engines import make_engine
from spikeforge.models.diehl_cook import DiehlCookConfig, init_state


def _config(delay_ms, **proto):
    return DiehlCookConfig.from_dict(
        {
            "network": {"n_input": 30, "n_neurons": 8, "input_delay_max_ms": delay_ms, "norm_total": 6.0},
            "protocol": proto,
        }
    )


def _raster(n_steps, n_in, rate_hz, dt_ms, seed):
    rng = np.random.default_rng(seed)
    return rng.random((n_steps, n_in)) < rate_hz * dt_ms * 1e-3


@pytest.mark.parametrize("delay_ms,rest_ms", [(0.0, 150.0), (10.0, 150.0), (10.0, 2.0)])
@pytest.mark.parametrize("trace_mode", ["set", "add"])
@pytest.mark.parametrize("bucket_capacity", [None, 1])
def test_numba_and_torch_agree_on_identical_input(delay_ms, rest_ms, trace_mode, bucket_capacity):
    # rest_ms=2 leaves spikes in flight across the weight normalisation between presentations
    cfg = _config(delay_ms, rest_ms=rest_ms)
    cfg = cfg.replace(stdp=cfg.stdp.replace(trace_mode=trace_mode, nu_pre=0.002, nu_post=0.05))
    state = init_state(cfg, np.random.default_rng(1))
    engines = [make_engine(name, cfg, state, seed=0) for name in ("numba", "torch")]
    results = []
    for eng in engines:
        if eng.name == "torch":
            eng.reset_dynamics(1)
        else:  # capacity 1: the scheduled pre-spike updates overflow and the scan fallback runs
            eng.bucket_capacity = bucket_capacity
            eng.reset_dynamics()
        counts = []
        for k in range(3):  # three presentations with rests, learning on
            raster = _raster(cfg.protocol.example_steps, 30, 150.0, cfg.protocol.dt_ms, seed=k)
            eng.normalize()
            counts.append(eng.run_events(*raster_to_events(raster), learning=True))
            eng.rest(True)
        s = eng.export_state()
        results.append((np.array(counts), s.weights, s.theta))
    (c0, w0, th0), (c1, w1, th1) = results
    assert c0.sum() > 20, "the test network should be active"
    np.testing.assert_array_equal(c0, c1)
    np.testing.assert_allclose(w0, w1, rtol=0, atol=1e-10)
    np.testing.assert_allclose(th0, th1, rtol=0, atol=1e-10)
    assert not np.allclose(w0, state.weights), "STDP should have changed the weights"


@pytest.mark.parametrize("layer", ["exc", "inh"])
def test_engines_agree_with_exponential_integration(layer):
    cfg = DiehlCookConfig.from_dict(
        {"network": {"n_input": 30, "n_neurons": 8, "norm_total": 6.0}, layer: {"integration": "exponential"}}
    )
    state = init_state(cfg, np.random.default_rng(1))
    raster = _raster(600, 30, 150.0, cfg.protocol.dt_ms, seed=4)
    counts = []
    for name in ("numba", "torch"):
        eng = make_engine(name, cfg, state)
        counts.append(eng.run_events(*raster_to_events(raster), learning=True))
    assert counts[0].sum() > 0
    np.testing.assert_array_equal(*counts)


def test_overriding_one_inhibitory_field_keeps_the_inhibitory_defaults():
    cfg = DiehlCookConfig.from_dict({"inh": {"refractory_ms": 3.0}})
    assert (cfg.inh.v_rest_mv, cfg.inh.v_reset_mv, cfg.inh.tau_m_ms, cfg.inh.adaptive) == (-60.0, -45.0, 10.0, False)
    assert cfg.inh.refractory_ms == 3.0


def test_engines_agree_in_inference_with_batches():
    cfg = _config(10.0)
    state = init_state(cfg, np.random.default_rng(2))
    rasters = [_raster(cfg.protocol.example_steps, 30, 150.0, cfg.protocol.dt_ms, seed=10 + b) for b in range(3)]
    torch_eng = make_engine("torch", cfg, state)
    batched = torch_eng.run_raster(np.stack(rasters, axis=1), learning=False).numpy()
    for b, raster in enumerate(rasters):
        eng = make_engine("numba", cfg, state)
        np.testing.assert_array_equal(eng.run_events(*raster_to_events(raster), learning=False), batched[b])


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_torch_engine_on_cuda_matches_cpu():
    cfg = _config(10.0)
    state = init_state(cfg, np.random.default_rng(3))
    raster = _raster(cfg.protocol.example_steps, 30, 150.0, cfg.protocol.dt_ms, seed=5)
    cpu = make_engine("torch", cfg, state, device="cpu").run_raster(raster[:, None, :], learning=True)
    gpu = make_engine("torch", cfg, state, device="cuda").run_raster(raster[:, None, :], learning=True)
    np.testing.assert_array_equal(cpu.numpy(), gpu.cpu().numpy())


def test_dynamic_state_of_another_ring_layout_is_dropped_with_a_warning():
    cfg = _config(10.0)
    state = init_state(cfg, np.random.default_rng(1))
    eng = make_engine("numba", cfg, state)
    saved = eng.dynamic_state()
    assert eng.load_dynamic_state(saved) is True
    saved["hist_n"] = np.zeros(saved["hist_n"].shape[0] - 1, np.int32)  # as written by another layout
    with pytest.warns(UserWarning, match="older engine layout"):
        assert eng.load_dynamic_state(saved) is False


def test_normalisation_with_kept_column_sums_is_bit_for_bit_the_plain_one():
    from spikeforge.engines.dc_numba_between import normalize_cached
    from spikeforge.synapses.projections import normalize_columns_c

    rng = np.random.default_rng(0)
    w_plain = rng.random((30, 8))
    w_kept = w_plain.copy()
    sums, dirty = np.zeros(8), np.ones(8, np.bool_)
    for _ in range(5):
        normalize_columns_c(w_plain, 6.0)
        normalize_cached(w_kept, 6.0, sums, dirty, np.zeros(8, np.int64), np.zeros(8))
        assert np.array_equal(w_plain, w_kept) and not dirty.any()
        cols = rng.choice(8, 3, replace=False)  # as STDP: change a few columns, mark them
        change = rng.random((30, 3)) * 0.01
        w_plain[:, cols] += change
        w_kept[:, cols] += change
        dirty[cols] = True
