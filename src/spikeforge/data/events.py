"""Event data sets (DVS128 Gesture, SHD) read from their files on disk, binned into frames per batch.

:class:`EventSet` holds, per example, where its events are (in memory, or one ``.npy`` file per
example read when a batch needs it) and bins the events of a batch into count frames ``[B, T,
*frame_shape]`` in one ``np.bincount`` (frame ``t`` counts the events with ``t * dt <= time <
(t + 1) * dt`` after the example's first event, or after time 0 for SHD; later events are dropped).
Only one batch is ever held as frames.

Layouts (those that ``tonic`` reads; reference ``interchange_and_datasets.md`` §2):

* **SHD** (Cramer et al. 2020): ``shd_train.h5`` and ``shd_test.h5``, each an HDF5 file with
  ``spikes/times`` (per example, spike times in seconds), ``spikes/units`` (per example, the
  channel 0-699 of each spike) and ``labels`` (0-19); variable-length per example as the official
  files have them. The folder may hold them directly or in ``SHD/`` (tonic's ``save_to``).
* **DVS128 Gesture** (Amir et al. 2017), the preprocessed version tonic uses:
  ``ibmGestureTrain/userNN_<lighting>/<label>.npy`` and ``ibmGestureTest/...``, each ``.npy`` an
  ``N x 4`` array with columns ``x, y, p, t`` (pixel 0-127, polarity 0/1, time in ms), the label
  (0-10) the file name. The folder may hold them directly or in ``DVSGesture/``. Pixels are
  downsampled by an integer factor (snn-tha: 4, so 32 x 32) and the frame is ``[2, 32, 32]``
  (polarity, row = y, column = x).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .mnist import DataError

SHD_FILES = {"train": "shd_train.h5", "test": "shd_test.h5"}
DVS_FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}


class EventSource(Protocol):
    def __len__(self) -> int: ...

    def events(self, i: int, t_max_us: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Example ``i``: event times in µs from its start (int64, >= 0) and flat frame channels
        (int64); at least those before ``t_max_us`` (a source may leave out the later ones)."""
        ...


class EventSet:
    """Rows ``index`` of an event ``source`` with their ``labels``, binned on demand into frames of
    ``num_steps`` bins of ``dt_us`` µs; indexing (a slice or an index tensor/array) gives the subset."""

    def __init__(
        self,
        source: EventSource,
        labels: np.ndarray,
        frame_shape: tuple[int, ...],
        num_steps: int,
        dt_us: int,
        index: np.ndarray | None = None,
    ):
        self.source, self.frame_shape, self.num_steps, self.dt_us = source, tuple(frame_shape), num_steps, dt_us
        self.index = np.arange(len(source)) if index is None else np.asarray(index, dtype=np.int64)
        self.all_labels = np.asarray(labels, dtype=np.int64)

    @property
    def shape(self) -> tuple[int]:
        return (len(self.index),)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> torch.Tensor:
        return torch.from_numpy(self.all_labels[self.index])

    def __getitem__(self, idx) -> EventSet:
        if isinstance(idx, torch.Tensor):
            idx = idx.numpy()
        return self._with(index=self.index[idx])

    def with_steps(self, num_steps: int) -> EventSet:
        return self._with(num_steps=num_steps)

    def _with(self, **kw) -> EventSet:
        args = {"index": self.index, "num_steps": self.num_steps, **kw}
        return EventSet(self.source, self.all_labels, self.frame_shape, args["num_steps"], self.dt_us, args["index"])

    def frames(self) -> torch.Tensor:
        """The rows' event counts ``[n, num_steps, *frame_shape]`` (float32)."""
        n, T, C = len(self.index), self.num_steps, int(np.prod(self.frame_shape))
        flat = [np.empty(0, dtype=np.int64)]
        for b, i in enumerate(self.index):
            t_us, channel = self.source.events(int(i), T * self.dt_us)
            step = t_us // self.dt_us
            keep = step < T
            flat.append((b * T + step[keep]) * C + channel[keep])
        counts = np.bincount(np.concatenate(flat), minlength=n * T * C)
        return torch.from_numpy(counts.astype(np.float32).reshape(n, T, *self.frame_shape))


def bin_events(t_us: np.ndarray, channel: np.ndarray, num_steps: int, dt_us: int, num_channels: int) -> np.ndarray:
    """Count frames ``[num_steps, num_channels]`` of one example's events (for checks and plots)."""

    class _One:
        def __len__(self) -> int:
            return 1

        def events(self, i, t_max_us=None):
            return np.asarray(t_us, dtype=np.int64), np.asarray(channel, dtype=np.int64)

    return EventSet(_One(), np.zeros(1), (num_channels,), num_steps, dt_us).frames()[0].numpy()


def _root(directory: Path, sub: str, wanted: Iterable[str]) -> Path:
    """``directory/sub`` if that holds one of ``wanted`` (tonic's ``save_to/ClassName``), else ``directory``."""
    inner = directory / sub
    return inner if any((inner / w).exists() for w in wanted) else directory


# ------------------------------------------------------------------------------------------------ SHD


class _CSREvents:
    def __init__(self, offsets: np.ndarray, t_us: np.ndarray, units: np.ndarray):
        self.offsets, self.t_us, self.units = offsets, t_us, units

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def events(self, i: int, t_max_us: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.t_us[a:b].astype(np.int64), self.units[a:b].astype(np.int64)


def shd_layout(directory: Path) -> str:
    return (
        f"{directory}/shd_train.h5 and {directory}/shd_test.h5 (or the same in {directory}/SHD/), each with "
        "the datasets spikes/times (per example, spike times in s), spikes/units (per example, channels "
        "0-699) and labels (0-19), as the official SHD files have them"
    )


def read_shd(
    directory: str | os.PathLike[str],
    split: str,
    limit: int | None = None,
    num_channels: int = 700,
    num_classes: int = 20,
) -> tuple[EventSource, np.ndarray]:
    """SHD ``split`` from ``directory``: the events (channels ``0..num_channels-1``) and labels."""
    try:
        import h5py
    except ImportError:
        raise ImportError("reading SHD needs h5py: pip install 'spikeforge[datasets]' (or pip install h5py)") from None
    directory = Path(directory)
    path = _root(directory, "SHD", SHD_FILES.values()) / SHD_FILES[split]
    if not path.is_file():
        raise DataError(f"SHD file {path} does not exist. Expected {shd_layout(directory)}.")
    try:
        fh = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path} is not a readable HDF5 file ({err}); expected {shd_layout(directory)}") from None
    with fh:
        missing = [k for k in ("spikes/times", "spikes/units", "labels") if k not in fh]
        if missing:
            raise DataError(f"{path} lacks the dataset(s) {', '.join(missing)}; expected {shd_layout(directory)}")
        times, units, labels = fh["spikes/times"], fh["spikes/units"], np.asarray(fh["labels"][:])
        sizes = {"spikes/times": len(times), "spikes/units": len(units), "labels": len(labels)}
        if len(set(sizes.values())) != 1 or labels.ndim != 1:
            raise DataError(
                f"{path}: spikes/times, spikes/units and labels must hold one entry per example, found lengths "
                f"{sizes} (labels of shape {labels.shape})"
            )
        n = len(labels) if limit is None else min(limit, len(labels))
        t_parts, u_parts, offsets = [], [], np.zeros(n + 1, dtype=np.int64)
        unit_type = np.uint16 if num_channels <= 1 << 16 else np.int32
        for start in range(0, n, 1024):  # a chunk of examples at a time: the raw arrays are never all in memory
            chunk = zip(times[start : min(n, start + 1024)], units[start : min(n, start + 1024)])
            for i, (t, u) in enumerate(chunk, start):
                t_us, u = _shd_example(path, i, np.asarray(t), np.asarray(u), num_channels)
                t_parts.append(t_us)
                u_parts.append(u.astype(unit_type))
                offsets[i + 1] = offsets[i] + t_us.size
    t_all = np.concatenate(t_parts) if t_parts else np.empty(0, dtype=np.int32)
    u_all = np.concatenate(u_parts) if u_parts else np.empty(0, dtype=np.uint16)
    labels = labels[:n].astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: label {int(labels.max())} is outside 0-{num_classes - 1}")
    return _CSREvents(offsets, t_all, u_all), labels


def _shd_example(path: Path, i: int, t: np.ndarray, u: np.ndarray, num_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Example ``i``'s spike times in µs (int32) and its units, checked."""
    if t.ndim != 1 or t.shape != u.shape:
        raise DataError(
            f"{path}: example {i} has spikes/times of shape {t.shape} and spikes/units of shape {u.shape}; "
            "each must be a 1-D array with one entry per spike"
        )
    t_us = np.rint(t.astype(np.float64) * 1e6)
    if t.size and not (np.isfinite(t_us).all() and 0 <= t_us.min() and t_us.max() < 2**31):
        raise DataError(f"{path}: example {i}: spikes/times must be finite, >= 0 and < 2147 s (seconds from its start)")
    if u.size and (u.min() < 0 or u.max() >= num_channels):
        bad = int(u.max()) if u.max() >= num_channels else int(u.min())
        raise DataError(f"{path}: example {i}: spikes/units holds channel {bad}, outside 0-{num_channels - 1}")
    return t_us.astype(np.int32), u


# ------------------------------------------------------------------------------------------------ DVS


class _NpyEvents:
    """One ``N x 4`` (x, y, p, t in ms) ``.npy`` file per example, in time order, read when a batch
    needs it: only the rows of the window asked for (found by bisection in the memory-mapped file)."""

    def __init__(self, files: list[Path], sensor_size: int, downsample: int):
        self.files, self.sensor, self.ds = files, sensor_size, downsample

    def __len__(self) -> int:
        return len(self.files)

    def events(self, i: int, t_max_us: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        path = self.files[i]
        a = np.load(path, mmap_mode="r")
        if a.shape[0] == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        end = a.shape[0] if t_max_us is None else bisect.bisect_left(a[:, 3], float(a[0, 3]) + t_max_us / 1000.0)
        x, y, p, t = (np.asarray(a[:end, k]) for k in range(4))
        if t.size > 1 and (np.diff(t) < 0).any():
            raise DataError(f"{path}: the events must be in time order (column t, ms), as DVS128 Gesture's files are")
        if min(x.min(), y.min()) < 0 or max(x.max(), y.max()) >= self.sensor or not np.isin(p, (0, 1)).all():
            raise DataError(
                f"{path}: events must have x, y in 0-{self.sensor - 1} and polarity 0 or 1 (columns x, y, p, t); "
                f"found x {x.min()}-{x.max()}, y {y.min()}-{y.max()}, p {sorted(np.unique(p).tolist())[:4]}"
            )
        side = self.sensor // self.ds
        channel = (p.astype(np.int64) * side + y.astype(np.int64) // self.ds) * side + x.astype(np.int64) // self.ds
        return np.rint((t - t[0]) * 1000.0).astype(np.int64), channel


def dvs_gesture_layout(directory: Path) -> str:
    return (
        f"{directory}/ibmGestureTrain/userNN_<lighting>/<label>.npy and {directory}/ibmGestureTest/... (or the "
        f"same in {directory}/DVSGesture/), the preprocessed DVS128 Gesture that tonic reads: each .npy an N x 4 "
        "array of events with columns x, y, p, t (t in ms), its file name the label 0-10"
    )


def read_dvs_gesture(
    directory: str | os.PathLike[str],
    split: str,
    limit: int | None = None,
    sensor_size: int = 128,
    downsample: int = 4,
    num_classes: int = 11,
) -> tuple[EventSource, np.ndarray]:
    """DVS128 Gesture ``split`` from ``directory``: the examples (files sorted by folder, then
    label) and their labels; every file's shape is checked here, its values when it is binned."""
    directory = Path(directory)
    folder = _root(directory, "DVSGesture", DVS_FOLDERS.values()) / DVS_FOLDERS[split]
    files = sorted(folder.glob("*/*.npy"), key=lambda f: (f.parent.name, f.stem))
    if not files:
        what = "does not exist" if not folder.is_dir() else "holds no <user folder>/<label>.npy file"
        raise DataError(f"DVS128 Gesture folder {folder} {what}. Expected {dvs_gesture_layout(directory)}.")
    files = files[:limit] if limit is not None else files
    labels = []
    for f in files:
        if not f.stem.isdigit() or int(f.stem) >= num_classes:
            raise DataError(
                f"{f}: the file name must be the label, 0-{num_classes - 1}; expected {dvs_gesture_layout(directory)}"
            )
        try:
            shape = np.load(f, mmap_mode="r").shape
        except (OSError, ValueError) as err:
            raise DataError(f"{f} is not a readable .npy file ({err})") from None
        if len(shape) != 2 or shape[1] != 4:
            raise DataError(f"{f}: events must be an N x 4 array (x, y, p, t in ms), found shape {shape}")
        labels.append(int(f.stem))
    return _NpyEvents(files, sensor_size, downsample), np.asarray(labels, dtype=np.int64)
