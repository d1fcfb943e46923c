"""The training loop every ``tha`` classification experiment shares (``tha mnist``, ``tha fmnist``,
``tha dvs-gesture``, ``tha shd``): trial by trial, the snn-tha optimisation (reference §1.3) with
per-iteration threshold annealing, a validation split that selects the best epoch, checkpoints
every few iterations and an exact resume. What differs between the experiments is a
:class:`THATask`: its spec, its network and its data splits.

A split is ``(X, Y)``: ``Y`` the labels (an int64 tensor), ``X`` either a tensor of inputs (the
rows are the examples) or an :class:`~spikeforge.data.events.EventSet`, whose rows are binned into
frames only when a batch asks for them (:func:`rows`), so an event data set never sits in memory as
frames."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...config import ConfigError
from ...evaluation.spike_losses import count_cross_entropy, spike_count_mse, spike_count_predictions
from ...io import load_checkpoint
from ...io.state import flatten_state, unflatten_state
from ...plasticity.threshold_annealing import ThresholdAnnealing
from ...plotting.figures import plot_curves
from ...synapses.binarized import clamp_binary_weights_
from ..scaffold import ExperimentSpec, InterruptedAtBoundary, RunDir
from .distributed import SINGLE, SingleProcess

Split = tuple[Any, torch.Tensor]


@dataclass(frozen=True)
class THATask:
    """One ``tha`` classification experiment: ``spec`` (its config schema, TOML, run directory),
    ``build_net(cfg)`` (a module with ``lif_layers`` that maps a batch of inputs to output spikes
    and membrane ``[B, T, classes]``), ``load_splits(cfg)`` (train, validation, test) and
    ``describe_data(cfg)`` (where the data comes from, for the log)."""

    spec: ExperimentSpec
    build_net: Callable[[Any], nn.Module]
    load_splits: Callable[[Any], tuple[Split, Split, Split]]
    describe_data: Callable[[Any], str]

    @property
    def experiment(self) -> str:
        """The command, e.g. ``tha dvs-gesture`` for the spec ``tha-dvs-gesture``."""
        return self.spec.name.replace("-", " ", 1)


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """A checkpoint's arrays as torch tensors, and its metadata."""
    arrays, meta = load_checkpoint(path)
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, meta


def rows(X: Any, idx: torch.Tensor | slice) -> torch.Tensor:
    """The inputs of the examples ``idx`` of ``X`` as a tensor (event rows binned into frames)."""
    part = X[idx]
    return part.frames() if hasattr(part, "frames") else part


def holdout(n: int, val_size: int, what: str = "training examples") -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, validation)`` indices of ``n`` examples: the validation split is the last
    ``val_size`` of a fixed seeded permutation (independent of the trial seed)."""
    if val_size >= n:
        raise ConfigError(
            f"data.val_size = {val_size} leaves no training data (only {n} {what}); lower data.val_size "
            "or raise data.train_limit"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(12345))
    return perm[: n - val_size], perm[n - val_size :]


def make_optimizer(train: Any, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """Adam (``train.lr``, ``train.betas``) or, for ``train.optimizer = "sgd"``, SGD with
    ``train.momentum`` (snn-tha fmnist/conf.py)."""
    if getattr(train, "optimizer", "adam") == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum)
    return torch.optim.Adam(params, lr=train.lr, betas=train.betas)


def update(train: Any, net: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """snn-tha's update of one batch: backward, gradient clipping to norm ``train.grad_clip`` (if
    set), the optimizer step, and (``train.weight_clip``) the latent binarized weights clamped to [-1, 1]."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if train.grad_clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), train.grad_clip)
    opt.step()
    if train.weight_clip:
        clamp_binary_weights_(net, every=True)


@torch.no_grad()
def evaluate(net: nn.Module, X: Any, Y: torch.Tensor, batch_size: int) -> float:
    """Spike-count accuracy of ``net`` on ``(X, Y)``, ``batch_size`` examples at a time."""
    was = net.training
    net.eval()
    ref = next(net.parameters())
    correct = 0
    for i in range(0, X.shape[0], batch_size):
        s, _ = net(rows(X, slice(i, i + batch_size)).to(ref))
        correct += int((spike_count_predictions(s) == Y[i : i + batch_size].to(s.device)).sum())
    net.train(was)
    return correct / max(X.shape[0], 1)


def _loss_fn(cfg: Any) -> Callable:
    t = cfg.train
    if t.loss == "mse_count":
        return lambda s, y: spike_count_mse(s, y, t.correct_rate, t.incorrect_rate)
    return count_cross_entropy


def config_identity(cfg: Any) -> dict:
    """The part of the config a checkpoint must match to be resumed (not run length/logging)."""
    d = cfg.to_dict()
    for k in ("epochs", "threads", "device", "dtype", "checkpoint_every", "log_every", "trials", "patience"):
        d["run"].pop(k, None)
    return d


def train_in(task: THATask, rd: RunDir, log: Callable[[str], None] | None = None, dp: SingleProcess = SINGLE) -> dict:
    """``task`` in an opened run directory (``rd.cfg`` is its config): every trial; returns (and
    writes) ``results.json``. ``dp``: the data-parallel hooks of this rank (see :mod:`.distributed`)."""
    cfg: Any = rd.cfg
    log = log or rd.log
    torch.set_num_threads(cfg.run.threads)
    log(f"loading {task.describe_data(cfg)}")
    train, val, test = task.load_splits(cfg)
    log(f"train {train[0].shape[0]}, validation {val[0].shape[0]} (from the training set), test {test[0].shape[0]}")
    trials: list[dict] = []
    for trial in range(cfg.run.trials):

        def on_epoch(partial: dict, done=list(trials)) -> None:  # noqa: B006 (binds the list)
            _write_results(task, rd, done + [partial])

        trials.append(_train_trial(task, rd, trial, train, val, test, log, on_epoch, dp))
        _write_results(task, rd, trials)
    return _write_results(task, rd, trials)


def _write_results(task: THATask, rd: RunDir, trials: list[dict]) -> dict:
    cfg: Any = rd.cfg
    tests = [t["test_acc_at_best_val"] for t in trials if t.get("test_acc_at_best_val") is not None]
    res = {
        "experiment": task.experiment,
        "binarize": cfg.model.binarize,
        "anneal": cfg.anneal.enabled,
        "trials": trials,
        "summary": {
            "num_trials": len(trials),
            "test_acc_at_best_val_mean": float(np.mean(tests)) if tests else None,
            "test_acc_at_best_val_std": float(np.std(tests)) if tests else None,
            "all_trials_finished": all(t["finished"] for t in trials),
        },
    }
    return rd.write_results(res, engine="torch")


def _train_trial(
    task: THATask,
    rd: RunDir,
    trial: int,
    train,
    val,
    test,
    log: Callable[[str], None],
    on_epoch: Callable[[dict], None] | None = None,
    dp: SingleProcess = SINGLE,
) -> dict:
    cfg: Any = rd.cfg
    tdir = rd.path / f"trial{trial}"
    last, best = f"trial{trial}/last", f"trial{trial}/best"
    seed = cfg.run.seed + trial
    torch.manual_seed(seed)
    net: Any = task.build_net(cfg)
    dtype, device = getattr(torch, cfg.run.dtype), dp.device_of(cfg.run.device)
    if dtype != torch.float32 or device.type != "cpu":
        net = net.to(device, dtype)
    net.train()
    opt = make_optimizer(cfg.train, net.parameters())
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.train.t_max_iterations, eta_min=cfg.train.eta_min)
    resuming = rd.has_checkpoint(last)
    if cfg.run.init_from and not resuming and dp.is_main:
        src, _ = load_tensors(cfg.run.init_from)
        weights = {k[6:]: v for k, v in src.items() if k.startswith("model.")}
        own = net.state_dict()
        bad = [
            f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
            for k, v in weights.items()
            if k in own and tuple(v.shape) != tuple(own[k].shape)
        ]
        missing = sorted(set(own) - set(weights))
        if bad or missing:
            raise ConfigError(
                f"run.init_from = {cfg.run.init_from} does not fit this network "
                f"(shape mismatches: {bad or 'none'}; missing: {missing or 'none'}); "
                "use a checkpoint of the same model configuration"
            )
        net.load_state_dict(weights)
        log(
            f"trial {trial}: initialised from {cfg.run.init_from} (thresholds "
            f"{[round(float(l.threshold), 4) for l in net.lif_layers]})"
        )
    annealer = (
        ThresholdAnnealing(net.lif_layers, cfg.anneal_params(), reset=not cfg.run.init_from)
        if cfg.anneal.enabled
        else None
    )
    loss_fn = _loss_fn(cfg)
    Xtr, Ytr = train
    n_train = Xtr.shape[0]
    bs = cfg.train.batch_size
    its_per_epoch = math.ceil(n_train / bs)
    st: dict[str, Any] = {
        "epoch": 0,
        "batch": 0,
        "global_step": 0,
        "wall_s": 0.0,
        "train_s": 0.0,
        "best_val": -1.0,
        "best_epoch": None,
        "test_at_best": None,
        "epochs_since_best": 0,
        "hist": {"step": [], "loss": [], "lr": [], "thresholds": []},
        "epochs": [],
        "finished": False,
    }
    ident = config_identity(cfg)
    if resuming:
        tensors, meta = load_tensors(rd.path / last)
        if meta.get("identity") != ident:
            raise ConfigError(
                f"{last} was written with a different configuration; use another "
                "--out directory, or --fresh to start this one again"
            )
        net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt.load_state_dict(unflatten_state(meta["optimizer"], tensors))
        sched.load_state_dict(meta["scheduler"])
        if annealer is not None:
            annealer.load_state_dict(meta["annealer"])
        torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"].to(torch.uint8), device)
        st = meta["state"]
        if st["epoch"] > cfg.run.epochs:
            raise ConfigError(
                f"trial {trial} in {rd.path} has trained {st['epoch']} epochs, more than --epochs {cfg.run.epochs} "
                f"asks for: give --epochs {st['epoch']} or more, or use another --out (or --fresh) for a shorter run"
            )
        log(f"trial {trial}: resumed at epoch {st['epoch']} batch {st['batch']} (step {st['global_step']})")
        if st["finished"] and st["epoch"] < cfg.run.epochs:
            st["finished"] = False

    def save(name: str) -> None:
        tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
        tensors["rng.torch"] = torch.get_rng_state()
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        meta = {
            "identity": ident,
            "config": cfg.to_dict(),
            "trial": trial,
            "seed": seed,
            "optimizer": flatten_state(opt.state_dict(), "optim", tensors),
            "scheduler": sched.state_dict(),
            "annealer": annealer.state_dict() if annealer else None,
            "thresholds": [float(l.threshold) for l in net.lif_layers],
            "state": st,
        }
        rd.save_checkpoint(name, tensors, meta)

    def summary() -> dict:
        return _trial_summary(trial, seed, tdir, st, its_per_epoch, net)

    st = dp.sync_state(net, opt, sched, annealer, st)
    model = dp.wrap(net)
    t_start = time.time() - st["wall_s"]
    stop = st["finished"]
    while not stop and st["epoch"] < cfg.run.epochs:
        epoch = st["epoch"]
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        bar = rd.progress(
            its_per_epoch, initial=st["batch"], desc=f"trial {trial} epoch {epoch + 1}/{cfg.run.epochs}", unit="it"
        )
        t_epoch = time.time()
        with dp.interrupts(rd) as interrupts:
            try:
                while st["batch"] < its_per_epoch:
                    idx = dp.shard(net, perm[st["batch"] * bs : (st["batch"] + 1) * bs])
                    x, y = rows(Xtr, idx).to(device, dtype), Ytr[idx].to(device)
                    t0 = time.time()
                    s, _ = model(x)
                    loss = dp.scale(loss_fn(s, y))
                    update(cfg.train, net, opt, loss)
                    sched.step()
                    if annealer is not None:
                        annealer.step()
                    st["train_s"] += time.time() - t0
                    st["batch"] += 1
                    st["global_step"] += 1
                    lv = dp.loss_value(loss)
                    if not math.isfinite(lv):
                        raise RuntimeError(f"loss became {lv} at step {st['global_step']}; lower train.lr")
                    if st["global_step"] % cfg.run.log_every == 0 or st["batch"] == 1:
                        h = st["hist"]
                        h["step"].append(st["global_step"])
                        h["loss"].append(lv)
                        h["lr"].append(sched.get_last_lr()[0])
                        h["thresholds"].append([float(l.threshold) for l in net.lif_layers])
                    bar.set_postfix(loss=f"{lv:.3f}", thr="/".join(f"{float(l.threshold):.2f}" for l in net.lif_layers))
                    bar.update(1)
                    if st["global_step"] % cfg.run.checkpoint_every == 0 and st["batch"] < its_per_epoch:
                        st["wall_s"] = time.time() - t_start
                        save(last)
                    interrupts.check()  # Ctrl-C or a kill lands here, between iterations
            except InterruptedAtBoundary:  # at an iteration boundary: the saved state is exact
                st["wall_s"] = time.time() - t_start
                save(last)
                bar.close()
                raise
        bar.close()
        val_acc = dp.evaluate(evaluate, net, val[0], val[1], cfg.train.eval_batch_size)
        test_acc = dp.evaluate(evaluate, net, test[0], test[1], cfg.train.eval_batch_size)
        st["epoch"] += 1
        st["batch"] = 0
        st["wall_s"] = time.time() - t_start
        rec = {
            "epoch": st["epoch"],
            "val_acc": val_acc,
            "test_acc": test_acc,
            "epoch_s": time.time() - t_epoch,
            "wall_s": st["wall_s"],
            "thresholds": [float(l.threshold) for l in net.lif_layers],
        }
        st["epochs"].append(rec)
        improved = val_acc > st["best_val"]
        if improved:
            st["best_val"], st["best_epoch"], st["test_at_best"] = val_acc, st["epoch"], test_acc
            st["epochs_since_best"] = 0
        else:
            st["epochs_since_best"] += 1
        log(
            f"trial {trial} epoch {st['epoch']}: val {val_acc:.4f} test {test_acc:.4f} "
            f"(best val {st['best_val']:.4f} at epoch {st['best_epoch']}), "
            f"thresholds {rec['thresholds']}, {rec['epoch_s']:.0f} s"
        )
        if cfg.run.patience and st["epochs_since_best"] >= cfg.run.patience:
            log(f"trial {trial}: early stop (no validation gain for {cfg.run.patience} epochs)")
            stop = True
        st["finished"] = stop or st["epoch"] >= cfg.run.epochs
        if improved:
            save(best)
        save(last)
        if dp.is_main:
            _plot_trial(tdir, st)
        if on_epoch is not None:
            on_epoch(summary())
    return summary()


def _trial_summary(trial, seed, tdir, st, its_per_epoch, net) -> dict:
    its = st["global_step"]
    return {
        "trial": trial,
        "seed": seed,
        "epochs_done": st["epoch"],
        "iterations": its,
        "iterations_per_epoch": its_per_epoch,
        "finished": st["finished"],
        "best_val_acc": st["best_val"] if st["best_val"] >= 0 else None,
        "best_epoch": st["best_epoch"],
        "test_acc_at_best_val": st["test_at_best"],
        "final_test_acc": st["epochs"][-1]["test_acc"] if st["epochs"] else None,
        "wall_s": st["wall_s"],
        "train_s": st["train_s"],
        "train_iterations_per_s": its / st["train_s"] if st["train_s"] > 0 else None,
        "final_thresholds": [float(l.threshold) for l in net.lif_layers],
        "epochs": st["epochs"],
        "checkpoint_best": str(tdir / "best"),
        "checkpoint_last": str(tdir / "last"),
    }


def _plot_trial(tdir: Path, st: dict) -> None:
    """Loss, thresholds and accuracy curves of a trial (readable at any length: the figures mark
    few points and thin out many)."""
    h = st["hist"]
    if h["step"]:
        plot_curves(
            {"training loss": h["loss"]},
            tdir / "loss.png",
            "iteration",
            "loss (spike-count MSE / T)",
            x=h["step"],
            logy=True,
        )
        thr = np.asarray(h["thresholds"])
        plot_curves(
            {f"layer {i + 1}": thr[:, i].tolist() for i in range(thr.shape[1])},
            tdir / "thresholds.png",
            "iteration",
            "threshold (membrane units)",
            x=h["step"],
        )
    if st["epochs"]:
        ep = [e["epoch"] for e in st["epochs"]]
        plot_curves(
            {
                "validation": [100 * e["val_acc"] for e in st["epochs"]],
                "test": [100 * e["test_acc"] for e in st["epochs"]],
            },
            tdir / "accuracy.png",
            "epoch",
            "accuracy (%)",
            x=ep,
        )
