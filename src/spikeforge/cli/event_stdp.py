"""``spikeforge event-stdp run``: event-based STDP features on MNIST patches (Tavanaei et al. 2018),
evaluated by reconstruction and by a linear readout."""

from __future__ import annotations

import json

from .argtypes import number as _float
from .argtypes import positive_int as _positive_int
from .argtypes import whole as _int

# flag -> config field; values are validated by the config (so the error names the field and range)
_FIELDS = {
    "data_dir": "data.data_dir",
    "train_limit": "data.train_limit",
    "test_limit": "data.test_limit",
    "feature_images": "data.feature_images",
    "seed": "seed",
    "features": "layer.n_features",
    "inhibition": "layer.inhibition",
    "patch_size": "patches.size_px",
    "stride": "patches.stride_px",
    "patches_per_image": "patches.count",
    "steps": "coding.steps",
    "window": "event_stdp.window_steps",
    "learning_rate": "event_stdp.learning_rate",
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "pool_grid": "readout.pool_grid",
    "readout_epochs": "readout.epochs",
}


def add_parser(subparsers) -> None:
    top = subparsers.add_parser(
        "event-stdp",
        help="event-based STDP features on image patches (Tavanaei et al. 2018)",
        description="Learn features from MNIST patches with postsynaptic event-based STDP in a "
        "winner-take-all LIF layer, then reconstruct test images and train a linear readout.",
    )
    sub = top.add_subparsers(dest="event_stdp_command", metavar="STAGE")
    p = sub.add_parser(
        "run",
        help="learn features, reconstruct, train and test a linear readout",
        description="Writes results.json, config.toml, features/checkpoint files and "
        "figures to --out; an interrupted run resumes its feature training.",
    )
    p.add_argument("--out", default="runs/event-stdp", help="run directory (default: runs/event-stdp)")
    p.add_argument("--config", help="TOML file overriding configs/event_stdp.toml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set layer.w_ie_na=30 (repeatable)",
    )
    p.add_argument(
        "--data-dir", help="MNIST IDX directory (default: $SPIKEFORGE_DATA, else the embedded 3000/1000 subset)"
    )
    p.add_argument("--train-limit", type=_int, help="use the first N training images (default all)")
    p.add_argument("--test-limit", type=_int, help="use the first N test images (default all)")
    p.add_argument("--feature-images", type=_int, help="training images whose patches train the features")
    p.add_argument("--seed", type=_int)
    p.add_argument("--features", type=_int, help="number of features (excitatory neurons)")
    p.add_argument("--inhibition", choices=("ei", "k_winners", "none"))
    p.add_argument("--patch-size", type=_int, help="patch side in pixels")
    p.add_argument("--stride", type=_int, help="step between patches in pixels (< size overlaps)")
    p.add_argument("--patches-per-image", type=_int, help="random training patches per image")
    p.add_argument("--steps", type=_int, help="simulation steps per patch")
    p.add_argument("--window", type=_int, help="STDP window in steps")
    p.add_argument("--learning-rate", type=_float, help="event-based STDP learning rate")
    p.add_argument("--epochs", type=_int, help="feature-training epochs")
    p.add_argument("--batch-size", type=_int, help="patches presented in parallel during training")
    p.add_argument("--pool-grid", type=_int, help="pool activity over an N x N grid of regions")
    p.add_argument("--readout-epochs", type=_int)
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run)
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])


def _run(args) -> int:
    from ..experiments.event_stdp import load_config, run

    fields = {_FIELDS[k]: getattr(args, k) for k in _FIELDS if getattr(args, k) is not None}
    cfg = load_config(args.config, args.set, fields)
    results = run(cfg, args.out, quiet=args.quiet, threads=args.threads)
    summary = {
        k: results[k]
        for k in (
            "accuracy",
            "reconstruction_mse",
            "reconstruction_mse_random",
            "features",
            "patch_size",
            "stride",
            "train_seconds",
        )
    }
    print(json.dumps(summary, indent=2))
    return 0
