"""Weight averaging of the spiking olfaction trainer (``run.ema_decay``)."""

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from spikeforge.cli.main import main
from spikeforge.experiments.olfaction import OlfactionConfig, Trainer, split_data

TINY = {
    "run": {"train_limit": 120, "batch_size": 40, "eval_batch": 500, "kc": 12, "epochs": 2, "dtype": "float64"},
    "model": {"steps": 10, "burn_in": 4, "layer_sizes": [50, 16, 8, 12]},
}


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_OLFACTION_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _trainer(decay: float, mode: str = "decolle") -> tuple[Trainer, dict]:
    raw = json.loads(json.dumps(TINY))
    raw["run"].update(ema_decay=decay, mode=mode)
    cfg = OlfactionConfig.from_dict(raw).resolved()
    return Trainer(cfg), split_data(cfg)


@pytest.mark.parametrize("mode", ["decolle", "hybrid"])
def test_average_is_the_recursion_over_the_batches(cache, mode):
    d = 0.7
    tr, data = _trainer(d, mode)
    keys = sorted(tr.ema)
    assert keys and not any(k.startswith(("mask", "readout")) for k in keys)
    assert {"w0", "bias0", "w1", "out_w", "out_b"} <= set(keys)
    # the STDP block (hybrid: the last, PN -> KC) keeps its rule's own state, unaveraged
    assert ("w2" in keys and "bias2" in keys) == (mode == "decolle")
    expect = {k: tr.net.tensors()[k].clone() for k in keys}  # the average starts at the initial weights
    run = tr.net.run_batch

    def hooked(x, y=None, optimizer=None, generator=None, **kw):
        res = run(x, y, optimizer, generator, **kw)
        if optimizer is not None:
            for k in keys:
                expect[k] = d * expect[k] + (1 - d) * tr.net.tensors()[k]
        return res

    tr.net.run_batch = hooked
    tr.train_epoch(data["x_train"], data["y_train"], 0)
    for k in keys:
        torch.testing.assert_close(tr.ema[k], expect[k], rtol=0, atol=1e-15)
    assert not torch.equal(tr.ema["w0"], tr.net.tensors()["w0"])  # the average lags the weights


def test_evaluation_uses_the_average_and_restores_the_weights(cache):
    tr, data = _trainer(0.5)
    tr.train_epoch(data["x_train"], data["y_train"], 0)
    live = {k: v.clone() for k, v in tr.net.tensors().items()}
    p_avg = tr.predict(data["x_val"])
    p_raw = tr.predict(data["x_val"], raw=True)
    conn = tr.connectivity()
    for k, v in tr.net.tensors().items():  # nothing of the training state changed
        assert torch.equal(v, live[k]), k
    # by hand: the same predictions with the average copied in, and the raw ones without it
    plain, _ = _trainer(0.0)
    for k, v in live.items():
        plain.net.tensors()[k].copy_(tr.ema.get(k, v))
    assert np.array_equal(plain.predict(data["x_val"]), p_avg)
    assert np.array_equal(conn[0], plain.connectivity()[0])
    for k, v in live.items():
        plain.net.tensors()[k].copy_(v)
    assert np.array_equal(plain.predict(data["x_val"]), p_raw)


def _cli(out, epochs, decay=0.6):
    args = ["olfaction", "run", "--mode", "decolle", "--epochs", str(epochs), "--out", str(out), "--kc", "12"]
    args += ["--train-limit", "120", "--set", f"run.ema_decay={decay}", "--set", "run.batch_size=40"]
    args += ["--set", "model.steps=10", "--set", "model.burn_in=4", "--set", "model.layer_sizes=[50, 16, 8, 1]"]
    return main(args + ["--no-plot"])


def test_average_resumes_exactly_and_is_reported(cache, capsys):
    assert _cli(cache / "straight", 2) == 0
    assert _cli(cache / "resumed", 1) == 0
    assert _cli(cache / "resumed", 2) == 0
    a = load_file(str(cache / "straight" / "checkpoint.safetensors"))
    b = load_file(str(cache / "resumed" / "checkpoint.safetensors"))
    assert any(k.startswith("ema.") for k in a) and a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    res = json.loads((cache / "straight" / "results.json").read_text())
    hist = res["history"]
    assert len(hist["val_acc_raw"]) == 2 and len(hist["val_acc"]) == 2
    assert res["config"]["run"]["ema_decay"] == 0.6
    assert "(weights " in capsys.readouterr().out
    # switching the average on or off in a saved run is refused, naming the setting
    assert _cli(cache / "straight", 3, decay=0.0) == 2
    assert "run.ema_decay" in capsys.readouterr().err


def test_bad_decay_is_refused():
    for bad in (-0.1, 1.0):
        with pytest.raises(Exception, match="ema_decay"):
            OlfactionConfig.from_dict({"run": {"ema_decay": bad}})
