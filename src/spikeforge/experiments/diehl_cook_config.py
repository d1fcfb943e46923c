"""The Diehl & Cook experiment's config (``configs/diehl_cook.toml``), its spec and its flags."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import ConfigError, Params
from ..models.diehl_cook import DiehlCookConfig
from .diehl_cook_profiles import fill_profile
from .scaffold import ExperimentSpec, Flag, nonneg_int, positive_int, total_memory_bytes


class RunParams(Params):
    """How the experiment is run (not part of the model; the network size is
    ``model.network.n_neurons``)."""

    epochs: int = Field(1, ge=1, description="passes over the training examples")
    train_examples: int = Field(3000, ge=1, le=60000)
    label_examples: int = Field(3000, ge=1, le=60000)
    test_examples: int = Field(1000, ge=1, le=10000)
    seed: int = Field(0, ge=0)
    profile: Literal["default", "released"] = Field(
        "default",
        description="default: size-adaptive theta+ and stable Euler substeps; released: the released code exactly "
        "(experiments/diehl_cook_profiles.py)",
    )
    engine: Literal["numba", "torch"] = "numba"
    device: str | None = None
    batch_size: int = Field(1, ge=1)
    checkpoint_every: int = Field(2000, ge=1)
    running_window: int = Field(1000, ge=10)
    log_every: int = Field(
        1000, ge=1, description="examples between train.log lines (at most a tenth of a shorter run)"
    )
    data_dir: str | None = None
    record_examples: int = Field(
        0, ge=0, le=1000, description="record the spikes of this many test examples (compiled engine)"
    )


class DiehlCookExperimentConfig(Params):
    """The whole config of ``spikeforge diehl-cook``: ``[run]`` and ``[model.*]``."""

    run: RunParams = Field(default_factory=RunParams)
    model: DiehlCookConfig = Field(default_factory=DiehlCookConfig)

    @model_validator(mode="before")
    @classmethod
    def _profile(cls, data: Any) -> Any:
        """The profile's values for the size-dependent model keys the config does not set."""
        return fill_profile(data)

    @model_validator(mode="after")
    def _check(self) -> DiehlCookExperimentConfig:
        r = self.run
        if r.engine == "numba" and (r.device is not None or r.batch_size != 1):
            given = " and ".join(
                x for x, on in (("--device", r.device is not None), ("--batch-size", r.batch_size != 1)) if on
            )
            verb = "apply" if " and " in given else "applies"
            raise ValueError(
                f"{given} only {verb} to the torch engine; the compiled engine (numba) runs one example at a "
                f"time on the CPU: drop {given}, or add --engine torch"
            )
        for name in ("exc", "inh"):
            p = getattr(self.model, name)
            if p.v_thresh_mv <= p.v_rest_mv:
                raise ValueError(
                    f"model.{name}.v_thresh_mv = {p.v_thresh_mv} is not above model.{name}.v_rest_mv = "
                    f"{p.v_rest_mv}: the neurons would fire at rest; use a threshold above the resting potential"
                )
        return self


def check_memory(model: DiehlCookConfig) -> None:
    """Refuse a network that cannot fit in this machine's memory, before allocating it."""
    net = model.network
    synapses = net.n_input * net.n_neurons
    # weights (float64) and delays (int32) in the state, a copy of each in the engine, its traces
    need = synapses * (8 + 4) * 2 + synapses * 8
    have = total_memory_bytes()
    if have is not None and need > have:
        raise ConfigError(
            f"--neurons {net.n_neurons} needs about {need / 2**30:,.1f} GiB ({net.n_input} x {net.n_neurons} "
            f"synapses, ~28 bytes each), more than this machine's {have / 2**30:,.1f} GiB of memory: "
            "choose fewer neurons"
        )


def _legacy(record: dict[str, Any]) -> dict[str, Any]:
    """A config.json written by spikeforge <= 0.1.0 (``{"run", "model"}``, the size in ``run.neurons``)."""
    run = dict(record.get("run") or {})
    model = dict(record.get("model") or {})
    if "neurons" in run:
        model["network"] = {**(model.get("network") or {}), "n_neurons": run.pop("neurons")}
    return {"run": run, "model": model}


SPEC = ExperimentSpec(
    name="diehl-cook",
    schema=DiehlCookExperimentConfig,
    default_toml="diehl_cook.toml",
    default_out="runs/diehl-cook",
    seed_key="run.seed",
    device_key="run.device",
    # more epochs continue the run; labels, tests, recordings and checkpoint spacing do not change it
    continuable=(
        "run.epochs",
        "run.label_examples",
        "run.test_examples",
        "run.record_examples",
        "run.checkpoint_every",
        "run.running_window",
        "run.log_every",
        "run.device",
    ),
    legacy=_legacy,
)

FLAGS = (
    Flag(
        "--neurons", "model.network.n_neurons", positive_int, "excitatory neurons (= inhibitory); any positive integer"
    ),
    Flag(
        "--train-examples", "run.train_examples", positive_int, "training examples per epoch, from the start of the set"
    ),
    Flag("--epochs", "run.epochs", positive_int, "passes over the training examples; raising it continues a run"),
    Flag("--label-examples", "run.label_examples", positive_int, "training examples used to assign labels"),
    Flag("--test-examples", "run.test_examples", positive_int, "test images to classify"),
    Flag(
        "--profile",
        "run.profile",
        str,
        "default: size-adaptive theta+ and stable integration; released: the released code's exact settings",
        choices=("default", "released"),
    ),
    Flag("--data-dir", "run.data_dir", str, "MNIST IDX directory (unset: $SPIKEFORGE_DATA, else the embedded subset)"),
    Flag(
        "--engine",
        "run.engine",
        str,
        "numba: compiled exact CPU engine; torch: batched, any device (far slower on a CPU)",
        choices=("numba", "torch"),
    ),
    Flag("--batch-size", "run.batch_size", positive_int, "torch engine: examples per batch (> 1: the batched rule)"),
    Flag(
        "--checkpoint-every",
        "run.checkpoint_every",
        positive_int,
        "examples between checkpoints (training, labelling, testing)",
    ),
    Flag(
        "--record-examples",
        "run.record_examples",
        nonneg_int,
        "record the excitatory spikes of this many test examples (test_spikes.safetensors, test_raster.png)",
    ),
)
