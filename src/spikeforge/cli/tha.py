"""``spikeforge tha {mnist,fmnist,dvs-gesture,shd,spike-timing,evaluate}``: threshold annealing /
binarized SNN experiments."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from ..experiments.scaffold import add_arguments, check_device, parallel, positive_int, resolve_args, start
from ..experiments.tha.config import MNIST_FLAGS, MNIST_SPEC, SPIKE_TIMING_FLAGS, SPIKE_TIMING_SPEC, MnistConfig
from ..experiments.tha.dataset_config import (
    DVS_GESTURE_FLAGS,
    DVS_GESTURE_SPEC,
    FMNIST_FLAGS,
    FMNIST_SPEC,
    SHD_FLAGS,
    SHD_SPEC,
)

#: sub-command -> (spec, flags, what it trains, its data files)
DATASET_COMMANDS = {
    "fmnist": (
        FMNIST_SPEC,
        FMNIST_FLAGS,
        "the snn-tha MNIST conv SNN on Fashion-MNIST",
        "the four IDX files",
    ),
    "dvs-gesture": (
        DVS_GESTURE_SPEC,
        DVS_GESTURE_FLAGS,
        "the snn-tha conv SNN on DVS128 Gesture event frames",
        "tonic's DVSGesture/ibmGestureTrain|ibmGestureTest/userNN_*/LABEL.npy files",
    ),
    "shd": (SHD_SPEC, SHD_FLAGS, "the snn-tha 700-3000-20 SNN on SHD", "shd_train.h5 and shd_test.h5"),
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "tha",
        help="gradient-trained binarized SNNs with threshold annealing (snn-tha)",
        description="Experiments of Eshraghian & Lu 2022 (threshold annealing).",
    )
    sub = p.add_subparsers(dest="tha_command", metavar="EXPERIMENT")

    m = sub.add_parser(
        "mnist",
        help="train the snn-tha MNIST conv SNN (binarized/full precision, annealing on/off)",
        description="Train the snn-tha MNIST network, trial by trial; checkpoints every few iterations "
        "and resumes where it stopped (Ctrl-C saves at the next iteration).",
    )
    add_arguments(m, MNIST_SPEC, MNIST_FLAGS, device=True)
    parallel.add_nproc_argument(m, "tha mnist")
    m.set_defaults(func=_mnist)

    for name, (spec, flags, what, files) in DATASET_COMMANDS.items():
        d = sub.add_parser(
            name,
            help=f"train {what} (binarized/full precision, annealing on/off)",
            description=f"Train {what}, trial by trial, with the hyper-parameters of snn-tha's conf.py; data "
            f"read from --data-dir ({files}); checkpoints every few iterations and resumes where it stopped.",
        )
        add_arguments(d, spec, flags, device=True)
        parallel.add_nproc_argument(d, f"tha {name}")
        d.set_defaults(func=partial(_dataset, command=name))  # picklable: the launcher sends args to its workers

    s = sub.add_parser(
        "spike-timing",
        help="section-4 task: train one output neuron to fire at step 75 (4 cases)",
        description="Train the 100-1000-1 network's output membrane to ramp to threshold at step 75, "
        "in four cases (full precision, binarized theta 1 and 50, binarized annealed 5 -> 50).",
    )
    add_arguments(s, SPIKE_TIMING_SPEC, SPIKE_TIMING_FLAGS)
    s.set_defaults(func=_spike_timing)

    e = sub.add_parser(
        "evaluate",
        help="accuracy of a tha mnist/fmnist/dvs-gesture/shd checkpoint on the validation split and the test set",
        description="Accuracy of a 'tha mnist' (fmnist, dvs-gesture, shd) checkpoint with the config stored in it.",
    )
    e.add_argument("checkpoint", help="checkpoint prefix, e.g. runs/tha_mnist/trial0/best")
    e.add_argument("--data-dir", help="data directory (default: the one in the checkpoint's config)")
    e.add_argument(
        "--split", choices=("val", "test", "both"), default="both", help="which split to score (default: both)"
    )
    e.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default: 1)")
    e.set_defaults(func=_evaluate)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _evaluate(args) -> int:
    from ..experiments.tha.tasks import evaluate_checkpoint

    splits = ("val", "test") if args.split == "both" else (args.split,)
    res = evaluate_checkpoint(args.checkpoint, args.data_dir, splits, args.threads)
    print(json.dumps(res, indent=2))
    return 0


def _dataset(args, command: str) -> int:
    """``tha fmnist`` / ``dvs-gesture`` / ``shd``: one process, or data-parallel as ``tha mnist``."""
    from ..experiments.tha import distributed
    from ..experiments.tha.tasks import train_task

    if args.init_from:
        args.init_from = str(Path(args.init_from).resolve())
    spec = DATASET_COMMANDS[command][0]
    # partials of module-level functions: the launcher pickles the job for its workers
    job = parallel.Job(
        start=partial(_start_dataset, command),
        train=partial(train_task, spec.name),
        report=_report_mnist,
        schema=spec.schema,
        batch_key="train.batch_size",
        hooks=distributed.DataParallel,
        preflight=partial(_preflight_dataset, command),
    )
    return parallel.run_command(args, job)


def _start_dataset(command: str, args):
    spec, flags, *_ = DATASET_COMMANDS[command]
    return start(spec, args, flags)


def _preflight_dataset(command: str, args) -> int:
    spec, flags, *_ = DATASET_COMMANDS[command]
    return _checked_batch_size(resolve_args(spec, args, flags))


def _mnist(args) -> int:
    from ..experiments.tha import distributed, train_mnist_in

    if args.init_from:
        args.init_from = str(Path(args.init_from).resolve())
    job = parallel.Job(
        start=_start_mnist,
        train=train_mnist_in,
        report=_report_mnist,
        schema=MnistConfig,
        batch_key="train.batch_size",
        hooks=distributed.DataParallel,
        preflight=_preflight,
    )
    return parallel.run_command(args, job)


def _start_mnist(args):
    return start(MNIST_SPEC, args, MNIST_FLAGS)


def _preflight(args) -> int:
    """The training batch size the run in ``args.out`` will use (resolved as :func:`start` does),
    after checking its device: bad input is refused before any worker starts."""
    cfg = resolve_args(MNIST_SPEC, args, MNIST_FLAGS)
    assert isinstance(cfg, MnistConfig)
    return _checked_batch_size(cfg)


def _checked_batch_size(cfg) -> int:
    check_device(cfg.run.device)
    return cfg.train.batch_size


def _report_mnist(rd, res: dict) -> None:
    s = res["summary"]
    acc = s["test_acc_at_best_val_mean"]
    out = rd.path
    print(
        f"test accuracy at best validation epoch: {100 * acc:.2f} % (mean of {s['num_trials']} trial(s)); "
        f"results in {out / 'results.json'}"
        if acc is not None
        else f"results in {out / 'results.json'}"
    )


def _spike_timing(args) -> int:
    from ..experiments.tha import run_spike_timing_in

    rd = start(SPIKE_TIMING_SPEC, args, SPIKE_TIMING_FLAGS)
    if rd is None:
        return 0
    with rd:
        res = run_spike_timing_in(rd, print if not args.quiet else rd.log)
    print(f"results in {rd.path / 'results.json'}")
    for name, r in res["cases"].items():
        print(
            f"  {name:30s} final loss {r['final_loss']:.4g}  /peak^2 {r['final_loss_normalised']:.4g}  "
            f"output spikes {r['final_output_spike_times']}"
        )
    return 0
