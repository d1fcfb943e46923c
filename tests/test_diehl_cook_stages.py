"""The frozen stages (labelling, testing) of a Diehl & Cook run resume exactly: a stage interrupted
by a real SIGTERM (or killed after a stage checkpoint) and run again gives, bit for bit, what an
uninterrupted stage gives; a stage checkpoint of another network or other settings is discarded."""

import json
import os
import shutil
import signal

import numpy as np
import pytest
from test_diehl_cook_cli import TINY as CLI_TINY  # --neurons 6 --train-examples 30 ... --quiet

from spikeforge.cli.main import main
from spikeforge.config import ConfigError
from spikeforge.experiments.diehl_cook import Experiment
from spikeforge.experiments.scaffold import DeferredInterrupts, InterruptedAtBoundary, RunDir
from spikeforge.io.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

ARGS = dict(neurons=6, train_examples=20, label_examples=24, test_examples=16, checkpoint_every=5)
OVER = ["model.protocol.example_ms=100", "model.protocol.rest_ms=20"]


class _KillAt(DeferredInterrupts):
    """Real interrupts; at the ``at``-th example boundary of the ``target``-th stage the process
    sends itself SIGTERM (as ``kill`` would), and the stage must stop there."""

    entered = 0

    def __init__(self, target: int, at: int):
        super().__init__()
        _KillAt.entered += 1
        self.armed = _KillAt.entered == target
        self.left = at

    def check(self) -> None:
        self.left -= 1
        if self.armed and self.left == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler installed by __enter__ takes it
        super().check()


def _kill_at(monkeypatch, target: int, at: int) -> None:
    """Interrupt the ``target``-th interruptible loop from now on (1 = the next one)."""
    _KillAt.entered = 0
    monkeypatch.setattr(RunDir, "interrupts", lambda self: _KillAt(target, at))


def _open(out, **args):
    return Experiment.from_sources(out, None, OVER, ARGS | args, quiet=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained network with its labels (copied per test)."""
    out = tmp_path_factory.mktemp("stages") / "run"
    exp = _open(out)
    with exp.rd:
        exp.train()
        exp.assign()
    return out


def _copy(trained, tmp_path, name):
    shutil.copytree(trained, tmp_path / name)
    return tmp_path / name


def _labels(out):
    arrays, _ = load_checkpoint(out / "labels")
    return arrays["assignments"], arrays["class_mean_counts"]


def _log(out):
    return (out / "train.log").read_text()


def _labelling_stopped_at(trained, tmp_path, monkeypatch, at: int = 7):
    """A copy of ``trained`` whose assign was stopped by SIGTERM at example ``at``."""
    cut = _copy(trained, tmp_path, "cut")
    _kill_at(monkeypatch, 1, at)
    exp = _open(cut)
    with exp.rd, pytest.raises(InterruptedAtBoundary):
        exp.assign()
    monkeypatch.undo()
    return cut


def test_interrupted_labelling_resumes_to_the_same_assignments(trained, tmp_path, monkeypatch):
    full = _copy(trained, tmp_path, "full")
    exp = _open(full)
    with exp.rd:
        exp.assign()
    want = _labels(full)

    cut = _labelling_stopped_at(trained, tmp_path, monkeypatch)  # after a stage checkpoint (5), before 10
    _, meta = load_checkpoint(cut / "label_stage")
    assert meta["stage"] == "labelling" and meta["next"] == 7 and meta["examples"] == 24
    exp = _open(cut)  # as the same command run again
    with exp.rd:
        info = exp.assign()
    got = _labels(cut)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[1].sum() > 0  # the network responds: the comparison means something
    assert info["label_examples"] == 24
    assert "resuming labelling at example 7 of 24" in _log(cut)
    assert not (cut / "label_stage.safetensors").exists() and not (cut / "label_stage.prev.safetensors").exists()


@pytest.mark.parametrize("how", ["SIGTERM", "kill -9 after a stage checkpoint"])
def test_interrupted_test_resumes_to_the_same_predictions(trained, tmp_path, monkeypatch, how):
    full = _copy(trained, tmp_path, "full")
    exp = _open(full)
    with exp.rd:
        want = exp.test()

    cut = _copy(trained, tmp_path, "cut")
    if how == "SIGTERM":
        _kill_at(monkeypatch, 1, 12)
        exp = _open(cut)
        with exp.rd, pytest.raises(InterruptedAtBoundary):
            exp.test()
        monkeypatch.undo()
        resumed_at = 12
    else:  # a copy of the run directory as the stage checkpoint at example 10 left it
        original = RunDir.save_checkpoint

        def spy(self, name, tensors, meta, **kw):
            original(self, name, tensors, meta, **kw)
            if name == "test_stage" and meta["next"] == 10:
                shutil.copytree(self.path, tmp_path / "killed")

        monkeypatch.setattr(RunDir, "save_checkpoint", spy)
        exp = _open(cut)
        with exp.rd:
            exp.test()
        monkeypatch.undo()
        cut, resumed_at = tmp_path / "killed", 10
    exp = _open(cut)
    with exp.rd:
        got = exp.test()
        exp.write_results(got)
    for key in ("accuracy", "confusion_matrix", "mean_test_spikes", "test_mean_attempts", "test_examples"):
        assert got[key] == want[key], key
    assert want["mean_test_spikes"] > 0
    assert f"resuming testing at example {resumed_at} of 16" in _log(cut)
    assert not (cut / "test_stage.safetensors").exists()  # removed once results.json holds the results
    assert json.loads((cut / "results.json").read_text())["accuracy"] == want["accuracy"]


def test_a_stage_checkpoint_of_an_older_network_is_discarded(trained, tmp_path, monkeypatch):
    cut = _labelling_stopped_at(trained, tmp_path, monkeypatch)
    exp = _open(cut, epochs=2)  # the network trains on: the interrupted labelling is stale
    with exp.rd:
        exp.train()
        exp.assign()
    assert "discarding the stale labelling checkpoint" in _log(cut)
    assert "after 20 training examples, which has changed since (now 40 examples)" in _log(cut)
    assert "resuming labelling" not in _log(cut)
    got = _labels(cut)
    exp = _open(cut, epochs=2)
    with exp.rd:
        exp.assign()  # from example 0, no stage checkpoint
    want = _labels(cut)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    # labels of the older network are refused by the test stage, not used
    old = _copy(trained, tmp_path, "old")
    exp = _open(old, epochs=2)
    with exp.rd:
        exp.train()
        with pytest.raises(ConfigError, match="labels .* were assigned to the network after 20 training examples"):
            exp.test()


def test_a_stage_checkpoint_with_other_settings_is_discarded(trained, tmp_path, monkeypatch):
    cut = _labelling_stopped_at(trained, tmp_path, monkeypatch)
    exp = _open(cut, label_examples=20)
    with exp.rd:
        exp.assign()
    assert "other settings (examples was 24, now 20)" in _log(cut)
    assert "resuming labelling" not in _log(cut)


#: the Diehl & Cook command test's tiny run, with 20 label and 12 test examples, a stage checkpoint every 4
TINY = [*CLI_TINY[:6], "--test-examples", "12", *CLI_TINY[8:], "--checkpoint-every", "4", "--no-plot"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "full"
    assert main(["diehl-cook", "run", "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.parametrize("stage, target, at", [("labelling", 2, 7), ("testing", 3, 5)])
def test_the_run_command_resumed_mid_stage_gives_the_same_results(
    uninterrupted, tmp_path, monkeypatch, stage, target, at
):
    out = tmp_path / "cut"
    _kill_at(monkeypatch, target, at)  # loops: 1 training, 2 labelling, 3 testing
    assert main(["diehl-cook", "run", "--out", str(out), *TINY]) == 130
    assert not (out / "results.json").exists() or "accuracy" not in json.loads((out / "results.json").read_text())
    monkeypatch.undo()
    assert main(["diehl-cook", "run", "--out", str(out), *TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    want = json.loads((uninterrupted / "results.json").read_text())
    for key in ("accuracy", "confusion_matrix", "mean_test_spikes", "unassigned_neurons", "train_examples_seen"):
        assert res[key] == want[key], key
    for a, b in zip(_labels(out), _labels(uninterrupted)):
        assert np.array_equal(a, b)
    log = _log(out)
    assert f"resuming {stage} at example {at} of {20 if stage == 'labelling' else 12}" in log
    if stage == "testing":  # the labels of the first command were kept, not assigned again
        assert log.count("labelling: 20 examples") == 1
    assert not list(out.glob("*_stage*"))
