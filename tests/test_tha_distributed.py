"""Data-parallel ``tha mnist`` (``--nproc-per-node``): two gloo processes on halves of each batch
train the network one process trains on the whole batch (float64, so that no membrane rounds
across its threshold differently: float32 runs agree per step to rounding, then part ways)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from spikeforge.cli.main import main
from spikeforge.experiments.tha import load_tensors

TINY = [
    "tha",
    "mnist",
    "--data-dir",
    "embedded",
    "--train-limit",
    "313",  # 281 training images: batches of 128, 128 and 25 (split 13 + 12: uneven shards, weighted losses)
    "--val-size",
    "32",
    "--test-limit",
    "40",
    "--num-steps",
    "6",
    "--batch-size",
    "128",
    "--quiet",
    "--set",
    "model.channels1=2",
    "--set",
    "model.channels2=4",
    "--set",
    "model.thresholds=[2.0, 2.0, 0.5]",  # low: many spikes, so that every layer learns
    "--set",
    "model.dropout=0.2",
    "--set",
    'run.dtype="float64"',
    "--set",
    "run.log_every=1",
]


def _cli(*args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    return subprocess.run(
        [sys.executable, "-m", "spikeforge.cli.main", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_two_processes_resume_and_train_what_one_process_trains(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*TINY, "--out", str(one), "--epochs", "2"]) == 0
    # the same run: epoch 1 in one process, then resumed in two (each rank gets rank 0's state)
    assert main([*TINY, "--out", str(two), "--epochs", "1"]) == 0
    r = _cli(*TINY, "--out", str(two), "--epochs", "2", "--nproc-per-node", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("results in") == 1  # rank 0 reports, once
    a, meta_a = load_tensors(one / "trial0" / "last")
    b, meta_b = load_tensors(two / "trial0" / "last")
    assert meta_b["state"]["global_step"] == meta_a["state"]["global_step"] == 6
    for k, v in a.items():
        if k.startswith("model.") and v.is_floating_point():
            torch.testing.assert_close(b[k], v, rtol=1e-9, atol=1e-12, msg=k)
    # annealed thresholds (6 steps of the schedule), batch-norm statistics included above
    assert meta_b["thresholds"] == pytest.approx(meta_a["thresholds"], rel=1e-12)
    assert float(b["model.lif1.threshold"]) == pytest.approx(15.983 - (15.983 - 2.0) * (1 - 0.024) ** 6, rel=1e-9)
    assert meta_b["state"]["hist"]["loss"] == pytest.approx(meta_a["state"]["hist"]["loss"], rel=1e-9)
    res_a = json.loads((one / "results.json").read_text())["trials"][0]
    res_b = json.loads((two / "results.json").read_text())["trials"][0]
    for key in ("best_val_acc", "final_test_acc", "iterations", "epochs_done"):
        assert res_b[key] == res_a[key], key


def test_nproc_per_node_and_batch_size_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*TINY, "--out", str(tmp_path / "r"), "--nproc-per-node", "0"])
    assert exc.value.code == 2
    assert "--nproc-per-node: must be a positive integer, got 0" in capsys.readouterr().err
    # refused before any worker starts
    assert main([*TINY, "--out", str(tmp_path / "r"), "--batch-size", "33", "--nproc-per-node", "2"]) == 2
    err = capsys.readouterr().err
    assert "train.batch_size = 33 cannot be split evenly between 2 processes" in err and "e.g. 32" in err
    assert not (tmp_path / "r").exists()
    if not torch.cuda.is_available():
        assert main([*TINY, "--out", str(tmp_path / "r"), "--device", "cuda", "--nproc-per-node", "2"]) == 2
        assert "--device cuda: no CUDA GPU is usable here" in capsys.readouterr().err
        assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (NCCL)")
def test_two_gpus_nccl(tmp_path):  # pragma: no cover - no GPU on CI
    r = _cli(*TINY, "--out", str(tmp_path / "g"), "--epochs", "1", "--device", "cuda", "--nproc-per-node", "2")
    assert r.returncode == 0, r.stderr[-3000:]


def test_ctrl_c_stops_every_rank_at_one_iteration_and_the_run_resumes(tmp_path):
    import signal
    import time

    out = tmp_path / "int"
    # 20 iterations per epoch (2592 - 32 = 2560 images), so that the signal most likely lands in one
    args = [*TINY, "--out", str(out), "--train-limit", "2592", "--set", "run.checkpoint_every=1"]
    args += ["--set", 'run.dtype="float32"']
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "spikeforge.cli.main", *args, "--epochs", "500", "--nproc-per-node", "2"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    p = subprocess.Popen(cmd, **pipes, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (out / "trial0" / "last.safetensors").is_file() and time.time() < deadline and p.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C in a terminal: the launcher and both workers get it
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, err[-3000:]
    assert "interrupted; run the same command again to resume" in err
    _, meta = load_tensors(out / "trial0" / "last")
    st = meta["state"]
    assert 0 < st["global_step"] == 20 * st["epoch"] + st["batch"]  # saved after a whole iteration
    assert meta["thresholds"][0] == pytest.approx(15.983 - (15.983 - 2.0) * (1 - 0.024) ** st["global_step"])
    # the same run continues in one process
    assert main([*args, "--epochs", str(st["epoch"] + 1)]) == 0
    res = json.loads((out / "results.json").read_text())["trials"][0]
    assert res["iterations"] == 20 * (st["epoch"] + 1) and res["finished"]
