"""``spikeforge tha {mnist,spike-timing}``: threshold annealing / binarized SNN experiments."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from .argtypes import positive_int as _pos_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "tha",
        help="gradient-trained binarized SNNs with threshold annealing (snn-tha)",
        description="Experiments of Eshraghian & Lu 2022 (threshold annealing).",
    )
    sub = p.add_subparsers(dest="tha_command", metavar="EXPERIMENT")

    m = sub.add_parser("mnist", help="train the snn-tha MNIST conv SNN (binarized/full precision, annealing on/off)")
    m.add_argument("--config", help="TOML config (default: the packaged configs/tha_mnist.toml)")
    m.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config field, e.g. --set train.lr=5e-3 (repeatable)",
    )
    m.add_argument("--out", help="run directory (default: run.out_dir)")
    m.add_argument("--data-dir", help="MNIST IDX directory (default: $SPIKEFORGE_DATA, else the embedded subset)")
    m.add_argument(
        "--binarize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="binarized weights (default) or full precision",
    )
    m.add_argument(
        "--anneal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="threshold annealing on (default) or off (thresholds stay at their initial values)",
    )
    m.add_argument("--epochs", type=_pos_int)
    m.add_argument("--trials", type=_pos_int)
    m.add_argument("--seed", type=int)
    m.add_argument("--threads", type=_pos_int, help="torch CPU threads (default 1)")
    m.add_argument("--train-limit", type=_pos_int, help="use only the first N training images")
    m.add_argument("--test-limit", type=_pos_int, help="use only the first N test images")
    m.add_argument("--val-size", type=_pos_int, help="validation images held out from the training set")
    m.add_argument("--num-steps", type=_pos_int, help="time steps (default 100)")
    m.add_argument("--batch-size", type=_pos_int)
    m.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from another run's checkpoint (e.g. RUN/trial0/best): weights, batch norm, "
        "thresholds; fresh optimizer and LR schedule",
    )
    m.add_argument("--fresh", action="store_true", help="delete the run directory's checkpoints and start again")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    m.set_defaults(func=_mnist)

    s = sub.add_parser("spike-timing", help="section-4 task: train one output neuron to fire at step 75 (4 cases)")
    s.add_argument("--config", help="TOML config (default: configs/tha_spike_timing.toml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--out", help="run directory (default: out_dir)")
    s.add_argument("--iterations", type=_pos_int)
    s.add_argument("--hidden", type=_pos_int, help="hidden neurons (default 1000)")
    s.add_argument("--seed", type=int)
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--show-config", action="store_true")
    s.set_defaults(func=_spike_timing)
    e = sub.add_parser("evaluate", help="accuracy of a 'tha mnist' checkpoint on the validation split and the test set")
    e.add_argument("checkpoint", help="checkpoint prefix, e.g. runs/tha_mnist/trial0/best")
    e.add_argument("--data-dir", help="MNIST IDX directory (default: the one in the checkpoint's config)")
    e.add_argument("--split", choices=("val", "test", "both"), default="both")
    e.add_argument("--threads", type=_pos_int, default=1)
    e.set_defaults(func=_evaluate)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _evaluate(args) -> int:
    from ..experiments.tha import evaluate_checkpoint

    splits = ("val", "test") if args.split == "both" else (args.split,)
    res = evaluate_checkpoint(args.checkpoint, args.data_dir, splits, args.threads)
    print(json.dumps(res, indent=2))
    return 0


def _mnist(args) -> int:
    from ..experiments.tha import load_config, train_mnist

    sets = list(args.set)
    flags = {
        "binarize": "model.binarize",
        "anneal": "anneal.enabled",
        "epochs": "run.epochs",
        "trials": "run.trials",
        "seed": "run.seed",
        "threads": "run.threads",
        "train_limit": "data.train_limit",
        "test_limit": "data.test_limit",
        "val_size": "data.val_size",
        "num_steps": "model.num_steps",
        "batch_size": "train.batch_size",
    }
    for attr, key in flags.items():
        v = getattr(args, attr)
        if v is not None:
            sets.append(f"{key}={json.dumps(v)}")
    if args.init_from:
        sets.append(f"run.init_from={json.dumps(str(Path(args.init_from).resolve()))}")
    if args.data_dir:
        sets.append(f"data.data_dir={json.dumps(args.data_dir)}")
    if args.quiet:
        sets.append("run.progress=false")
    cfg = load_config("mnist", args.config, sets)
    if args.show_config:
        print(cfg.to_json())
        return 0
    out = Path(args.out or cfg.run.out_dir)
    if args.fresh and out.exists():
        for d in out.glob("trial*"):
            shutil.rmtree(d)
    res = train_mnist(cfg, out)
    s = res["summary"]
    acc = s["test_acc_at_best_val_mean"]
    print(
        f"test accuracy at best validation epoch: {100 * acc:.2f} % (mean of {s['num_trials']} trial(s)); "
        f"results in {out / 'results.json'}"
        if acc is not None
        else f"results in {out / 'results.json'}"
    )
    return 0


def _spike_timing(args) -> int:
    from ..experiments.tha import load_config, run_spike_timing

    sets = list(args.set)
    for attr, key in {"iterations": "iterations", "hidden": "num_hidden", "seed": "seed"}.items():
        v = getattr(args, attr)
        if v is not None:
            sets.append(f"{key}={v}")
    cfg = load_config("spike_timing", args.config, sets)
    if args.show_config:
        print(cfg.to_json())
        return 0
    out = Path(args.out or cfg.out_dir)
    res = run_spike_timing(cfg, out, progress=not args.quiet)
    print(f"results in {out / 'results.json'}")
    for name, r in res["cases"].items():
        print(
            f"  {name:30s} final loss {r['final_loss']:.4g}  /peak^2 {r['final_loss_normalised']:.4g}  "
            f"output spikes {r['final_output_spike_times']}"
        )
    return 0
