import json
import os
import stat

import numpy as np
import pytest
import torch

from spikeforge.config import ConfigError
from spikeforge.io import (
    CheckpointError,
    atomic_write_json,
    atomic_write_text,
    check_shapes,
    checkpoint_exists,
    checkpoint_paths,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_round_trip_numpy_and_torch(tmp_path):
    w = np.random.default_rng(0).random((784, 7)).astype(np.float32)
    theta = torch.linspace(0, 1, 7, dtype=torch.float64)
    tensors = {
        "w": w,
        "theta": theta,
        "step": np.array(12, dtype=np.int64),
        "mask": np.array([True, False]),
        "wt": w.T,
    }  # non-contiguous view
    meta = {"config": {"n_neurons": 7}, "examples_seen": np.int64(1200), "name": "a"}
    paths = save_checkpoint(tmp_path / "run" / "ckpt", tensors, meta)
    assert paths.tensors == tmp_path / "run" / "ckpt.safetensors"
    assert paths.tensors.is_file() and not paths.meta.exists()  # one file: arrays and metadata
    arrays, meta2 = load_checkpoint(tmp_path / "run" / "ckpt")
    assert set(arrays) == set(tensors)
    np.testing.assert_array_equal(arrays["w"], w)
    assert arrays["w"].dtype == np.float32
    np.testing.assert_array_equal(arrays["theta"], theta.numpy())
    np.testing.assert_array_equal(arrays["wt"], w.T)
    assert arrays["step"].shape == () and int(arrays["step"]) == 12
    assert arrays["mask"].dtype == np.bool_
    assert meta2 == {"config": {"n_neurons": 7}, "examples_seen": 1200, "name": "a"}
    info = read_checkpoint_info(paths.tensors)
    assert {"spikeforge", "torch", "numpy", "python"} <= set(info["versions"])
    assert info["created_utc"].endswith("+00:00")
    assert info["tensors"]["w"] == {"dtype": "float32", "shape": [784, 7]}
    assert _leftovers(tmp_path / "run") == []


def test_directory_and_suffix_forms(tmp_path):
    save_checkpoint(tmp_path, {"a": np.ones(3)}, {})
    assert (tmp_path / "checkpoint.safetensors").is_file()
    assert checkpoint_exists(tmp_path)
    a, _ = load_checkpoint(tmp_path / "checkpoint.json")
    assert a["a"].tolist() == [1, 1, 1]
    assert checkpoint_paths(tmp_path / "x.safetensors").meta == tmp_path / "x.json"


def test_overwrite_is_atomic_keeps_the_previous_and_leaves_no_temp_files(tmp_path):
    prefix = tmp_path / "c"
    save_checkpoint(prefix, {"a": np.zeros(4)}, {"step": 1})
    save_checkpoint(prefix, {"a": np.ones(4)}, {"step": 2})
    arrays, meta = load_checkpoint(prefix)
    assert meta["step"] == 2 and arrays["a"].sum() == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.prev.safetensors", "c.safetensors"]
    _, prev = load_checkpoint(tmp_path / "c.prev")
    assert prev["step"] == 1


def test_failed_save_keeps_old_checkpoint(tmp_path):
    prefix = tmp_path / "c"
    save_checkpoint(prefix, {"a": np.zeros(4)}, {"step": 1})
    with pytest.raises(ConfigError, match="JSON"):
        save_checkpoint(prefix, {"a": np.ones(4)}, {"bad": object()})
    with pytest.raises(CheckpointError, match="dtype"):
        save_checkpoint(prefix, {"a": np.array(["x"])}, {})
    arrays, meta = load_checkpoint(prefix)
    assert meta == {"step": 1} and arrays["a"].sum() == 0
    assert _leftovers(tmp_path) == []


def test_a_full_disk_during_a_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    prefix = tmp_path / "c"
    save_checkpoint(prefix, {"a": np.zeros(4)}, {"step": 1})

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(prefix, {"a": np.ones(4)}, {"step": 2})
    monkeypatch.undo()
    arrays, meta = load_checkpoint(prefix)
    assert meta == {"step": 1} and arrays["a"].sum() == 0
    assert _leftovers(tmp_path) == []


def test_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope")


def test_a_corrupt_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path):
    from spikeforge.io import CheckpointFallbackWarning

    paths = save_checkpoint(tmp_path / "c", {"a": np.arange(100.0)}, {"step": 1})
    save_checkpoint(tmp_path / "c", {"a": np.arange(100.0) + 1}, {"step": 2})
    data = bytearray(paths.tensors.read_bytes())
    data[-8] ^= 0xFF  # flip bits inside the array payload: the checksum notices
    paths.tensors.write_bytes(bytes(data))
    with pytest.warns(CheckpointFallbackWarning, match="SHA-256"):
        arrays, meta = load_checkpoint(tmp_path / "c")
    assert meta["step"] == 1 and arrays["a"][0] == 0
    paths.tensors.write_bytes(bytes(data[:20]))  # truncated
    with pytest.warns(CheckpointFallbackWarning, match="corrupt"):
        assert load_checkpoint(tmp_path / "c")[1]["step"] == 1
    paths.tensors.unlink()  # deleted
    with pytest.warns(CheckpointFallbackWarning, match="does not exist"):
        assert load_checkpoint(tmp_path / "c")[1]["step"] == 1
    # a save over a corrupt current file keeps the sound previous one
    paths.tensors.write_bytes(bytes(data))
    save_checkpoint(tmp_path / "c", {"a": np.zeros(1)}, {"step": 3})
    assert load_checkpoint(tmp_path / "c.prev")[1]["step"] == 1
    paths.previous.unlink()
    paths.tensors.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path / "c")


def _write_format_1(prefix, arrays, meta):
    """A checkpoint as spikeforge 0.1.0 wrote it: arrays file + JSON sidecar."""
    import hashlib

    from safetensors.numpy import save

    data = save(arrays, metadata={"format": "spikeforge-checkpoint"})
    prefix.with_suffix(".safetensors").write_bytes(data)
    record = {
        "meta": meta,
        "checkpoint": {
            "format": "spikeforge-checkpoint",
            "format_version": 1,
            "tensors_sha256": hashlib.sha256(data).hexdigest(),
        },
    }
    prefix.with_suffix(".json").write_text(json.dumps(record))


def test_format_1_checkpoints_are_still_read_and_replaced_on_save(tmp_path):
    _write_format_1(tmp_path / "c", {"a": np.arange(3.0)}, {"step": 7})
    arrays, meta = load_checkpoint(tmp_path / "c")
    assert meta == {"step": 7} and arrays["a"].tolist() == [0, 1, 2]
    save_checkpoint(tmp_path / "c", {"a": np.zeros(2)}, {"step": 8})
    assert not (tmp_path / "c.json").exists() and load_checkpoint(tmp_path / "c")[1]["step"] == 8
    assert load_checkpoint(tmp_path / "c.prev")[1]["step"] == 7  # kept, now in one file


def test_format_1_corrupt_or_missing_metadata(tmp_path):
    _write_format_1(tmp_path / "c", {"a": np.zeros(2)}, {})
    (tmp_path / "c.json").write_text('{"meta": {', encoding="utf-8")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "c.json").write_text('{"meta": {}}', encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a spikeforge checkpoint"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "c.json").unlink()
    with pytest.raises(CheckpointError, match="metadata .* does not exist"):
        load_checkpoint(tmp_path / "c")


def test_check_shapes_names_both_shapes(tmp_path):
    arrays = {"w": np.zeros((784, 400))}
    check_shapes(arrays, {"w": (784, 400)})
    with pytest.raises(CheckpointError, match=r"\(784, 400\).*\(784, 1600\)"):
        check_shapes(arrays, {"w": (784, 1600)}, source="run/ckpt")
    with pytest.raises(CheckpointError, match="no array 'theta'"):
        check_shapes(arrays, {"theta": (400,)})


def test_atomic_text_and_json(tmp_path):
    p = atomic_write_text(tmp_path / "sub" / "r.txt", "hello\n")
    assert p.read_text() == "hello\n"
    q = atomic_write_json(
        tmp_path / "r.json", {"acc": np.float32(0.5), "n": np.int64(3), "path": tmp_path, "arr": np.arange(3)}
    )
    assert json.loads(q.read_text()) == {"acc": 0.5, "n": 3, "path": str(tmp_path), "arr": [0, 1, 2]}
    with pytest.raises(ConfigError, match="NaN"):
        atomic_write_json(tmp_path / "r.json", {"acc": float("nan")})
    assert json.loads(q.read_text())["n"] == 3  # the failed write left the old file
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_files_get_normal_permissions(tmp_path):
    p = atomic_write_text(tmp_path / "r.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
