"""The configs of ``tha fmnist``, ``tha dvs-gesture`` and ``tha shd`` (``configs/tha_*.toml``), their
specs and flags. Defaults = snn-tha ``{fmnist,dvs,shd}/conf.py`` (reference ``tha_and_libs.md``
§1.4-1.6; the final thresholds are snn-tha's initial threshold + its ``thr_final`` offset)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import Field, model_validator

from ...config import ConfigError, Params
from ...models.tha_event_nets import THADVSGestureNetParams, THASHDNetParams
from ...models.tha_nets import THAMnistNetParams
from ..scaffold import ExperimentSpec, Flag, positive_int
from .config import MNIST_FLAGS, MNIST_SPEC, AnnealSection, DataSection, RunSection, THAConfig, TrainSection


class OptimTrainSection(TrainSection):
    optimizer: str = Field("adam", pattern="^(adam|sgd)$", description="adam (lr, betas) or sgd (lr, momentum)")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="SGD momentum")


class EarlyStopRun(RunSection):
    """snn-tha: 500 epochs with early stopping, patience 100 epochs (on the test set there; here on
    the validation split)."""

    epochs: int = Field(500, ge=1)
    patience: int = Field(100, ge=0, description="early stopping on validation accuracy, in epochs (0: off)")


# ------------------------------------------------------------------------------------------------ FMNIST


class FmnistDataSection(DataSection):
    data_dir: str | None = Field(
        None, description="Fashion-MNIST IDX directory; None: $SPIKEFORGE_DATA/fmnist, else ~/.cache/spikeforge/fmnist"
    )


class FmnistTrainSection(OptimTrainSection):
    """snn-tha fmnist/conf.py: SGD, lr 8.4e-4, momentum 0.855, batch 128, T_max 4688."""

    optimizer: str = Field("sgd", pattern="^(adam|sgd)$", description="adam (lr, betas) or sgd (lr, momentum)")
    lr: float = Field(8.4e-4, gt=0.0)
    momentum: float = Field(0.855, ge=0.0, lt=1.0, description="SGD momentum")


class FmnistAnnealSection(AnnealSection):
    """snn-tha fmnist: final = initial + (7.1456, 12.826, 9.936668)."""

    theta_final: tuple[float, float, float] = (14.0456, 23.076, 27.886668)
    alpha: tuple[float, float, float] = (0.0368, 0.29687, 0.1048)


#: snn-tha fmnist/conf.py (the network is the MNIST one, reference §1.4)
FMNIST_MODEL = THAMnistNetParams(beta=0.868, slope=0.1557, thresholds=(6.9, 10.25, 17.95), dropout=0.648)


class FmnistConfig(THAConfig):
    run: EarlyStopRun = EarlyStopRun()
    data: FmnistDataSection = FmnistDataSection()
    model: THAMnistNetParams = FMNIST_MODEL
    train: FmnistTrainSection = FmnistTrainSection()
    anneal: FmnistAnnealSection = FmnistAnnealSection()


# ------------------------------------------------------------------------------------------------ events


class _EventData(Params):
    data_dir: str | None = Field(
        None, description="dataset folder; None: $SPIKEFORGE_DATA/NAME, else ~/.cache/spikeforge/NAME"
    )
    val_size: int = Field(..., ge=1, description="validation examples held out from the training set")
    train_limit: int | None = Field(None, ge=1, description="use only the first N training examples")
    test_limit: int | None = Field(None, ge=1)
    dt_us: int = Field(..., ge=1, description="time bin, µs")
    num_steps: int = Field(..., ge=1, description="time bins per training example (from its first event)")


class DVSGestureDataSection(_EventData):
    """snn-tha dvs: snnTorch DVSGesture(num_steps=100 train / 360 test, dt=5000 µs, ds=4)."""

    val_size: int = Field(118, ge=1, description="validation examples held out from the training set (~10 %)")
    dt_us: int = Field(5000, ge=1, description="time bin, µs")
    num_steps: int = Field(100, ge=1, description="time bins per training example (from its first event)")
    test_num_steps: int = Field(360, ge=1, description="time bins per validation / test example")
    sensor_size: int = Field(128, ge=1, description="DVS128 pixels per side")
    downsample: int = Field(4, ge=1, description="pixels per frame cell along each side")


class SHDDataSection(_EventData):
    """snn-tha shd: snnTorch SHD(num_steps=int(1000/3) = 333, dt=3000 µs)."""

    val_size: int = Field(816, ge=1, description="validation examples held out from the training set (~10 %)")
    dt_us: int = Field(3000, ge=1, description="time bin, µs")
    num_steps: int = Field(333, ge=1, description="time bins per example (from time 0)")
    num_channels: int = Field(700, ge=1)


class DVSGestureTrainSection(OptimTrainSection):
    """snn-tha dvs/conf.py: Adam lr 1.765e-3, batch 8, T_max 735, gradient clipping at norm 1."""

    batch_size: int = Field(8, ge=1)
    eval_batch_size: int = Field(8, ge=1)
    lr: float = Field(1.765e-3, gt=0.0)
    t_max_iterations: int = Field(735, ge=1, description="CosineAnnealingLR T_max, stepped per iteration")
    grad_clip: float | None = Field(1.0, gt=0.0, description="clip_grad_norm_ max norm")


class SHDTrainSection(OptimTrainSection):
    """snn-tha shd/conf.py: Adam lr 6.54e-4, batch 32, T_max 2604, gradient and weight clipping."""

    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(32, ge=1)
    lr: float = Field(6.54e-4, gt=0.0)
    t_max_iterations: int = Field(2604, ge=1, description="CosineAnnealingLR T_max, stepped per iteration")
    grad_clip: float | None = Field(1.0, gt=0.0, description="clip_grad_norm_ max norm")
    weight_clip: bool = Field(True, description="clamp binarized latent weights to [-1, 1] after each step")


class DVSGestureAnnealSection(AnnealSection):
    """snn-tha dvs: final = initial + (1.7565, 2.457, 9.655)."""

    theta_final: tuple[float, float, float] = (12.1565, 19.077, 16.465)
    alpha: tuple[float, float, float] = (0.00333, 0.0061, 0.173)


class SHDAnnealSection(Params):
    """snn-tha shd (two LIF layers): final = initial + (31.767, 39.92)."""

    enabled: bool = True
    theta_final: tuple[float, float] = (45.271, 51.12)
    alpha: tuple[float, float] = (2.78e-5, 1.36e-5)


class SHDRun(EarlyStopRun):
    """snn-tha shd/conf.py has 5 epochs (600 before commit 504b443; reference §1.1 reads 5 as a
    debug leftover: the thresholds barely anneal in 5 epochs)."""

    epochs: int = Field(5, ge=1)


class DVSGestureConfig(THAConfig):
    run: EarlyStopRun = EarlyStopRun()
    data: DVSGestureDataSection = DVSGestureDataSection()
    model: THADVSGestureNetParams = THADVSGestureNetParams()
    train: DVSGestureTrainSection = DVSGestureTrainSection()
    anneal: DVSGestureAnnealSection = DVSGestureAnnealSection()

    @model_validator(mode="after")
    def _frames_fit_the_network(self):
        d, m = self.data, self.model
        if d.sensor_size % d.downsample:
            raise ConfigError(
                f"data.sensor_size = {d.sensor_size} is not a multiple of data.downsample = {d.downsample}"
            )
        if m.input_size != d.sensor_size // d.downsample or m.in_channels != 2:
            raise ConfigError(
                f"the frames are 2 x {d.sensor_size // d.downsample} x {d.sensor_size // d.downsample} "
                f"(data.sensor_size / data.downsample), the network takes {m.in_channels} x {m.input_size} x "
                f"{m.input_size}: set model.input_size = {d.sensor_size // d.downsample} (and model.in_channels = 2)"
            )
        return self


class SHDConfig(THAConfig):
    run: SHDRun = SHDRun()
    data: SHDDataSection = SHDDataSection()
    model: THASHDNetParams = THASHDNetParams()
    train: SHDTrainSection = SHDTrainSection()
    anneal: SHDAnnealSection = SHDAnnealSection()

    @model_validator(mode="after")
    def _channels_fit_the_network(self):
        if self.model.num_inputs != self.data.num_channels:
            raise ConfigError(
                f"model.num_inputs = {self.model.num_inputs} differs from data.num_channels = "
                f"{self.data.num_channels}: give both the same value (SHD: 700)"
            )
        return self


def _spec(name: str, schema: type[Params], toml: str) -> ExperimentSpec:
    return replace(
        MNIST_SPEC, name=name, schema=schema, default_toml=toml, default_out=f"runs/{toml[:-5]}", legacy=None
    )


FMNIST_SPEC = _spec("tha-fmnist", FmnistConfig, "tha_fmnist.toml")
DVS_GESTURE_SPEC = _spec("tha-dvs-gesture", DVSGestureConfig, "tha_dvs_gesture.toml")
SHD_SPEC = _spec("tha-shd", SHDConfig, "tha_shd.toml")


def _flags(data_help: str, steps_key: str, steps_help: str, *extra: Flag) -> tuple[Flag, ...]:
    """The ``tha mnist`` flags with this data set's folder and time-step setting."""
    out: list[Any] = []
    for f in MNIST_FLAGS:
        if f.flag == "--data-dir":
            f = replace(f, help=data_help)
        elif f.flag == "--num-steps":
            f = replace(f, key=steps_key, help=steps_help)
        out.append(f)
    return (*out, *extra)


FMNIST_FLAGS = _flags(
    "Fashion-MNIST IDX directory (unset: $SPIKEFORGE_DATA/fmnist, else ~/.cache/spikeforge/fmnist)",
    "model.num_steps",
    "time steps per image",
)
DVS_GESTURE_FLAGS = _flags(
    "DVS128 Gesture folder (tonic's DVSGesture/ layout; unset: $SPIKEFORGE_DATA/dvs_gesture, else "
    "~/.cache/spikeforge/dvs_gesture)",
    "data.num_steps",
    "time bins per training example",
    Flag("--test-num-steps", "data.test_num_steps", positive_int, "time bins per validation / test example"),
)
SHD_FLAGS = _flags(
    "SHD folder with shd_train.h5 and shd_test.h5 (unset: $SPIKEFORGE_DATA/shd, else ~/.cache/spikeforge/shd)",
    "data.num_steps",
    "time bins per example",
)
