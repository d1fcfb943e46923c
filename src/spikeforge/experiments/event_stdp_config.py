"""The event-based STDP experiment's config (``configs/event_stdp.toml``), its spec and its flags."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Params
from ..encoding.patches import PatchParams
from ..models.event_stdp import RateCodingParams, WTALayerParams
from ..plasticity.event_stdp import EventSTDPParams
from .scaffold import ExperimentSpec, Flag, number, whole


class DataParams(Params):
    """Which images are used. ``data_dir`` None: ``$SPIKEFORGE_DATA``, else the embedded subset."""

    data_dir: str | None = None
    train_limit: int | None = Field(None, ge=1, description="first n training images (None: all)")
    test_limit: int | None = Field(None, ge=1, description="first n test images (None: all)")
    feature_images: int = Field(
        20_000, ge=1, description="training images whose patches train the features (capped at the images loaded)"
    )


class TrainingParams(Params):
    epochs: int = Field(1, ge=0, le=1000, description="passes over the feature-training images")
    batch_size: int = Field(
        32,
        ge=1,
        le=65536,
        description="patches presented in parallel (STDP updates of a step summed over them; 1 = exact online rule)",
    )
    min_pixel_sum: float = Field(
        1.0,
        ge=0.0,
        description="skip patches whose pixel sum (pixels in [0,1]) is below this (Tavanaei skips blank ones)",
    )
    final_lr_fraction: float = Field(
        0.1, gt=0.0, le=1.0, description="learning rate decays linearly over training to this fraction (1: constant)"
    )


class ReadoutParams(Params):
    pool_grid: int = Field(4, ge=1, le=64, description="activity pooled over pool_grid^2 regions")
    epochs: int = Field(30, ge=1, le=10_000)
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0, description="Adam step size")
    batch_size: int = Field(256, ge=1)
    weight_decay: float = Field(0.0, ge=0.0)


class InferenceParams(Params):
    """How the frozen layer responds when features are applied to every patch position.

    Training uses strong winner-take-all inhibition so that one feature learns from each patch;
    a code with one spike per patch, however, discards most of what the features could say about
    the patch. At inference the same circuit (``layer.inhibition``) runs with these settings:
    by default weaker I->E inhibition (a soft competition in which the best-matching features fire
    most) and a stronger input current. STDP and threshold adaptation are off.
    """

    input_current_na: float | None = Field(3.0, gt=0.0, description="None: layer's value")
    w_ie_na: float | None = Field(3.0, ge=0.0, description="None: layer's value")
    deterministic_input: bool = Field(
        True, description="drive the layer with the expected input spikes (pixel * max_prob) instead of Bernoulli draws"
    )
    chunk_patches: int = Field(32768, ge=1, description="patches simulated at once (memory bound)")
    engine: Literal["numba", "torch"] = Field(
        "numba", description="numba: compiled loop for deterministic input (tested against the torch step)"
    )


class ReconstructionParams(Params):
    fit_images: int = Field(1000, ge=1, description="training images used to fit the scale")
    normalize: bool = Field(
        True,
        description="rebuild each patch as the count-weighted mean of the "
        "active features (True) or the count-weighted sum (False)",
    )
    n_show: int = Field(10, ge=1, le=100, description="test images drawn in the figure")


class EventSTDPExperimentParams(Params):
    """The whole experiment config (``configs/event_stdp.toml``)."""

    seed: int = Field(0, ge=0)
    data: DataParams = Field(default_factory=DataParams)
    # the experiment's choices where they depart from the building blocks' published defaults
    # (configs/event_stdp.toml holds the same values; tests/test_scaffold.py checks they agree)
    patches: PatchParams = Field(default_factory=lambda: PatchParams(count=8, stride_px=2))
    coding: RateCodingParams = Field(default_factory=RateCodingParams)
    layer: WTALayerParams = Field(default_factory=WTALayerParams)
    event_stdp: EventSTDPParams = Field(default_factory=lambda: EventSTDPParams(learning_rate=0.02, window_steps=2))
    training: TrainingParams = Field(default_factory=TrainingParams)
    readout: ReadoutParams = Field(default_factory=ReadoutParams)
    inference: InferenceParams = Field(default_factory=InferenceParams)
    reconstruction: ReconstructionParams = Field(default_factory=ReconstructionParams)

    @model_validator(mode="before")
    @classmethod
    def _derive_inputs(cls, data: Any) -> Any:
        # the layer's input count is the patch's pixel count: derived, never written twice
        if isinstance(data, dict):
            data = dict(data)
            patches = data.get("patches", {})
            size = patches.get("size_px", 7) if isinstance(patches, dict) else patches.size_px
            layer = data.get("layer", {})
            if isinstance(layer, dict):
                layer = dict(layer)
                if "n_inputs" in layer and layer["n_inputs"] != size * size:
                    raise ValueError(
                        f"layer.n_inputs = {layer['n_inputs']} must equal "
                        f"patches.size_px ** 2 = {size * size} (leave it out)"
                    )
                layer["n_inputs"] = size * size
                data["layer"] = layer
        return data

    @model_validator(mode="after")
    def _window(self) -> EventSTDPExperimentParams:
        if self.event_stdp.window_steps >= self.coding.steps:
            raise ValueError(
                f"event_stdp.window_steps = {self.event_stdp.window_steps} must be "
                f"shorter than the presentation (coding.steps = {self.coding.steps})"
            )
        if self.patches.count is None:
            raise ValueError("patches.count (random training patches per image) must be set")
        for name in ("excitatory", "inhibitory"):
            p = getattr(self.layer, name)
            if p.v_thresh_mv <= p.v_rest_mv:
                raise ValueError(
                    f"layer.{name}.v_thresh_mv = {p.v_thresh_mv} is not above layer.{name}.v_rest_mv = "
                    f"{p.v_rest_mv}: the neurons would fire at rest; use a threshold above the resting potential"
                )
        return self

    def inference_layer(self) -> WTALayerParams:
        """The layer parameters used for the frozen response (see :class:`InferenceParams`)."""
        changes = {
            k: v
            for k, v in (("input_current_na", self.inference.input_current_na), ("w_ie_na", self.inference.w_ie_na))
            if v is not None
        }
        return self.layer.replace(**changes)

    def feature_key(self) -> dict[str, Any]:
        """The part of the config that determines the learned features (for resuming)."""
        d = self.to_dict()
        return {k: d[k] for k in ("seed", "patches", "coding", "layer", "event_stdp", "training")} | {
            "feature_images": self.data.feature_images,
            "data_dir": self.data.data_dir,
        }


SPEC = ExperimentSpec(
    name="event-stdp",
    schema=EventSTDPExperimentParams,
    default_toml="event_stdp.toml",
    default_out="runs/event-stdp",
    seed_key="seed",
    # the stages after feature learning run again on every command: their settings may change
    continuable=("readout", "reconstruction", "inference", "data.test_limit"),
)

FLAGS = (
    Flag("--data-dir", "data.data_dir", str, "MNIST IDX directory (unset: $SPIKEFORGE_DATA, else the embedded subset)"),
    Flag("--train-limit", "data.train_limit", whole, "use the first N training images (unset: all)"),
    Flag("--test-limit", "data.test_limit", whole, "use the first N test images (unset: all)"),
    Flag("--feature-images", "data.feature_images", whole, "training images whose patches train the features"),
    Flag("--features", "layer.n_features", whole, "number of features (excitatory neurons)"),
    Flag("--inhibition", "layer.inhibition", str, "competition in the layer", choices=("ei", "k_winners", "none")),
    Flag("--patch-size", "patches.size_px", whole, "patch side in pixels"),
    Flag("--stride", "patches.stride_px", whole, "step between patches in pixels (< size overlaps)"),
    Flag("--patches-per-image", "patches.count", whole, "random training patches per image"),
    Flag("--steps", "coding.steps", whole, "simulation steps per patch"),
    Flag("--window", "event_stdp.window_steps", whole, "STDP window in steps"),
    Flag("--learning-rate", "event_stdp.learning_rate", number, "event-based STDP learning rate"),
    Flag("--epochs", "training.epochs", whole, "feature-training epochs"),
    Flag("--batch-size", "training.batch_size", whole, "patches presented in parallel during training"),
    Flag("--pool-grid", "readout.pool_grid", whole, "pool activity over an N x N grid of regions"),
    Flag("--readout-epochs", "readout.epochs", whole, "epochs of the linear readout's training"),
)
