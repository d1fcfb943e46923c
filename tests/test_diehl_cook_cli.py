"""The Diehl & Cook command on tiny networks: end to end, resume, bad input."""

import json
import shutil

import numpy as np
import pytest

from spikeforge.cli.main import main
from spikeforge.experiments.diehl_cook import Experiment
from spikeforge.io.checkpoint import load_checkpoint

TINY = [
    "--neurons",
    "6",
    "--train-examples",
    "30",
    "--label-examples",
    "20",
    "--test-examples",
    "10",
    "--quiet",
    "--set",
    "model.protocol.example_ms=100",
    "--set",
    "model.protocol.rest_ms=20",
]


def test_run_writes_results_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["diehl-cook", "run", "--out", str(out), "--record-examples", "2", *TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    for key in (
        "accuracy",
        "neurons",
        "train_examples_seen",
        "train_seconds",
        "train_examples_per_second",
        "engine",
        "seed",
        "version",
    ):
        assert key in res, key
    assert res["neurons"] == 6 and res["train_examples_seen"] == 30 and 0 <= res["accuracy"] <= 1
    assert res["test_examples"] == 10 and res["label_examples"] == 20
    for name in (
        "weights.png",
        "theta.png",
        "confusion.png",
        "test_raster.png",
        "test_spikes.safetensors",
        "checkpoint.safetensors",
        "config.toml",
        "labels.safetensors",
        "config.json",
    ):
        assert (out / name).is_file(), name
    arrays, meta = load_checkpoint(out / "checkpoint")
    assert arrays["weights"].shape == (784, 6) and meta["model"]["network"]["n_neurons"] == 6
    assert '"accuracy"' in capsys.readouterr().out
    spikes, meta = load_checkpoint(out / "test_spikes")
    assert set(np.unique(spikes["example"])) <= {0, 1} and meta["examples"] == 2
    assert spikes["neuron"].max(initial=0) < 6


def test_stages_continue_training_and_retest(tmp_path):
    out = str(tmp_path / "run")
    assert main(["diehl-cook", "train", "--out", out, *TINY[:4], *TINY[8:]]) == 0
    assert main(["diehl-cook", "train", "--out", out, "--epochs", "2", *TINY[:4], *TINY[8:]]) == 0
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert meta["progress"]["examples_seen"] == 60
    assert main(["diehl-cook", "assign", "--out", out, *TINY]) == 0
    assert main(["diehl-cook", "test", "--out", out, "--no-plot", *TINY]) == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["train_examples_seen"] == 60


def test_stages_on_a_saved_run_reuse_its_settings(tmp_path):
    out = str(tmp_path / "run")
    assert main(["diehl-cook", "train", "--out", out, *TINY, "--set", "model.exc.theta_plus_mv=0.1"]) == 0
    # no size or overrides repeated: the run directory's config.json is the base
    assert main(["diehl-cook", "assign", "--out", out, "--quiet"]) == 0
    assert main(["diehl-cook", "test", "--out", out, "--quiet", "--test-examples", "5"]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["neurons"] == 6 and res["test_examples"] == 5
    assert res["model"]["exc"]["theta_plus_mv"] == 0.1
    # a conflicting model setting is still refused, and the saved config is left as it was
    assert main(["diehl-cook", "train", "--out", out, "--quiet", "--set", "model.exc.theta_plus_mv=0.2"]) == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["model"]["exc"]["theta_plus_mv"] == 0.1


@pytest.mark.parametrize("schedule", [[], ["model.stdp.nu_decay=0.5", "model.stdp.nu_decay_every=5"]])
def test_resume_from_a_periodic_checkpoint_repeats_nothing(tmp_path, monkeypatch, schedule):
    args = dict(neurons=5, train_examples=24, checkpoint_every=8)
    over = ["model.protocol.example_ms=60", "model.protocol.rest_ms=20", *schedule]
    saved = []
    original = Experiment._save

    def spy(self, engine, progress):
        original(self, engine, progress)
        snap = tmp_path / f"snap{len(saved)}"
        shutil.copytree(self.out, snap)
        saved.append((progress["index"], snap))

    monkeypatch.setattr(Experiment, "_save", spy)
    full = Experiment.from_sources(tmp_path / "full", None, over, args, quiet=True)
    full.train()
    monkeypatch.setattr(Experiment, "_save", original)
    index, snap = next((i, s) for i, s in saved if i == 8)  # as if killed after the first checkpoint
    resumed = Experiment.from_sources(snap, None, over, args, quiet=True)
    prog = resumed.train()
    assert prog["examples_seen"] == 24
    a, _ = load_checkpoint(tmp_path / "full" / "checkpoint")
    b, _ = load_checkpoint(snap / "checkpoint")
    np.testing.assert_array_equal(a["weights"], b["weights"])
    np.testing.assert_array_equal(a["theta"], b["theta"])


def test_checkpoint_of_another_size_is_refused_with_both_shapes(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["diehl-cook", "train", "--out", out, *TINY[:4], *TINY[8:]]) == 0
    assert main(["diehl-cook", "test", "--out", out, "--neurons", "9", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model.network.n_neurons is 6 in the saved run, 9 now" in err and "--fresh" in err
    # a checkpoint without its run record (copied elsewhere) is still checked against its shape
    (tmp_path / "run" / "config.json").unlink()
    assert main(["diehl-cook", "train", "--out", out, "--neurons", "9", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "(784, 6)" in err and "(784, 9)" in err and "--neurons 6" in err


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "many"])
def test_bad_neuron_count_is_a_clear_error(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["diehl-cook", "run", "--neurons", value])
    assert exc.value.code == 2
    assert "--neurons" in capsys.readouterr().err


def test_unknown_config_key_is_named(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model.exc]\ntau_m = 100\n")
    assert main(["diehl-cook", "run", "--out", str(tmp_path / "r"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "tau_m" in err and "tau_m_ms" in err
    assert main(["diehl-cook", "run", "--out", str(tmp_path / "r"), "--set", "run.neuronz=4"]) == 2
    assert "neuronz" in capsys.readouterr().err


def test_out_of_range_value_names_field_and_range(tmp_path, capsys):
    assert main(["diehl-cook", "run", "--out", str(tmp_path / "r"), "--set", "model.protocol.dt_ms=-1"]) == 2
    err = capsys.readouterr().err
    assert "dt_ms" in err and "-1" in err and "greater than 0" in err


def test_missing_data_dir_names_the_files(tmp_path, capsys):
    assert main(["diehl-cook", "run", "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "download" in err


def test_torch_engine_runs_the_same_command(tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "diehl-cook",
                "run",
                "--out",
                str(out),
                "--engine",
                "torch",
                "--no-plot",
                "--neurons",
                "4",
                "--train-examples",
                "4",
                "--label-examples",
                "6",
                "--test-examples",
                "6",
                "--batch-size",
                "3",
                "--quiet",
                "--set",
                "model.protocol.example_ms=40",
                "--set",
                "model.protocol.rest_ms=10",
                "--set",
                "model.network.input_delay_max_ms=2",
                "--set",
                "model.protocol.min_spikes=1",
            ]
        )
        == 0
    )
    assert json.loads((out / "results.json").read_text())["engine"] == "torch"
