"""Run directories hold one run; checkpoints and run records that are missing, edited or corrupt are
refused clearly; every bad input of the reliability list gets a clear error (docs/reliability.md)."""

import json
import os
import shutil

import numpy as np
import pytest
from test_scaffold import TINY as _TINY_PROTOCOL  # the same tiny Diehl & Cook protocol

from spikeforge.cli.main import main
from spikeforge.io import load_checkpoint, save_checkpoint

TINY = ["--neurons", "5", *_TINY_PROTOCOL]


def dc(*args):
    return main(["diehl-cook", *args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained, assigned and tested run (copied per test)."""
    out = tmp_path_factory.mktemp("dc") / "run"
    assert dc("run", "--out", str(out), "--no-plot", "--checkpoint-every", "5", *TINY) == 0
    return out


@pytest.fixture
def run_dir(trained, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    return out


# ------------------------------------------------------------------ one run per directory
@pytest.mark.parametrize(
    "stage, flags, needle",
    [
        ("run", ["--seed", "1"], "run.seed is 0 in the saved run, 1 now"),
        ("run", ["--train-examples", "24"], "run.train_examples is 12 in the saved run, 24 now"),
        ("train", ["--train-examples", "24"], "run.train_examples is 12 in the saved run, 24 now"),
        ("run", ["--engine", "torch"], "run.engine is 'numba' in the saved run, 'torch' now"),
        ("run", ["--data-dir", "embedded"], "run.data_dir is None in the saved run, 'embedded' now"),
        ("test", ["--rule", "postpre"], "model.stdp.kind is 'triplet' in the saved run, 'postpre' now"),
    ],
)
def test_a_setting_that_disagrees_with_the_saved_run_is_refused(run_dir, capsys, stage, flags, needle):
    before = (run_dir / "results.json").read_text()
    assert dc(stage, "--out", str(run_dir), "--quiet", *flags) == 2
    err = capsys.readouterr().err
    assert needle in err and "--out" in err and "--fresh" in err
    assert (run_dir / "results.json").read_text() == before  # nothing claimed


def test_settings_that_continue_the_run_are_accepted(run_dir, capsys):
    assert dc("train", "--out", str(run_dir), "--quiet", "--epochs", "2") == 0
    # the labels belong to the network before the second epoch: test refuses them until assign runs
    assert dc("test", "--out", str(run_dir), "--quiet", "--no-plot", "--test-examples", "5") == 2
    assert "assigned to the network after 12 training examples, which has changed since" in capsys.readouterr().err
    assert dc("assign", "--out", str(run_dir), "--quiet") == 0
    assert dc("test", "--out", str(run_dir), "--quiet", "--no-plot", "--test-examples", "5") == 0
    res = json.loads((run_dir / "results.json").read_text())
    assert res["train_examples_seen"] == 24 and res["test_examples"] == 5 and res["run"]["epochs"] == 2


def test_fewer_epochs_than_trained_and_untrained_epochs_are_refused(run_dir, capsys):
    assert dc("train", "--out", str(run_dir), "--quiet", "--epochs", "2") == 0
    assert dc("test", "--out", str(run_dir), "--quiet", "--epochs", "1") == 2
    assert "more than --epochs 1 asks for" in capsys.readouterr().err
    assert dc("test", "--out", str(run_dir), "--quiet", "--epochs", "3") == 2
    assert "has trained 24 of the 36 examples" in capsys.readouterr().err


def test_labels_from_another_count_must_be_assigned_before_testing(run_dir, capsys):
    assert dc("test", "--out", str(run_dir), "--quiet", "--label-examples", "8") == 2
    assert "assigned from 10 training examples" in capsys.readouterr().err


def test_fresh_starts_the_run_again(run_dir):
    assert dc("train", "--out", str(run_dir), "--fresh", "--seed", "3", *TINY) == 0
    _, meta = load_checkpoint(run_dir / "checkpoint")
    assert meta["run"]["seed"] == 3
    assert not (run_dir / "labels.safetensors").exists() and not (run_dir / "results.json").exists()


def test_fresh_refuses_to_empty_a_directory_that_holds_no_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert dc("train", "--out", str(tmp_path), "--fresh", *TINY) == 2
    assert "not deleting them" in capsys.readouterr().err and (tmp_path / "notes.txt").exists()


def test_a_second_command_on_a_locked_run_directory_is_refused(run_dir, capsys):
    from spikeforge.experiments.diehl_cook_config import SPEC
    from spikeforge.experiments.scaffold import RunDir

    holder = RunDir(run_dir, SPEC)
    holder.open(SPEC.schema.from_dict(holder.saved()))
    try:
        assert dc("train", "--out", str(run_dir), "--quiet") == 2
        assert "another spikeforge command is using the run directory" in capsys.readouterr().err
    finally:
        holder.close()
    assert dc("train", "--out", str(run_dir), "--quiet") == 0


def test_after_assign_the_old_test_results_are_removed(run_dir):
    assert dc("assign", "--out", str(run_dir), "--quiet", "--label-examples", "8") == 0
    res = json.loads((run_dir / "results.json").read_text())
    assert res["label_examples"] == 8
    assert "accuracy" not in res and "confusion_matrix" not in res and "run `spikeforge diehl-cook test" in res["test"]
    assert dc("test", "--out", str(run_dir), "--quiet", "--no-plot", "--label-examples", "8") == 0
    res = json.loads((run_dir / "results.json").read_text())
    assert "accuracy" in res and "test" not in res


# ------------------------------------------------------------------ checkpoints and records
def test_a_deleted_checkpoint_is_refused_not_retrained(run_dir, capsys):
    (run_dir / "checkpoint.safetensors").unlink()
    (run_dir / "checkpoint.prev.safetensors").unlink()
    assert dc("train", "--out", str(run_dir), "--quiet") == 2
    err = capsys.readouterr().err
    assert "checkpoint.safetensors, which is missing" in err and "--fresh" in err


def test_a_deleted_current_checkpoint_falls_back_to_the_previous(run_dir, capsys):
    (run_dir / "checkpoint.safetensors").unlink()
    assert dc("train", "--out", str(run_dir), "--quiet") == 0
    assert "loaded the previous checkpoint" in capsys.readouterr().err


def _edit_progress(run_dir, **changes):
    arrays, meta = load_checkpoint(run_dir / "checkpoint")
    for k, v in changes.items():
        if v is None:
            meta["progress"].pop(k)
        else:
            meta["progress"][k] = v
    for p in run_dir.glob("checkpoint*.safetensors"):
        p.unlink()
    save_checkpoint(run_dir / "checkpoint", arrays, meta)


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"index": 999}, "progress index 999 is past the end of the 12"),
        ({"examples_seen": None}, "progress field 'examples_seen' is missing"),
        ({"epoch": "one"}, "progress field 'epoch' is 'one', not a number"),
        ({"train_seconds": -1}, "progress field 'train_seconds' is -1"),
    ],
)
def test_an_edited_checkpoint_is_refused_clearly(run_dir, capsys, change, needle):
    _edit_progress(run_dir, **change)
    assert dc("train", "--out", str(run_dir), "--quiet", "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert needle in err and "--fresh" in err


def test_a_corrupt_run_record_names_the_file(run_dir, capsys):
    (run_dir / "config.json").write_text('{"experiment": "diehl-cook", "config": {')
    assert dc("test", "--out", str(run_dir), "--quiet") == 2
    err = capsys.readouterr().err
    assert str(run_dir / "config.json") in err and "is corrupt" in err and "--fresh" in err


def test_a_run_record_of_spikeforge_0_1_is_read(run_dir):
    """config.json as spikeforge 0.1.0 wrote it ({"run", "model"}, the size in run.neurons)."""
    record = json.loads((run_dir / "config.json").read_text())["config"]
    record["run"]["neurons"] = record["model"]["network"].pop("n_neurons")
    (run_dir / "config.json").write_text(json.dumps(record))
    assert dc("test", "--out", str(run_dir), "--quiet", "--no-plot") == 0


def test_tha_evaluate_on_a_diehl_cook_checkpoint_says_what_it_is(run_dir, capsys):
    assert main(["tha", "evaluate", str(run_dir / "checkpoint")]) == 2
    err = capsys.readouterr().err
    assert "is not a 'tha mnist' checkpoint" in err and "diehl-cook" in err


# ------------------------------------------------------------------ bad input
def test_a_network_larger_than_the_memory_is_refused_before_allocating(tmp_path, capsys):
    assert dc("train", "--out", str(tmp_path / "r"), "--neurons", "1000000000", "--quiet") == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GiB" in err and "choose fewer neurons" in err
    assert not (tmp_path / "r" / "config.json").exists()  # a failed command leaves no run behind


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--device", "cuda"], "--device only applies to the torch engine"),
        (["--batch-size", "4"], "--batch-size only applies to the torch engine"),
        (["--engine", "torch", "--device", "banana"], "is not a torch device"),
        (["--engine", "torch", "--device", "meta"], "runs on cpu, cuda or mps devices"),
        (["--set", "model.exc.v_thresh_mv=-70"], "v_thresh_mv = -70.0 is not above model.exc.v_rest_mv = -65.0"),
        (["--set", "model.inh.v_thresh_mv=-61"], "model.inh.v_thresh_mv = -61.0 is not above"),
    ],
)
def test_engine_device_and_threshold_mistakes_are_clear_errors(tmp_path, capsys, flags, needle):
    assert dc("train", "--out", str(tmp_path / "r"), *TINY, *flags) == 2
    assert needle in capsys.readouterr().err


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert dc("train", "--out", str(tmp_path / "r"), "--engine", "torch", "--device", "cuda", *TINY) == 2
    assert "no CUDA GPU is usable here" in capsys.readouterr().err


def test_the_torch_engine_on_a_cpu_says_how_slow_it_is(tmp_path, capsys):
    assert dc("train", "--out", str(tmp_path / "r"), "--engine", "torch", *TINY[:2], "--train-examples", "1") == 0
    assert "about 340x slower than the compiled engine" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--train-examples", "--epochs"])
def test_zero_examples_or_epochs_say_what_is_wrong(tmp_path, capsys, flag):
    with pytest.raises(SystemExit):
        dc("run", "--out", str(tmp_path / "r"), flag, "0")
    assert f"argument {flag}: must be a positive integer, got 0" in capsys.readouterr().err


def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert dc("train", "--out", str(f), *TINY) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert dc("train", "--out", str(f / "run"), *TINY) == 2
    assert f"is under {f}, which is a file" in capsys.readouterr().err


def test_out_that_is_read_only(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real_open = os.open

    def no_write(path, flags, *a, **k):  # root ignores permission bits: simulate them
        if str(path).startswith(str(ro)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", no_write)
    assert dc("train", "--out", str(ro), *TINY) == 2
    assert "is not writable" in capsys.readouterr().err


def test_data_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "mnist.tar"
    f.write_text("x")
    assert dc("train", "--out", str(tmp_path / "r"), "--data-dir", str(f), *TINY) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_event_stdp_threshold_below_rest(tmp_path, capsys):
    code = main(["event-stdp", "run", "--out", str(tmp_path), "--set", "layer.excitatory.v_thresh_mv=-1"])
    assert code == 2
    assert "layer.excitatory.v_thresh_mv = -1.0 is not above" in capsys.readouterr().err


def test_run_prints_what_to_expect_and_the_files(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SPIKEFORGE_DATA", raising=False)
    assert dc("run", "--out", str(tmp_path / "r"), "--no-plot", *TINY) == 0
    out = capsys.readouterr().out
    assert "What to expect" in out and "embedded MNIST subset" in out and "README" in out
    assert "files in" in out and "results.json" in out and "checkpoint.safetensors" in out
    from spikeforge.cli.diehl_cook import expectation
    from spikeforge.experiments.diehl_cook_config import SPEC

    default = SPEC.default_config()
    assert "about 30 %" in expectation(default.run, default.model.network.n_neurons)
    released = default.run.replace(profile="released")
    assert "about 64 %" in expectation(released, default.model.network.n_neurons)


def test_weights_are_bit_identical_after_a_resumed_copy(run_dir, trained):
    """(sanity) the copied fixture holds the same network as the original."""
    a, _ = load_checkpoint(trained / "checkpoint")
    b, _ = load_checkpoint(run_dir / "checkpoint")
    assert np.array_equal(a["weights"], b["weights"])


def test_temporary_files_of_a_killed_command_are_removed_by_the_next(run_dir):
    (run_dir / ".checkpoint.safetensors.1a2b3c4d.tmp").write_bytes(b"half")
    (run_dir / "sub").mkdir()
    (run_dir / "sub" / ".last.safetensors.00ff00ff.tmp").write_bytes(b"half")
    assert dc("test", "--out", str(run_dir), "--quiet", "--no-plot") == 0
    assert not list(run_dir.rglob("*.tmp"))


def test_a_run_saved_before_a_setting_existed_is_not_refused_for_it(run_dir):
    record = json.loads((run_dir / "config.json").read_text())
    del record["config"]["model"]["exc"]["clamp_ms"]  # as if the setting were added later
    (run_dir / "config.json").write_text(json.dumps(record))
    assert dc("test", "--out", str(run_dir), "--quiet", "--no-plot") == 0
