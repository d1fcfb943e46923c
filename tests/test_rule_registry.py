"""A Diehl & Cook STDP rule registered from outside the package runs in both engines and through
the command line, with no engine file edited."""

import json

import numba
import numpy as np
import pytest
import torch

from spikeforge.cli.main import main
from spikeforge.encoding import raster_to_events
from spikeforge.engines import make_engine
from spikeforge.models.diehl_cook import DiehlCookConfig, init_state
from spikeforge.plasticity import STDPRule, register_rule, rule_names
from spikeforge.plasticity.stdp_registry import unregister_rule

# toy rule: pre spikes depress in proportion to the post trace and the weight; post spikes
# potentiate towards w_max in proportion to the pre trace:
#   pre:  w <- w - nu_pre * x_post1 * w          post: w <- w + nu_post * x_pre * (w_max - w)


@numba.njit(inline="always")
def _toy_pre(w, x_post1, x_post2, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta):
    return w - nu_pre * x_post1 * w


@numba.njit(inline="always")
def _toy_post(w, x_pre, x_post2_before, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta):
    return w + nu_post * x_pre * (w_max - w)


def _toy_dw_pre(p, w, arrived, x_post1, x_post2):
    return -p.nu_pre * torch.einsum("bij,bj->ij", arrived, x_post1) * w


def _toy_dw_post(p, w, x_pre, post, x_post2_before):
    return p.nu_post * torch.einsum("bij,bj->ij", x_pre, post) * (p.w_max - w)


@pytest.fixture
def toy_rule():
    register_rule(STDPRule("toy", _toy_pre, _toy_post, _toy_dw_pre, _toy_dw_post, "a test rule"))
    yield "toy"
    unregister_rule("toy")


def test_the_four_rules_of_the_paper_are_registered():
    assert rule_names()[:4] == ("triplet", "postpre", "exponential", "presynaptic")


def test_a_rule_registered_at_run_time_runs_in_both_engines(toy_rule):
    cfg = DiehlCookConfig.from_dict(
        {
            "network": {"n_input": 30, "n_neurons": 8, "norm_total": 6.0},
            "stdp": {"kind": toy_rule, "nu_pre": 0.01, "nu_post": 0.05},
        }
    )
    state = init_state(cfg, np.random.default_rng(1))
    rng = np.random.default_rng(3)
    rasters = [rng.random((cfg.protocol.example_steps, 30)) < 150 * cfg.protocol.dt_ms * 1e-3 for _ in range(4)]
    out = []
    for name in ("numba", "torch"):
        eng = make_engine(name, cfg, state)
        counts = []
        for r in rasters:
            eng.normalize()
            counts.append(eng.run_events(*raster_to_events(r), learning=True))
            eng.rest(True)
        out.append((np.array(counts), eng.export_state().weights))
    (c0, w0), (c1, w1) = out
    assert c0.sum() > 20
    np.testing.assert_array_equal(c0, c1)
    np.testing.assert_allclose(w0, w1, rtol=0, atol=1e-12)
    # the toy rule is not the triplet rule: the same run under triplet ends elsewhere
    trip = make_engine("numba", cfg.replace(stdp=cfg.stdp.replace(kind="triplet")), state)
    for r in rasters:
        trip.normalize()
        trip.run_events(*raster_to_events(r), learning=True)
        trip.rest(True)
    assert np.abs(trip.export_state().weights - w0).max() > 1e-3


def test_a_registered_rule_is_a_cli_choice(toy_rule, tmp_path):
    out = tmp_path / "run"
    args = ["--neurons", "4", "--train-examples", "6", "--label-examples", "6", "--test-examples", "4"]
    short = ["--set", "model.protocol.example_ms=60", "--set", "model.protocol.rest_ms=20"]
    assert main(["diehl-cook", "run", "--rule", "toy", "--out", str(out), "--quiet", "--no-plot", *args, *short]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["model"]["stdp"]["kind"] == "toy"


def test_an_unknown_rule_names_the_registered_ones():
    with pytest.raises(ValueError, match="triplet"):
        DiehlCookConfig.from_dict({"stdp": {"kind": "nonexistent"}})


def test_a_rule_without_compiled_functions_is_refused():
    with pytest.raises(TypeError, match="numba function"):
        register_rule(STDPRule("bad", lambda *a: 0.0, _toy_post, _toy_dw_pre, _toy_dw_post))
    assert "bad" not in rule_names()
