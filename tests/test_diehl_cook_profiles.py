"""The Diehl & Cook profiles: size-adaptive defaults, the released code one flag away, and what
results.json records about them."""

import hashlib
import json
import math

import numpy as np
import pytest

from spikeforge.cli.main import main
from spikeforge.experiments.diehl_cook import SPEC
from spikeforge.experiments.diehl_cook_profiles import profile_value, theta_plus_for
from spikeforge.experiments.scaffold import resolve_config
from spikeforge.io.checkpoint import load_checkpoint

#: ``diehl-cook train`` of this size and protocol on the embedded data, seed 0, on main at b4c2e95
#: (before profiles existed, integration "euler", theta+ 0.05 mV): sha256 of the trained arrays
GOLDEN_ARGS = [
    "--neurons",
    "8",
    "--train-examples",
    "40",
    "--quiet",
    "--set",
    "model.protocol.example_ms=100",
    "--set",
    "model.protocol.rest_ms=20",
]
GOLDEN_SHA256 = {
    "weights": "a36bfcffdaae05de572ce9a14757aed7db73d84911f1abc7e077c3ae700f6f6d",
    "theta": "ac27c82c5b419d765ace2bfa183cc71e31deae195fdfba286279e213afd293af",
}
GOLDEN_THETA_MV = [27.81798516, 20.02043475, 19.97050177, 20.02043421]
GOLDEN_THETA_MV += [20.02045996, 35.10655129, 19.97050177, 20.17034634]


def _cfg(*sets, **values):
    return resolve_config(SPEC, sets=list(sets), values=values)


def test_default_theta_plus_is_the_released_value_at_400_and_follows_the_rule():
    assert theta_plus_for(400) == 0.05  # exactly, not approximately
    assert _cfg(**{"model.network.n_neurons": 400}).model.exc.theta_plus_mv == 0.05
    for n in (1, 100, 1600, 6400, 1000):
        cfg = _cfg(**{"model.network.n_neurons": n})
        assert cfg.run.profile == "default"
        assert cfg.model.exc.theta_plus_mv == pytest.approx(0.05 * math.sqrt(n / 400), rel=1e-15)
    assert theta_plus_for(100) == 0.025 and theta_plus_for(1600) == 0.1 and theta_plus_for(6400) == 0.2


def test_released_profile_is_the_released_code_at_every_size():
    for n in (100, 400, 6400):
        cfg = _cfg("run.profile='released'", **{"model.network.n_neurons": n})
        assert cfg.model.exc.theta_plus_mv == 0.05
        assert cfg.model.exc.integration == "euler" and cfg.model.inh.integration == "euler"


def test_explicit_settings_win_over_the_profile():
    sets = ("model.exc.theta_plus_mv=0.07", "model.inh.integration='exponential'")
    cfg = _cfg(*sets, **{"model.network.n_neurons": 100})
    assert cfg.model.exc.theta_plus_mv == 0.07 and cfg.model.inh.integration == "exponential"
    assert cfg.model.exc.integration == profile_value("default", "model.exc.integration", 100)
    released = _cfg("run.profile='released'", "model.exc.theta_plus_mv=0.01")
    assert released.model.exc.theta_plus_mv == 0.01 and released.model.exc.integration == "euler"


def test_released_profile_reproduces_the_engine_before_profiles_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKEFORGE_DATA", raising=False)
    out = tmp_path / "released"
    assert main(["diehl-cook", "train", "--out", str(out), "--profile", "released", *GOLDEN_ARGS]) == 0
    arrays, _ = load_checkpoint(out / "checkpoint")
    np.testing.assert_allclose(arrays["theta"], GOLDEN_THETA_MV, rtol=0, atol=1e-8)  # readable on failure
    for name, digest in GOLDEN_SHA256.items():
        assert hashlib.sha256(arrays[name].tobytes()).hexdigest() == digest, name
    # the default profile at this size is another model: theta+ = 0.05 * sqrt(8 / 400)
    out = tmp_path / "default"
    assert main(["diehl-cook", "train", "--out", str(out), *GOLDEN_ARGS]) == 0
    default, _ = load_checkpoint(out / "checkpoint")
    assert not np.array_equal(default["theta"], arrays["theta"])


def test_results_record_the_profile_the_derived_values_and_the_provenance(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKEFORGE_DATA", raising=False)
    out = tmp_path / "run"
    small = [*GOLDEN_ARGS[:2], "--train-examples", "10", "--label-examples", "10", "--test-examples", "5"]
    args = [*small, *GOLDEN_ARGS[4:], "--no-plot", "--set", "model.exc.theta_plus_mv=0.3"]
    assert main(["diehl-cook", "run", "--out", str(out), *args]) == 0
    res = json.loads((out / "results.json").read_text())
    prof = res["profile"]
    assert prof["name"] == "default" and prof["n_neurons"] == 8
    theta = prof["derived"]["model.exc.theta_plus_mv"]
    assert theta == {
        "value": 0.3,
        "profile_value": theta_plus_for(8),
        "rule": "0.05 mV * sqrt(N / 400)",
        "source": "set",
    }
    integ = prof["derived"]["model.exc.integration"]
    assert integ["source"] == "profile" and integ["value"] == res["model"]["exc"]["integration"]
    stab = res["train_stability"]  # the engine's record of the integration, summed over the run
    assert stab["layers"]["exc"]["integration"] == "euler_substep" and stab["unstable_neuron_steps"] == 0
    p = res["provenance"]
    assert p["profile"] == "default" and p["engine"] == "numba" and p["cpu"]
    for key in ("spikeforge", "numpy", "numba", "torch", "git", "engine_sources_sha256"):
        assert key in p, key


def test_a_run_saved_before_profiles_keeps_its_values_when_resumed(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKEFORGE_DATA", raising=False)
    out = tmp_path / "old"
    args = [*GOLDEN_ARGS[:2], "--train-examples", "6", *GOLDEN_ARGS[4:]]
    assert main(["diehl-cook", "train", "--out", str(out), "--profile", "released", *args]) == 0
    record = json.loads((out / "config.json").read_text())
    del record["config"]["run"]["profile"]  # as written before profiles existed
    (out / "config.json").write_text(json.dumps(record))
    assert main(["diehl-cook", "train", "--out", str(out), "--epochs", "2", "--quiet"]) == 0
    _, meta = load_checkpoint(out / "checkpoint")
    assert meta["progress"]["examples_seen"] == 12
    assert meta["model"]["exc"]["theta_plus_mv"] == 0.05 and meta["model"]["exc"]["integration"] == "euler"
