"""``spikeforge tha fmnist``, ``tha dvs-gesture`` and ``tha shd`` on tiny files in each data set's
real format (no download): one epoch through the CLI, frames against hand-binned events, the
networks against their per-step loops, and clear errors for missing folders and wrong shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tha_data_files import dvs_events, shd_examples, write_dvs_gesture, write_fmnist, write_shd, write_shd_file

from spikeforge.cli.main import main
from spikeforge.config import ConfigError
from spikeforge.data.events import EventSet, bin_events, read_dvs_gesture, read_shd
from spikeforge.data.fmnist import load_fmnist
from spikeforge.data.mnist import DataError

TINY = {
    "fmnist": ["--val-size", "16", "--num-steps", "3", "--batch-size", "16"],
    "shd": ["--val-size", "8", "--num-steps", "20", "--batch-size", "16", "--set", "model.num_hidden=40"],
    "dvs-gesture": ["--val-size", "6", "--num-steps", "4", "--test-num-steps", "6", "--batch-size", "8"],
}
WRITERS = {"fmnist": write_fmnist, "shd": write_shd, "dvs-gesture": write_dvs_gesture}


def _run(command, data, out, *extra):
    args = ["tha", command, "--data-dir", str(data), "--out", str(out), "--epochs", "1", "--quiet", *TINY[command]]
    return main([*args, *extra])


@pytest.mark.parametrize(
    "command, n_train, n_val, n_test, iterations, alpha, first_final",
    [
        ("fmnist", 32, 16, 16, 2, 0.0368, 14.0456),
        ("shd", 32, 8, 12, 2, 2.78e-5, 45.271),
        ("dvs-gesture", 16, 6, 11, 2, 0.00333, 12.1565),
    ],
)
def test_one_epoch_on_tiny_files_in_the_real_format(
    tmp_path, command, n_train, n_val, n_test, iterations, alpha, first_final
):
    data = WRITERS[command](tmp_path / "data")
    out = tmp_path / "run"
    assert _run(command, data, out) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["experiment"] == f"tha {command}" and res["binarize"] is True and res["anneal"] is True
    t = res["trials"][0]
    assert t["iterations"] == iterations and t["epochs_done"] == 1 and t["finished"]
    assert 0.0 <= t["final_test_acc"] <= 1.0
    theta0 = res["config"]["model"]["thresholds"][0]
    expect = first_final - (first_final - theta0) * (1 - alpha) ** iterations
    assert t["final_thresholds"][0] == pytest.approx(expect, rel=1e-5)
    for f in ("loss.png", "accuracy.png", "thresholds.png", "last.safetensors", "best.safetensors"):
        assert (out / "trial0" / f).is_file(), f
    # the stored checkpoint scores the same test accuracy, with the split sizes the run used
    assert main(["tha", "evaluate", str(out / "trial0" / "last")]) == 0


def test_evaluate_reads_the_data_again_and_reports_split_sizes(tmp_path, capsys):
    data = write_shd(tmp_path / "data")
    out = tmp_path / "run"
    assert _run("shd", data, out) == 0
    t = json.loads((out / "results.json").read_text())["trials"][0]
    capsys.readouterr()
    assert main(["tha", "evaluate", str(out / "trial0" / "last")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["experiment"] == "tha shd" and res["test_size"] == 12 and res["val_size"] == 8
    assert res["test_acc"] == pytest.approx(t["final_test_acc"])


def test_published_defaults_per_dataset(tmp_path, capsys):
    import tomllib

    def cfg(command):
        assert main(["tha", command, "--out", str(tmp_path / command), "--show-config"]) == 0
        return tomllib.loads(capsys.readouterr().out)

    f, d, s = cfg("fmnist"), cfg("dvs-gesture"), cfg("shd")
    assert (f["train"]["optimizer"], f["train"]["lr"], f["train"]["momentum"], f["model"]["beta"]) == (
        "sgd",
        8.4e-4,
        0.855,
        0.868,
    )
    assert (d["train"]["batch_size"], d["train"]["grad_clip"], d["data"]["test_num_steps"]) == (8, 1.0, 360)
    assert (s["train"]["weight_clip"], s["run"]["epochs"], s["model"]["num_hidden"]) == (True, 5, 3000)
    assert s["anneal"]["theta_final"] == pytest.approx([13.504 + 31.767, 11.20 + 39.92])


def test_shd_in_two_processes_trains_what_one_process_trains(tmp_path):
    """Data parallel (``--nproc-per-node 2``, gloo): each rank bins and trains half of every batch,
    with its rows of the whole batch's dropout masks; float64, so no membrane rounds differently."""
    from test_tha_distributed import _cli

    from spikeforge.experiments.tha import load_tensors

    data = write_shd(tmp_path / "data")
    same = ["--set", 'run.dtype="float64"', "--set", "model.thresholds=[1.0, 1.0]", "--set", "model.dropout1=0.3"]
    assert _run("shd", data, tmp_path / "one", *same) == 0
    args = ["tha", "shd", "--data-dir", str(data), "--out", str(tmp_path / "two"), "--epochs", "1", "--quiet"]
    r = _cli(*args, *TINY["shd"], *same, "--nproc-per-node", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    a, meta_a = load_tensors(tmp_path / "one" / "trial0" / "last")
    b, meta_b = load_tensors(tmp_path / "two" / "trial0" / "last")
    assert meta_a["state"]["global_step"] == meta_b["state"]["global_step"] == 2
    for k, v in a.items():
        if k.startswith("model.") and v.is_floating_point():
            torch.testing.assert_close(b[k], v, rtol=1e-9, atol=1e-12, msg=k)
    assert meta_b["state"]["hist"]["loss"] == pytest.approx(meta_a["state"]["hist"]["loss"], rel=1e-9)


# ------------------------------------------------------------------ frames
def test_dvs_frame_matches_hand_binned_events(tmp_path):
    folder = tmp_path / "ibmGestureTrain" / "user01_led"
    folder.mkdir(parents=True)
    # x, y, p, t (ms); the window starts at the first event (t = 2000 ms); bins of 5 ms, 4x4 pixel cells
    events = [(0, 0, 1, 2000.0), (3, 3, 1, 2004.9), (4, 0, 0, 2005.0), (127, 126, 1, 2011.0), (5, 9, 0, 2099.0)]
    np.save(folder / "7.npy", np.asarray(events, dtype=np.float64))
    source, labels = read_dvs_gesture(tmp_path, "train")
    frames = EventSet(source, labels, (2, 32, 32), 3, 5000).frames()
    hand = np.zeros((1, 3, 2, 32, 32), dtype=np.float32)
    hand[0, 0, 1, 0, 0] = 2  # the first two events share cell (0, 0) and bin 0
    hand[0, 1, 0, 0, 1] = 1  # x = 4 -> column 1, t = 5 ms -> bin 1
    hand[0, 2, 1, 31, 31] = 1
    # (5, 9) at 99 ms falls after the 3 bins and is dropped
    assert labels.tolist() == [7] and torch.equal(frames, torch.from_numpy(hand))


def test_shd_frames_match_hand_binned_events(tmp_path):
    times = [np.array([0.0, 0.0029, 0.0031, 0.5], np.float32), np.array([0.001], np.float32)]
    units = [np.array([5, 5, 699, 3], np.uint16), np.array([0], np.uint16)]
    write_shd_file(tmp_path / "shd_train.h5", times, units, [3, 19])
    source, labels = read_shd(tmp_path, "train")
    frames = EventSet(source, labels, (700,), 4, 3000).frames()
    assert frames.shape == (2, 4, 700) and labels.tolist() == [3, 19]
    assert frames[0, 0, 5] == 2 and frames[0, 1, 699] == 1 and frames[1, 0, 0] == 1 and frames.sum() == 4
    assert np.array_equal(bin_events([0, 2999, 3000], [1, 1, 2], 2, 3000, 3), [[0, 2, 0], [0, 0, 1]])


def test_event_nets_compute_the_per_step_loop():
    from spikeforge.models.tha_event_nets import THADVSGestureNet, THASHDNet

    torch.manual_seed(0)
    for net, x in (
        (THADVSGestureNet(dropout=0.0, thresholds=(1.0, 1.0, 1.0)), torch.rand(2, 5, 2, 32, 32).lt(0.3).double() * 2),
        (THASHDNet(dropout1=0.0, dropout2=0.0, thresholds=(2.0, 2.0), num_hidden=64), torch.rand(2, 6, 700).lt(0.1)),
    ):
        net = net.double()
        (s, u), (s_ref, u_ref) = net(x.double()), net.forward_reference(x.double())
        assert s.sum() > 0 and torch.equal(s, s_ref) and torch.allclose(u, u_ref, atol=1e-10)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "command, names",
    [
        ("fmnist", ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
        ("shd", ["shd_train.h5", "shd_test.h5", "spikes/times", "spikes/units", "labels"]),
        ("dvs-gesture", ["ibmGestureTrain", "ibmGestureTest", "userNN_<lighting>/<label>.npy", "x, y, p, t"]),
    ],
)
def test_a_missing_folder_names_the_expected_files(tmp_path, capsys, command, names):
    assert _run(command, tmp_path / "nowhere", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nowhere") in err and all(n in err for n in names), err


def test_fmnist_images_of_the_wrong_shape(tmp_path):
    from spikeforge.data import write_idx

    write_fmnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((48, 27, 27), np.uint8))
    with pytest.raises(DataError, match="must be 28 x 28"):
        load_fmnist(tmp_path, "train")
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(48, np.uint8))
    with pytest.raises(DataError, match=r"expected uint8 images of shape \[n, rows, cols\]") as err:
        load_fmnist(tmp_path, "train")
    assert "Fashion-MNIST file" in str(err.value) and "spikeforge data download" not in str(err.value)


def test_shd_files_of_the_wrong_shape(tmp_path):
    times, units, labels = shd_examples(3, 0)
    write_shd_file(tmp_path / "a" / "shd_train.h5", times, [u[:-1] for u in units], labels)
    with pytest.raises(DataError, match="example 0 has spikes/times of shape"):
        read_shd(tmp_path / "a", "train")
    write_shd_file(tmp_path / "b" / "shd_train.h5", times, units, labels[:2])
    with pytest.raises(DataError, match="one entry per example"):
        read_shd(tmp_path / "b", "train")
    units[1][0] = 700
    write_shd_file(tmp_path / "c" / "shd_train.h5", times, units, labels)
    with pytest.raises(DataError, match="channel 700, outside 0-699"):
        read_shd(tmp_path / "c", "train")
    import h5py

    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["labels"] = np.zeros(2)
    (tmp_path / "d").mkdir()
    (tmp_path / "d.h5").rename(tmp_path / "d" / "shd_train.h5")
    with pytest.raises(DataError, match="lacks the dataset"):
        read_shd(tmp_path / "d", "train")


def test_dvs_files_of_the_wrong_shape(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "ibmGestureTrain" / "user01_led"
    folder.mkdir(parents=True)
    np.save(folder / "2.npy", dvs_events(rng, 10)[:, :3])
    with pytest.raises(DataError, match=r"N x 4 array .* found shape \(10, 3\)"):
        read_dvs_gesture(tmp_path, "train")
    np.save(folder / "2.npy", dvs_events(rng, 10))
    np.save(folder / "11.npy", dvs_events(rng, 10))
    with pytest.raises(DataError, match="the file name must be the label, 0-10"):
        read_dvs_gesture(tmp_path, "train")
    (folder / "11.npy").unlink()
    bad = dvs_events(rng, 10)
    bad[3, 0] = 128
    np.save(folder / "2.npy", bad)
    source, labels = read_dvs_gesture(tmp_path, "train")
    with pytest.raises(DataError, match="x, y in 0-127"):
        EventSet(source, labels, (2, 32, 32), 20, 5000).frames()  # 100 ms: the whole recording
    bad[3, 0], bad[5, 3] = 7, bad[1, 3]  # an event earlier than the one before it
    np.save(folder / "2.npy", bad)
    with pytest.raises(DataError, match="must be in time order"):
        EventSet(source, labels, (2, 32, 32), 20, 5000).frames()


def test_frames_that_do_not_fit_the_network_are_refused(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["tha", "dvs-gesture", "--out", out, "--set", "data.downsample=2", "--show-config"]) == 2
    assert "set model.input_size = 64" in capsys.readouterr().err
    assert main(["tha", "shd", "--out", out, "--set", "data.num_channels=10", "--show-config"]) == 2
    assert "model.num_inputs = 700 differs from data.num_channels = 10" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"expects input \[B, T, 700\]"):
        from spikeforge.models.tha_event_nets import THASHDNet

        THASHDNet(num_hidden=4)(torch.zeros(1, 3, 10))
