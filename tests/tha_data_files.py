"""Tiny files in the real on-disk formats of Fashion-MNIST (gzipped IDX), SHD (HDF5 with
variable-length spikes/times, spikes/units, labels) and DVS128 Gesture (tonic's
ibmGestureTrain/userNN_<lighting>/<label>.npy, N x 4 arrays x, y, p, t in ms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.data import write_idx


def write_fmnist(folder: Path, n_train: int = 48, n_test: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return folder


def shd_examples(n: int, seed: int, channels: int = 700, classes: int = 20):
    rng = np.random.default_rng(seed)
    times, units = [], []
    for _ in range(n):
        k = int(rng.integers(5, 60))
        times.append(np.sort(rng.uniform(0.0, 0.08, k)).astype(np.float32))
        units.append(rng.integers(0, channels, k).astype(np.uint16))
    return times, units, (np.arange(n) % classes).astype(np.uint16)


def write_shd_file(path: Path, times, units, labels) -> Path:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        obj_t = np.empty(len(times), dtype=object)
        obj_t[:] = list(times)
        obj_u = np.empty(len(units), dtype=object)
        obj_u[:] = list(units)
        f.create_dataset("spikes/times", data=obj_t, dtype=h5py.vlen_dtype(np.float32))
        f.create_dataset("spikes/units", data=obj_u, dtype=h5py.vlen_dtype(np.uint16))
        f.create_dataset("labels", data=np.asarray(labels))
        f.create_dataset("extra/speaker", data=np.zeros(len(labels), dtype=np.uint16))
    return path


def write_shd(folder: Path, n_train: int = 40, n_test: int = 12) -> Path:
    """``folder/SHD/shd_train.h5`` and ``shd_test.h5`` (tonic's save_to layout)."""
    write_shd_file(folder / "SHD" / "shd_train.h5", *shd_examples(n_train, 1))
    write_shd_file(folder / "SHD" / "shd_test.h5", *shd_examples(n_test, 2))
    return folder


def dvs_events(rng, n_events: int) -> np.ndarray:
    x = rng.integers(0, 128, n_events)
    y = rng.integers(0, 128, n_events)
    p = rng.integers(0, 2, n_events)
    t = np.sort(rng.uniform(1000.0, 1060.0, n_events))  # ms, not starting at 0
    return np.stack([x, y, p, t], 1).astype(np.float64)


def write_dvs_gesture(folder: Path, users: tuple[int, ...] = (1, 2), test_users: tuple[int, ...] = (3,)) -> Path:
    """``folder/DVSGesture/ibmGestureTrain/userNN_fluorescent/<0..10>.npy`` (and ibmGestureTest)."""
    rng = np.random.default_rng(3)
    for split, us in (("ibmGestureTrain", users), ("ibmGestureTest", test_users)):
        for u in us:
            d = folder / "DVSGesture" / split / f"user{u:02d}_fluorescent"
            d.mkdir(parents=True, exist_ok=True)
            for label in range(11):
                np.save(d / f"{label}.npy", dvs_events(rng, int(rng.integers(50, 400))))
    return folder
