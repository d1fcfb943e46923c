"""The olfaction experiment's config (``configs/olfaction.toml``), its spec and its flags."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..config import Params
from ..data import olfaction as odata
from ..models.olfaction import OlfactionNetParams
from ..models.olfaction_ann import WangANNParams
from ..neurons.olfaction_lif import CubaLIFParams
from ..plasticity.pair_stdp import PairSTDPParams
from .scaffold import ExperimentSpec, Flag, nonneg_int, positive_int

KC_SIZES = (50, 500, 2500, 5000)
# epochs of the spiking modes when run.epochs = 0: one epoch is 100 Adam steps per batch, so the
# budget that generalises shrinks with the training set (docs/olfaction.md, "The schedule")
PRESET_EPOCHS = {"small": 12, "medium": 10, "wang2021": 2}
MODES = ("decolle", "hybrid", "ann")


class OlfactionRunParams(Params):
    """Training protocol. Defaults chosen by measurement (docs/olfaction.md)."""

    preset: Literal["small", "medium", "wang2021"] = "small"
    kc: int = Field(2500, ge=1, description="KC (expansion) layer size: layer_sizes[-1]")
    mode: Literal["decolle", "hybrid", "ann"] = "decolle"
    epochs: int = Field(
        0,
        ge=0,
        description="epochs of the spiking modes (0: the preset's, PRESET_EPOCHS: small 12, medium 10, wang2021 2)",
    )
    ann_epochs: int = Field(100, ge=1, description="epochs of mode 'ann'")
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-4, gt=0, description="Adam, one step per time step after the burn-in")
    ann_lr: float = Field(1e-3, gt=0, description="ANN learning rate (Wang receptor config: 1e-4)")
    ann_pn2kc_lr: float = Field(
        0.0, ge=0, description="ANN learning rate of the PN->KC block (Wang's optional pn2kc_lr; 0: ann_lr)"
    )
    optimizer: Literal["adam", "adamax", "sgd"] = "adam"
    weight_decay: float = Field(
        0.0, ge=0, description="spiking modes: decoupled weight decay per update step (adam -> AdamW); 0: none"
    )
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="spiking modes: lr * (1 + cos(pi * epoch / epochs)) / 2 per epoch"
    )
    ema_decay: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="spiking modes: evaluate a running average of the weights, updated after every training "
        "batch as avg = d * avg + (1 - d) * w (0: the weights themselves)",
    )
    val_fraction: float = Field(0.1, gt=0, lt=1, description="validation split taken from the training set")
    train_limit: int = Field(0, ge=0, description="use only the first N training samples (0 = all)")
    seed: int = Field(0, ge=0)
    threads: int = Field(1, ge=1)
    device: str = Field(
        "cpu",
        description="torch device (cpu, cuda, cuda:N): on cpu the spiking modes run the fused loop, elsewhere "
        "the reference loop (the same network and draws); data-parallel runs use cpu",
    )
    eval_batch: int = Field(1000, ge=1)
    cache_dir: str | None = Field(None, description="data cache (None: $SPIKEFORGE_OLFACTION_CACHE or ~/.cache)")
    plots: bool = Field(True, description="write the figures")
    dtype: Literal["float32", "float64"] = Field(
        "float32", description="float64: for exactness checks (e.g. data-parallel vs one process)"
    )


def _experiment_model() -> OlfactionNetParams:
    """The network of the experiment: the building blocks' published defaults, except the choices
    measured in docs/olfaction.md (subtractive reset in the hidden layers, local readout amplitude 4,
    dropout 0.5 on the readouts' inputs in training, label smoothing 0.1;
    STDP blocks: 7 random inputs per neuron, a homeostatic threshold towards 0.2 spikes per step and
    the weight bound at twice the largest initial weight)."""
    return OlfactionNetParams(
        cuba=CubaLIFParams(reset="subtract"),
        readout_ampl=4.0,
        readout_dropout=0.5,
        label_smoothing=0.1,
        stdp_fan_in=7,
        stdp_target_rate=0.2,
        stdp=PairSTDPParams(w_max=0.15),
    )


class OlfactionConfig(Params):
    run: OlfactionRunParams = Field(default_factory=OlfactionRunParams)
    data: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's generator")
    model: OlfactionNetParams = Field(default_factory=_experiment_model)
    ann: WangANNParams = Field(default_factory=WangANNParams)

    def resolved(self) -> OlfactionConfig:
        """Layer sizes from ``run.kc``, classes from the preset, ``stdp_block_idx`` from the mode
        (hybrid without a list: the last block, as the original), ``run.epochs`` 0 from the preset."""
        dp = odata.preset(self.run.preset, **self.data)
        sizes = [dp.n_or, *self.model.layer_sizes[1:-1], self.run.kc]
        stdp = list(self.model.stdp_block_idx)
        if self.run.mode == "hybrid" and not stdp:
            stdp = [len(sizes) - 2]  # the last block
        if self.run.mode == "decolle":
            stdp = []
        model = self.model.replace(layer_sizes=sizes, n_class=dp.n_class, stdp_block_idx=stdp)
        ann = self.ann.replace(layer_sizes=sizes, n_class=dp.n_class)
        run = self.run.replace(epochs=self.run.epochs or PRESET_EPOCHS[self.run.preset])
        return self.replace(run=run, model=model, ann=ann)


SPEC = ExperimentSpec(
    name="olfaction",
    schema=OlfactionConfig,
    default_toml="olfaction.toml",
    default_out="runs/olfaction",
    seed_key="run.seed",
    threads_key="run.threads",
    device_key="run.device",
    # where and how long it computes continue a run; everything else defines it
    continuable=(
        "run.epochs",
        "run.ann_epochs",
        "run.threads",
        "run.device",
        "run.eval_batch",
        "run.cache_dir",
        "run.plots",
    ),
)

_COMMON = (
    Flag("--preset", "run.preset", str, "data preset", choices=tuple(odata.PRESETS)),
    Flag(
        "--epochs",
        "run.epochs",
        nonneg_int,
        "epochs of the spiking modes (0: the preset's: small 12, medium 10, wang2021 2)",
    ),
    Flag("--ann-epochs", "run.ann_epochs", positive_int, "epochs of mode ann"),
    Flag("--train-limit", "run.train_limit", nonneg_int, "use the first N training samples (0: all)"),
    Flag("--plot", "run.plots", bool, "write the figures"),
)
FLAGS = (
    Flag("--kc", "run.kc", positive_int, "KC (expansion) layer size"),
    Flag("--mode", "run.mode", str, "decolle, hybrid (STDP blocks) or ann (Wang's network)", choices=MODES),
    *_COMMON,
)
TABLE_FLAGS = _COMMON
