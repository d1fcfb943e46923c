"""Networks to export, loaded from what spikeforge commands leave behind (run directories, checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import ConfigError
from ..io.checkpoint import checkpoint_exists


def resolve_checkpoint(source: str | os.PathLike) -> Path:
    """A checkpoint prefix from a run directory (its ``trial0/best``, else ``trial0/last``), a trial
    directory (``best``/``last``), a prefix, or a ``.safetensors`` file."""
    p = Path(source)
    if p.suffix == ".safetensors":
        p = p.with_suffix("")
        if p.suffix == ".prev":
            p = p.with_suffix("")
    if p.is_dir():
        for cand in ("trial0/best", "trial0/last", "best", "last"):
            if checkpoint_exists(p / cand):
                return p / cand
        raise ConfigError(
            f"{source} holds no checkpoint (looked for trial0/best, trial0/last, best, last): give a "
            "`spikeforge tha mnist` run directory or a checkpoint such as RUN/trial0/best"
        )
    if not checkpoint_exists(p):
        raise FileNotFoundError(f"no checkpoint {p}.safetensors (nor a run directory {p})")
    return p


def load_model(source: str | os.PathLike):
    """``(model, description)``: the network stored in a ``spikeforge tha mnist`` run or checkpoint,
    in evaluation mode."""
    from ..experiments.tha.config import MnistConfig
    from ..experiments.tha.mnist import load_tensors
    from ..models.tha_nets import THAMnistNet

    prefix = resolve_checkpoint(source)
    tensors, meta = load_tensors(prefix)
    cfg = meta.get("config")
    if not isinstance(cfg, dict) or "model" not in cfg or not any(k.startswith("model.") for k in tensors):
        raise ConfigError(
            f"{prefix} is not a checkpoint of a `spikeforge tha mnist` run (written by "
            f"{meta.get('experiment') or 'another command'}); only THA MNIST networks are exported from checkpoints"
        )
    net = THAMnistNet(MnistConfig.from_dict(cfg).model)
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    net.eval()
    return net, str(prefix)
