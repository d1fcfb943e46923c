"""Data-parallel ``olfaction run`` (``--nproc-per-node``): two gloo processes on halves of each batch
train the network one process trains on the whole batch, in every mode (float64, so that no
membrane rounds across its threshold differently)."""

import json

import numpy as np
import pytest
from test_olfaction_cli import TINY as CLI_TINY  # the tiny protocol of the one-process tests

from spikeforge.cli.main import main
from spikeforge.io.checkpoint import load_checkpoint

# 81 samples: 8 for validation, 73 for training: batches of 40 and 33 (split 17 + 16: uneven shards)
TINY = [
    "olfaction",
    "run",
    *CLI_TINY,
    "--train-limit",
    "81",
    "--kc",
    "20",
    "--quiet",
    "--set",
    'run.dtype="float64"',
    "--set",
    "run.plots=false",
    "--set",
    "model.cuba.threshold=0.5",  # low: every layer spikes (the PN and KC layers too), so all learn
]
# random draws in the spiking modes: Bernoulli input spikes and receptor noise
RANDOM = ["--set", 'model.encoding="bernoulli"', "--set", "model.input_gain=0.6", "--set", "model.noise_std=0.05"]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_OLFACTION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def _same_run(a, b):
    ta, ma = load_checkpoint(a / "checkpoint")
    tb, mb = load_checkpoint(b / "checkpoint")
    assert set(ta) == set(tb)
    for k, v in ta.items():  # atol: Adam turns the rounding noise of a zero gradient into steps of ~lr 1e-9
        np.testing.assert_allclose(tb[k], v, rtol=1e-9, atol=1e-9, err_msg=k)
    ha, hb = ma["history"], mb["history"]
    assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-9)
    for key in ("train_acc", "val_acc", "test_acc"):
        assert hb[key] == ha[key], key
    return ta, ha


@pytest.mark.parametrize(
    "mode, extra",
    [
        ("decolle", RANDOM),
        # Wang's ANN: batch norm over the whole batch, receptor noise, uneven shards weighted
        ("ann", []),
    ],
)
def test_two_processes_train_what_one_process_trains(cache, capfd, mode, extra):
    args = [*TINY, *extra, "--mode", mode, "--epochs", "2", "--ann-epochs", "2"]
    assert main([*args, "--out", str(cache / "one")]) == 0
    assert main([*args, "--out", str(cache / "two"), "--nproc-per-node", "2"]) == 0
    out = capfd.readouterr().out
    assert out.count('"test_accuracy"') == 2  # once per run: rank 0 reports
    tensors, hist = _same_run(cache / "one", cache / "two")
    assert len(hist["epoch"]) == 2 and any(k.startswith("opt.") for k in tensors)


def test_hybrid_resumes_under_two_processes_and_rank_0_alone_writes(cache, capfd):
    args = [*TINY, *RANDOM, "--mode", "hybrid", "--set", "model.stdp.a_plus=1e-3", "--set", "model.stdp.a_minus=5e-4"]
    assert main([*args, "--epochs", "2", "--out", str(cache / "one")]) == 0
    # the same run: epoch 1 in one process, then resumed in two (each rank gets rank 0's state)
    assert main([*args, "--epochs", "1", "--out", str(cache / "two")]) == 0
    w1 = load_checkpoint(cache / "two" / "checkpoint")[0]["w2"]
    assert main([*args, "--epochs", "2", "--out", str(cache / "two"), "--nproc-per-node", "2"]) == 0
    names = [sorted(p.name for p in (cache / d).iterdir()) for d in ("one", "two")]
    assert names[1] == names[0]  # the files of one run, nothing of another rank
    out = capfd.readouterr().out
    assert out.count('"test_accuracy"') == 3
    tensors, hist = _same_run(cache / "one", cache / "two")
    assert np.abs(tensors["w2"] - w1).max() > 1e-6  # the STDP block learned in the second epoch
    res = json.loads((cache / "two" / "results.json").read_text())
    assert res["epochs"] == 2 and res["stdp_block_idx"] == [2]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--nproc-per-node", "0"], "--nproc-per-node: must be a positive integer, got 0"),
        (
            ["--set", "run.batch_size=33", "--nproc-per-node", "2"],
            "run.batch_size = 33 cannot be split evenly between 2 processes",
        ),
    ],
)
def test_bad_process_counts_are_refused_before_any_worker_starts(cache, capsys, flags, message):
    try:
        code = main([*TINY, "--out", str(cache / "r"), *flags])
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (cache / "r").exists()
