"""The threshold-annealing experiments' configs (``configs/tha_mnist.toml``,
``configs/tha_spike_timing.toml``), their specs and their flags."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ...config import ConfigError, Params
from ...models.tha_nets import THAMnistNetParams
from ...plasticity.threshold_annealing import AnnealParams
from ..scaffold import ExperimentSpec, Flag, positive_int, resolve_config

# ------------------------------------------------------------------------------------------------
# MNIST


class RunSection(Params):
    seed: int = Field(0, ge=0)
    trials: int = Field(1, ge=1)
    epochs: int = Field(10, ge=1)
    threads: int = Field(1, ge=1, description="torch CPU threads")
    device: str = Field("cpu", description="torch device (cpu, cuda, cuda:N); data-parallel ranks use cuda:LOCAL_RANK")
    dtype: str = Field(
        "float32",
        pattern="^(float32|float64)$",
        description="floating-point type of the network and its inputs (float64: for exactness checks; "
        "float32 runs that differ only in summation order part ways once a membrane rounds across its threshold)",
    )
    checkpoint_every: int = Field(50, ge=1, description="iterations between checkpoints")
    log_every: int = Field(10, ge=1, description="iterations between logged loss/threshold points")
    patience: int = Field(0, ge=0, description="early stopping on validation accuracy, in epochs (0: off)")
    init_from: str | None = Field(
        None,
        description="start from the weights, batch-norm state and "
        "(annealed) thresholds of this checkpoint (fresh optimizer and "
        "LR schedule; annealing continues from the loaded thresholds)",
    )


class DataSection(Params):
    data_dir: str | None = Field(
        None, description="MNIST IDX directory; None: $SPIKEFORGE_DATA else the embedded subset"
    )
    val_size: int = Field(5000, ge=1, description="validation examples held out from the training set")
    train_limit: int | None = Field(None, ge=1, description="use only the first N training images")
    test_limit: int | None = Field(None, ge=1)
    normalize: bool = False


class TrainSection(Params):
    """Optimisation; defaults = snn-tha mnist/conf.py (reference §1.5)."""

    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    lr: float = Field(9.97e-3, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    t_max_iterations: int = Field(4688, ge=1, description="CosineAnnealingLR T_max, stepped per iteration")
    eta_min: float = Field(0.0, ge=0.0)
    loss: str = Field("mse_count", pattern="^(mse_count|ce_count)$")
    correct_rate: float = Field(0.8, ge=0.0, le=1.0)
    incorrect_rate: float = Field(0.2, ge=0.0, le=1.0)
    grad_clip: float | None = Field(None, gt=0.0, description="clip_grad_norm_ max norm (snn-tha: 1.0 when on)")
    weight_clip: bool = Field(False, description="clamp binarized latent weights to [-1, 1] after each step")


class AnnealSection(Params):
    """snn-tha MNIST: final = initial + (4.317, 16.29, 3.496)."""

    enabled: bool = True
    theta_final: tuple[float, float, float] = (15.983, 30.395, 4.1616)
    alpha: tuple[float, float, float] = (0.024, 0.119, 0.0011)


class THAConfig(Params):
    """What every ``tha`` classification config shares: sections ``run``, ``data``, ``model`` (with
    the initial ``thresholds``), ``train`` and ``anneal`` (``enabled``, ``theta_final``, ``alpha``:
    one per LIF layer); the annealing schedule is checked when the config is made."""

    @classmethod
    def from_dict(cls, data=None, **overrides):
        cfg: Any = super().from_dict(data, **overrides)
        if cfg.anneal.enabled:
            cfg.anneal_params()  # raises ConfigError on alpha / theta_final out of range
        return cfg

    def anneal_params(self) -> list[AnnealParams]:
        me: Any = self
        out = []
        for i, (t0, tf, a) in enumerate(zip(me.model.thresholds, me.anneal.theta_final, me.anneal.alpha)):
            if not 0.0 < a <= 1.0:
                raise ConfigError(f"anneal.alpha[{i}] = {a}: the annealing rate must be in (0, 1]")
            if tf < t0:
                raise ConfigError(
                    f"anneal.theta_final[{i}] = {tf} is below the initial threshold "
                    f"model.thresholds[{i}] = {t0}: annealing only raises thresholds; "
                    "use theta_final >= the initial value, or --no-anneal"
                )
            out.append(AnnealParams(theta_initial=t0, theta_final=tf, alpha=a))
        return out


class MnistConfig(THAConfig):
    run: RunSection = RunSection()
    data: DataSection = DataSection()
    model: THAMnistNetParams = THAMnistNetParams()
    train: TrainSection = TrainSection()
    anneal: AnnealSection = AnnealSection()


# ------------------------------------------------------------------------------------------------
# spike timing (section 4)


class SpikeTimingCase(Params):
    name: str
    binarize: bool
    beta: float = Field(..., ge=0.0, le=1.0)
    threshold: float = Field(..., gt=0.0, description="threshold of both layers (initial, if annealed)")
    target_peak: float = Field(..., gt=0.0, description="membrane target at target_step")
    anneal_final: float | None = Field(None, gt=0.0)
    anneal_alpha: float | None = Field(None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self):
        if (self.anneal_final is None) != (self.anneal_alpha is None):
            raise ValueError("give both anneal_final and anneal_alpha, or neither")
        if self.anneal_final is not None:
            self.anneal_params()
        return self

    def anneal_params(self) -> AnnealParams | None:
        if self.anneal_final is None:
            return None
        try:
            return AnnealParams.from_dict(
                theta_initial=self.threshold, theta_final=self.anneal_final, alpha=self.anneal_alpha
            )
        except ConfigError as err:
            raise ValueError(f"case '{self.name}': {err}") from None


_DEFAULT_CASES = (
    SpikeTimingCase(name="full_precision_theta1", binarize=False, beta=0.6, threshold=1.0, target_peak=1.05),
    SpikeTimingCase(name="binarized_theta1", binarize=True, beta=0.15, threshold=1.0, target_peak=1.05),
    SpikeTimingCase(name="binarized_theta50", binarize=True, beta=0.15, threshold=50.0, target_peak=55.0),
    SpikeTimingCase(
        name="binarized_annealed_5_to_50",
        binarize=True,
        beta=0.15,
        threshold=5.0,
        target_peak=55.0,
        anneal_final=50.0,
        anneal_alpha=5e-3,
    ),
)


class SpikeTimingConfig(Params):
    """Defaults = snn-tha ``temporal/bounded_homeostasis.ipynb`` (reference §2)."""

    seed: int = Field(0, ge=0)
    num_steps: int = Field(100, ge=2)
    num_inputs: int = Field(100, ge=1)
    num_hidden: int = Field(1000, ge=1)
    target_step: int = Field(75, ge=1)
    iterations: int = Field(1000, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    surrogate: str = "fast_sigmoid"
    slope: float = Field(5.0, gt=0.0)
    frame_every: int = Field(10, ge=1, description="iterations between animation frames")
    final_window: int = Field(50, ge=1, description="final loss = mean over the last N iterations")
    threads: int = Field(1, ge=1)
    cases: tuple[SpikeTimingCase, ...] = _DEFAULT_CASES

    @model_validator(mode="after")
    def _check(self):
        if self.target_step >= self.num_steps:
            raise ValueError(f"target_step = {self.target_step} must be < num_steps = {self.num_steps}")
        names = [c.name for c in self.cases]
        if len(set(names)) != len(names):
            raise ValueError(f"case names must be unique, got {names}")
        if not names:
            raise ValueError("give at least one case")
        return self


def _strip(*keys: str):
    """A legacy (spikeforge <= 0.1.0) config.json: the config itself, with keys that moved removed
    (the run directory and the progress switch are now --out and --quiet)."""

    def convert(record: dict[str, Any]) -> dict[str, Any]:
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in record.items()}
        for key in keys:
            node = data
            *parents, last = key.split(".")
            for p in parents:
                node = node.get(p, {})
            node.pop(last, None)
        return data

    return convert


MNIST_SPEC = ExperimentSpec(
    name="tha-mnist",
    schema=MnistConfig,
    default_toml="tha_mnist.toml",
    default_out="runs/tha_mnist",
    seed_key="run.seed",
    threads_key="run.threads",
    device_key="run.device",
    # run length, logging, checkpoint spacing and where / in what precision it computes continue a
    # run; everything else defines it
    continuable=(
        "run.epochs",
        "run.threads",
        "run.device",
        "run.dtype",
        "run.checkpoint_every",
        "run.log_every",
        "run.trials",
        "run.patience",
    ),
    legacy=_strip("run.out_dir", "run.progress"),
)

SPIKE_TIMING_SPEC = ExperimentSpec(
    name="tha-spike-timing",
    schema=SpikeTimingConfig,
    default_toml="tha_spike_timing.toml",
    default_out="runs/tha_spike_timing",
    seed_key="seed",
    threads_key="threads",
    continuable=("threads",),
    legacy=_strip("out_dir"),
)

MNIST_FLAGS = (
    Flag("--data-dir", "data.data_dir", str, "MNIST IDX directory (unset: $SPIKEFORGE_DATA, else the embedded subset)"),
    Flag("--binarize", "model.binarize", bool, "binarized weights, or full precision (--no-binarize)"),
    Flag("--anneal", "anneal.enabled", bool, "threshold annealing, or thresholds fixed at their initial values"),
    Flag("--epochs", "run.epochs", positive_int, "training epochs per trial; raising it continues a run"),
    Flag("--trials", "run.trials", positive_int, "independent trials (trial k uses seed + k)"),
    Flag("--train-limit", "data.train_limit", positive_int, "use only the first N training images (unset: all)"),
    Flag("--test-limit", "data.test_limit", positive_int, "use only the first N test images (unset: all)"),
    Flag("--val-size", "data.val_size", positive_int, "validation images held out from the training set"),
    Flag("--num-steps", "model.num_steps", positive_int, "time steps per image"),
    Flag("--batch-size", "train.batch_size", positive_int, "training batch size"),
    Flag(
        "--init-from",
        "run.init_from",
        str,
        "start from another run's checkpoint (e.g. RUN/trial0/best): weights, batch norm, thresholds; "
        "fresh optimizer and LR schedule",
        metavar="CHECKPOINT",
    ),
)

SPIKE_TIMING_FLAGS = (
    Flag("--iterations", "iterations", positive_int, "training iterations per case"),
    Flag("--hidden", "num_hidden", positive_int, "hidden neurons"),
)


def load_config(kind: str, path: str | None = None, overrides: list[str] | None = None) -> Params:
    """A config by the scaffold's one merge: the packaged TOML <- ``path`` <- ``section.key=value``
    overrides (``kind``: ``mnist`` or ``spike_timing``)."""
    spec = {"mnist": MNIST_SPEC, "spike_timing": SPIKE_TIMING_SPEC}[kind]
    return resolve_config(spec, config_file=path, sets=overrides or [])
