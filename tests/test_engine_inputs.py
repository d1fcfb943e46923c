"""Bad input to the engines' public entry points is a clear error before any compiled code runs
(it used to be a segmentation fault or silently zero counts in the compiled engine)."""

import numpy as np
import pytest

from spikeforge.config import ConfigError
from spikeforge.engines import example_key, make_engine
from spikeforge.models.diehl_cook import DiehlCookConfig, DiehlCookState, init_state

CFG = DiehlCookConfig.from_dict({"network": {"n_neurons": 4}, "protocol": {"example_ms": 5.0, "rest_ms": 1.0}})
STATE = init_state(CFG, np.random.default_rng(0))
KEYS = [example_key(0, 0, 0, i) for i in range(2)]


@pytest.fixture(params=["numba", "torch"])
def engine(request):
    return make_engine(request.param, CFG, STATE, device="cpu")


@pytest.mark.parametrize(
    "images,keys,match",
    [
        (np.full((2, 785), 10.0), KEYS, "785 pixels each but the network has network.n_input = 784"),
        (np.full((2, 700), 10.0), KEYS, "700 pixels each"),
        (np.full((2, 784), 10.0), KEYS[:1], "2 images but 1 keys"),
        (np.full((1, 784), 10.0), KEYS, "1 images but 2 keys"),
        (np.full((2, 784), np.nan), KEYS, "NaN or inf"),
        (np.full((2, 784), -1.0), KEYS, "negative pixels"),
        (np.array([["a"] * 784] * 2), KEYS, "must be numbers"),
    ],
    ids=["wider", "narrower", "fewer-keys", "more-keys", "nan", "negative", "strings"],
)
def test_bad_images_are_refused_before_compiled_code(engine, images, keys, match):
    with pytest.raises(ValueError, match=match):
        engine.present(images, learning=True, keys=keys)


def test_images_as_28x28_are_accepted(engine):
    counts, attempts = engine.present(np.full((2, 28, 28), 50.0), learning=False, keys=KEYS)
    assert counts.shape == (2, 4) and attempts.shape == (2,)


@pytest.mark.parametrize(
    "ptr,idx,match",
    [
        ([0, 1, 2], [0, 784], r"\[0, 784\)"),
        ([0, 1, 2], [0, -1], r"\[0, 784\)"),
        ([0, 2, 1], [0, 1], "rise from 0"),
        ([0, 1, 3], [0, 1], "rise from 0"),
        ([0.0, 1.0], [3], "integer"),
    ],
)
def test_bad_input_events_are_refused(engine, ptr, idx, match):
    with pytest.raises(ValueError, match=match):
        engine.run_events(np.array(ptr), np.array(idx), True)


@pytest.mark.parametrize("name", ["numba", "torch"])
def test_non_finite_weights_or_bad_delays_are_refused(name):
    w = STATE.weights.copy()
    w[3, 1] = np.nan
    with pytest.raises(ConfigError, match="weights must be finite"):
        make_engine(name, CFG, DiehlCookState(w, STATE.theta, STATE.delays))
    d = STATE.delays.copy()
    d[0, 0] = 10_000
    with pytest.raises(ConfigError, match="delays must be integers"):
        make_engine(name, CFG, DiehlCookState(STATE.weights, STATE.theta, d))


def test_both_engines_implement_the_contract(engine):
    from spikeforge.engines import DCEngine

    assert isinstance(engine, DCEngine)
    assert engine.dynamic_state() is not None and engine.t == 0
    engine.start_recording(10)
    engine.present(np.full((1, 784), 200.0), learning=False, keys=KEYS[:1])
    steps, neurons = engine.stop_recording()
    assert len(steps) == len(neurons) <= 10
