"""The ``spikeforge tha`` commands on tiny settings (embedded MNIST subset, few steps)."""

import json

import pytest

from spikeforge.cli.main import main


def _tiny_mnist(out, *extra):
    return main(
        [
            "tha",
            "mnist",
            "--out",
            str(out),
            "--data-dir",
            "embedded",
            "--train-limit",
            "96",
            "--val-size",
            "32",
            "--test-limit",
            "40",
            "--num-steps",
            "3",
            "--batch-size",
            "32",
            "--quiet",
            "--set",
            "run.checkpoint_every=1",
            *extra,
        ]
    )


def test_mnist_tiny_run_writes_results_plots_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert _tiny_mnist(out, "--epochs", "1") == 0
    res = json.loads((out / "results.json").read_text())
    t = res["trials"][0]
    assert t["epochs_done"] == 1 and t["iterations"] == 2 and t["finished"]
    assert res["binarize"] is True and res["anneal"] is True
    for f in ("loss.png", "accuracy.png", "thresholds.png", "last.safetensors", "best.safetensors"):
        assert (out / "trial0" / f).is_file(), f
    # annealed thresholds after 2 steps follow the closed form and are in the checkpoint
    from spikeforge.experiments.tha import _load_ckpt

    tensors, meta = _load_ckpt(out / "trial0" / "last")
    theta1 = 15.983 - (15.983 - 11.666) * (1 - 0.024) ** 2
    assert float(tensors["model.lif1.threshold"]) == pytest.approx(theta1, rel=1e-5)
    first_epoch = t["epochs"][0]
    # a second command with more epochs continues from the checkpoint (epoch 1 is not trained again)
    assert _tiny_mnist(out, "--epochs", "2") == 0
    t = json.loads((out / "results.json").read_text())["trials"][0]
    assert t["epochs_done"] == 2 and t["iterations"] == 4 and t["epochs"][0] == first_epoch
    # fewer epochs than trained would make results.json claim a run that did not produce it
    assert _tiny_mnist(out, "--epochs", "1") == 2
    assert "has trained 2 epochs, more than --epochs 1" in capsys.readouterr().err


def test_mnist_full_precision_no_anneal(tmp_path):
    out = tmp_path / "fp"
    assert _tiny_mnist(out, "--epochs", "1", "--no-binarize", "--no-anneal") == 0
    res = json.loads((out / "results.json").read_text())
    assert res["binarize"] is False and res["anneal"] is False
    assert res["trials"][0]["final_thresholds"] == pytest.approx([11.666, 14.105, 0.6656], rel=1e-6)


def test_resume_with_other_config_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _tiny_mnist(out, "--epochs", "1") == 0
    assert _tiny_mnist(out, "--epochs", "1", "--set", "train.lr=0.001") == 2
    err = capsys.readouterr().err
    assert "train.lr is 0.00997 in the saved run, 0.001 now" in err and "--fresh" in err
    assert _tiny_mnist(out, "--epochs", "1", "--set", "train.lr=0.001", "--fresh") == 0
    assert json.loads((out / "results.json").read_text())["config"]["train"]["lr"] == 0.001


@pytest.mark.parametrize(
    "override, message",
    [
        ('model.surrogate="nope"', "unknown surrogate gradient 'nope'"),
        ("anneal.alpha=[0.1, 1.5, 0.1]", "anneal.alpha[1] = 1.5"),
        ("anneal.theta_final=[1.0, 30.0, 4.0]", "below the initial threshold"),
        ("train.lr=-1", "train.lr"),
    ],
)
def test_bad_config_values_are_clear_errors(tmp_path, capsys, override, message):
    assert main(["tha", "mnist", "--out", str(tmp_path), "--set", override, "--show-config"]) == 2
    assert message in capsys.readouterr().err


def test_spike_timing_tiny(tmp_path):
    out = tmp_path / "st"
    assert (
        main(
            [
                "tha",
                "spike-timing",
                "--out",
                str(out),
                "--iterations",
                "6",
                "--hidden",
                "30",
                "--quiet",
                "--set",
                "frame_every=2",
            ]
        )
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    assert set(res["cases"]) == {
        "full_precision_theta1",
        "binarized_theta1",
        "binarized_theta50",
        "binarized_annealed_5_to_50",
    }
    for name, r in res["cases"].items():
        for f in ("loss.png", "membrane_final.png", "membrane_training.gif"):
            assert (out / name / f).is_file()
        assert r["final_loss"] >= 0
    ann = res["cases"]["binarized_annealed_5_to_50"]
    assert ann["final_threshold"] == pytest.approx(50 - 45 * 0.995**6, rel=1e-5)


def test_interrupted_run_resumes_mid_epoch_to_the_same_weights(tmp_path, monkeypatch):
    import torch

    from spikeforge.experiments.tha import _load_ckpt
    from spikeforge.plasticity.threshold_annealing import ThresholdAnnealing

    straight = tmp_path / "straight"
    assert _tiny_mnist(straight, "--epochs", "1", "--train-limit", "128") == 0
    original = ThresholdAnnealing.step
    calls = {"n": 0}

    def interrupting_step(self):
        calls["n"] += 1
        if calls["n"] == 3:  # during the third iteration, after the checkpoint of the second
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(ThresholdAnnealing, "step", interrupting_step)
    broken = tmp_path / "broken"
    assert _tiny_mnist(broken, "--epochs", "1", "--train-limit", "128") == 130
    monkeypatch.setattr(ThresholdAnnealing, "step", original)
    assert _tiny_mnist(broken, "--epochs", "1", "--train-limit", "128") == 0
    a, _ = _load_ckpt(straight / "trial0" / "last")
    b, meta = _load_ckpt(broken / "trial0" / "last")
    assert meta["state"]["global_step"] == 3
    for k in a:
        if k.startswith("model."):
            assert torch.equal(a[k], b[k]), k


def test_init_from_another_run_keeps_weights_and_annealed_thresholds(tmp_path, capsys):
    from spikeforge.experiments.tha import _load_ckpt

    first = tmp_path / "first"
    assert _tiny_mnist(first, "--epochs", "1") == 0
    a, _ = _load_ckpt(first / "trial0" / "last")
    second = tmp_path / "second"
    assert (
        _tiny_mnist(second, "--epochs", "1", "--init-from", str(first / "trial0" / "last"), "--set", "train.lr=1e-12")
        == 0
    )
    b, _ = _load_ckpt(second / "trial0" / "last")
    assert torch_close(a["model.conv1.weight"], b["model.conv1.weight"])  # lr ~0: unchanged
    theta = float(a["model.lif3.threshold"])
    expect = 4.1616 - (4.1616 - theta) * (1 - 0.0011) ** 2  # annealing continued, not reset
    assert float(b["model.lif3.threshold"]) == pytest.approx(expect, rel=1e-5)


def torch_close(x, y):
    import torch

    return torch.allclose(x, y, rtol=0, atol=1e-9)


def test_evaluate_checkpoint_reproduces_the_logged_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    assert _tiny_mnist(out, "--epochs", "1") == 0
    t = json.loads((out / "results.json").read_text())["trials"][0]
    capsys.readouterr()
    assert main(["tha", "evaluate", str(out / "trial0" / "last")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["test_acc"] == pytest.approx(t["final_test_acc"])
    assert res["val_acc"] == pytest.approx(t["epochs"][-1]["val_acc"])
