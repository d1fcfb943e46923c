"""`spikeforge olfaction run/table` on tiny configurations."""

import json

import pytest

from spikeforge.cli.main import main

TINY = [
    "--train-limit",
    "80",
    "--threads",
    "1",
    "--set",
    "model.steps=12",
    "--set",
    "model.burn_in=4",
    "--set",
    "run.batch_size=40",
    "--set",
    "run.eval_batch=500",
    "--set",
    "model.layer_sizes=[50, 16, 8, 1]",
]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_OLFACTION_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("mode", ["decolle", "hybrid", "ann"])
def test_run_writes_results_plots_and_resumes(cache, mode, capsys):
    out = cache / mode
    args = ["olfaction", "run", "--kc", "20", "--mode", mode, "--epochs", "1", "--ann-epochs", "1", "--out", str(out)]
    assert main(args + TINY) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["mode"] == mode and res["layer_sizes"] == [50, 16, 8, 20] and res["epochs"] == 1
    assert 0.0 <= res["test_accuracy"] <= 1.0 and res["samples_per_second"] > 0
    for key in ("glo_score_orn", "glo_score_effective", "K_1_over_nkc", "K_0.02", "K_inferred"):
        assert key in res["connectivity"]
    assert res["stdp_block_idx"] == ([2] if mode == "hybrid" else ([] if mode == "decolle" else None))
    names = {"accuracy.png", "glomeruli.png", "kc_weights.png"} | ({"raster.png"} if mode != "ann" else set())
    assert names <= {p.name for p in out.iterdir()}
    # more epochs: resumes after epoch 1
    assert main(args[:-6] + ["--epochs", "2", "--ann-epochs", "2", "--out", str(out)] + TINY) == 0
    res2 = json.loads((out / "results.json").read_text())
    assert res2["epochs"] == 2 and res2["history"]["test_acc"][0] == res["history"]["test_acc"][0]
    for key in ("glo_score_orn", "glo_score_effective", "orn_score", "K_0.02"):  # per epoch
        assert len(res2["history"][key]) == 2
    # a mismatched setting is refused, naming the field
    assert main(args[:-2] + ["--seed", "3", "--out", str(out)] + TINY) == 2
    assert "run.seed is 0 in the saved run, 3 now" in capsys.readouterr().err
    assert "provenance" in res2 and res2["config"]["run"]["kc"] == 20


def test_table_and_bad_input(cache, capsys):
    out = cache / "table"
    args = [
        "olfaction",
        "table",
        "--kc",
        "10",
        "20",
        "--modes",
        "decolle",
        "ann",
        "--epochs",
        "1",
        "--ann-epochs",
        "1",
        "--out",
        str(out),
        "--no-plot",
    ]
    assert main(args + TINY) == 0
    text = (out / "table.md").read_text()
    assert text.count("| decolle |") == 2 and text.count("| ann |") == 2 and (out / "table.png").is_file()
    assert (
        main(
            ["olfaction", "run", "--set", "model.stdp_block_idx=[0]", "--mode", "hybrid", "--out", str(cache / "bad")]
            + TINY
        )
        == 2
    )
    assert "stdp_block_idx contains 0" in capsys.readouterr().err
    assert main(["olfaction", "run", "--set", "model.burn_in=200", "--out", str(cache / "bad")] + TINY[:2]) == 2
    assert "burn_in = 200 must be < steps = 150" in capsys.readouterr().err
    assert main(["olfaction", "run", "--set", 'run.preset="huge"', "--out", str(cache / "bad")]) == 2
    assert "preset" in capsys.readouterr().err


def test_packaged_toml_agrees_with_the_experiment_defaults():
    """One source for each default: configs/olfaction.toml and OlfactionConfig's defaults agree."""
    from spikeforge.experiments.olfaction_config import SPEC, OlfactionConfig

    assert SPEC.default_config().to_dict() == OlfactionConfig().to_dict()


def test_epochs_zero_takes_the_presets_count():
    """``run.epochs = 0`` (the default) resolves to the preset's measured budget; an explicit count stays."""
    from spikeforge.experiments.olfaction_config import PRESET_EPOCHS, OlfactionConfig

    cfg = OlfactionConfig()
    assert cfg.run.epochs == 0
    for preset, n in PRESET_EPOCHS.items():
        assert cfg.replace(run=cfg.run.replace(preset=preset)).resolved().run.epochs == n
    assert PRESET_EPOCHS["small"] == 12 and PRESET_EPOCHS["medium"] == 10
    assert cfg.replace(run=cfg.run.replace(epochs=3)).resolved().run.epochs == 3


def test_a_run_saved_before_label_smoothing_resumes_with_one_hot_targets(cache):
    out = cache / "old"
    args = ["olfaction", "run", "--kc", "20", "--mode", "decolle", "--no-plot", "--out", str(out), *TINY]
    assert main([*args, "--epochs", "1"]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["model"]["label_smoothing"] == 0.1  # today's default
    # as a run saved before the setting existed: the saved config is the base of a resumed run, so
    # the missing key takes the building block's default (0: one-hot, as such runs trained), not
    # the experiment's 0.1
    del record["config"]["model"]["label_smoothing"]
    (out / "config.json").write_text(json.dumps(record))
    assert main([*args, "--epochs", "2"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["epochs"] == 2 and res["config"]["model"]["label_smoothing"] == 0.0
    assert json.loads((out / "config.json").read_text())["config"]["model"]["label_smoothing"] == 0.0
