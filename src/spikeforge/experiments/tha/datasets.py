"""``spikeforge tha fmnist``, ``tha dvs-gesture`` and ``tha shd``: the snn-tha network of each data
set, trained by the shared ``tha`` loop (:mod:`.training`) on data read from local folders
(:mod:`spikeforge.data.fmnist`, :mod:`spikeforge.data.events`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...data.events import EventSet, read_dvs_gesture, read_shd
from ...data.fmnist import dataset_dir, load_fmnist
from ...models.tha_event_nets import THADVSGestureNet, THASHDNet
from ...models.tha_nets import THAMnistNet
from .dataset_config import DVS_GESTURE_SPEC, FMNIST_SPEC, SHD_SPEC, DVSGestureConfig, FmnistConfig, SHDConfig
from .mnist import split_images
from .training import Split, THATask, holdout


def _fmnist_splits(cfg: FmnistConfig):
    d = cfg.data
    return split_images(
        d, load_fmnist(d.data_dir, "train", d.train_limit), load_fmnist(d.data_dir, "test", d.test_limit)
    )


def _event_splits(
    cfg: Any, name: str, read: Callable, frame_shape: tuple[int, ...], test_steps: int, **kw
) -> tuple[Split, Split, Split]:
    """Train / validation / test event sets: the validation split held out of the training files
    (binned with the test length), the test split from the test files."""
    d = cfg.data
    directory, _ = dataset_dir(d.data_dir, name)
    source, labels = read(directory, "train", d.train_limit, **kw)
    train_idx, val_idx = holdout(len(labels), d.val_size)
    full = EventSet(source, labels, frame_shape, d.num_steps, d.dt_us)
    test_source, test_labels = read(directory, "test", d.test_limit, **kw)
    sets = (
        full[train_idx],
        full[val_idx].with_steps(test_steps),
        EventSet(test_source, test_labels, frame_shape, test_steps, d.dt_us),
    )
    return tuple((s, s.labels) for s in sets)  # type: ignore[return-value]


def _dvs_splits(cfg: DVSGestureConfig):
    d, side = cfg.data, cfg.data.sensor_size // cfg.data.downsample
    return _event_splits(
        cfg,
        "dvs_gesture",
        read_dvs_gesture,
        (2, side, side),
        d.test_num_steps,
        sensor_size=d.sensor_size,
        downsample=d.downsample,
        num_classes=cfg.model.num_classes,
    )


def _shd_splits(cfg: SHDConfig):
    d = cfg.data
    return _event_splits(
        cfg,
        "shd",
        read_shd,
        (d.num_channels,),
        d.num_steps,
        num_channels=d.num_channels,
        num_classes=cfg.model.num_classes,
    )


def _describe(title: str, name: str) -> Callable[[Any], str]:
    return lambda cfg: f"{title} ({dataset_dir(cfg.data.data_dir, name)[0]})"


FMNIST_TASK = THATask(
    FMNIST_SPEC, lambda cfg: THAMnistNet(cfg.model), _fmnist_splits, _describe("Fashion-MNIST", "fmnist")
)
DVS_GESTURE_TASK = THATask(
    DVS_GESTURE_SPEC, lambda cfg: THADVSGestureNet(cfg.model), _dvs_splits, _describe("DVS128 Gesture", "dvs_gesture")
)
SHD_TASK = THATask(SHD_SPEC, lambda cfg: THASHDNet(cfg.model), _shd_splits, _describe("SHD", "shd"))
