"""`spikeforge event-stdp run` on a tiny run (embedded data), and clear errors for bad input."""

import json

import pytest

from spikeforge.cli.main import main

TINY = [
    "--train-limit",
    "40",
    "--test-limit",
    "12",
    "--feature-images",
    "40",
    "--features",
    "6",
    "--steps",
    "8",
    "--window",
    "1",
    "--readout-epochs",
    "2",
    "--threads",
    "1",
    "--quiet",
    "--set",
    "reconstruction.fit_images=10",
    "--set",
    "reconstruction.n_show=4",
]


@pytest.fixture(autouse=True)
def _embedded(monkeypatch):
    monkeypatch.delenv("SPIKEFORGE_DATA", raising=False)


def test_tiny_run_writes_results_figures_checkpoint_and_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["event-stdp", "run", "--out", str(out), *TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    for key in (
        "reconstruction_mse",
        "reconstruction_mse_random",
        "accuracy",
        "features",
        "patch_size",
        "stride",
        "train_seconds",
    ):
        assert key in res
    assert res["features"] == 6 and res["patch_size"] == 7 and res["stride"] == 2
    assert res["n_train"] == 40 and res["n_test"] == 12
    assert 0.0 <= res["accuracy"] <= 1.0
    assert res["reconstruction_mse"] >= 0.0
    for name in (
        "features.png",
        "reconstructions.png",
        "config.toml",
        "checkpoint.safetensors",
        "features.safetensors",
    ):
        assert (out / name).is_file(), name
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == res["accuracy"]
    # the saved config is a valid config that reproduces the run's settings
    from spikeforge.experiments.event_stdp import load_config

    cfg = load_config(out / "config.toml")
    assert cfg.layer.n_features == 6 and cfg.coding.steps == 8
    # a second run with the same config resumes from the saved features (no new training)
    assert main(["event-stdp", "run", "--out", str(out), *TINY]) == 0
    res2 = json.loads((out / "results.json").read_text())
    assert res2["train_seconds"] == res["train_seconds"]


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--stride", "0"], "stride_px"),
        (["--patch-size", "29"], "larger than the image"),
        (["--window", "8"], "window_steps"),
        (["--learning-rate", "0"], "learning_rate"),
        (["--learning-rate", "3"], "learning_rate"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, capsys, flags, needle):
    code = main(["event-stdp", "run", "--out", str(tmp_path / "bad"), *TINY, *flags])
    assert code == 2
    assert needle in capsys.readouterr().err
