"""``spikeforge tha mnist``: the snn-tha MNIST network trained with surrogate gradients and
threshold annealing, trial by trial, checkpointed and resumable (see :mod:`spikeforge.experiments.tha`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ...config import ConfigError
from ...evaluation.spike_losses import count_cross_entropy, spike_count_mse, spike_count_predictions
from ...io import load_checkpoint
from ...io.state import flatten_state, unflatten_state
from ...models.tha_nets import THAMnistNet
from ...plasticity.threshold_annealing import ThresholdAnnealing
from ...plotting.figures import plot_curves
from ...synapses.binarized import clamp_binary_weights_
from ..scaffold import InterruptedAtBoundary, RunDir
from .config import MNIST_SPEC, MnistConfig
from .distributed import SINGLE, SingleProcess


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """A checkpoint's arrays as torch tensors, and its metadata."""
    arrays, meta = load_checkpoint(path)
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, meta


def _images_to_tensor(images: np.ndarray, normalize: bool) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0).unsqueeze(1)
    if normalize:
        x = (x - 0.1307) / 0.3081
    return x


def _load_mnist_splits(cfg: MnistConfig):
    from ...data import load_dataset

    d = cfg.data
    tr_x, tr_y = load_dataset(d.data_dir, "train", d.train_limit)
    te_x, te_y = load_dataset(d.data_dir, "test", d.test_limit)
    n = tr_x.shape[0]
    if d.val_size >= n:
        raise ConfigError(
            f"data.val_size = {d.val_size} leaves no training data (only {n} "
            "training images); lower data.val_size or raise data.train_limit"
        )
    # fixed split (independent of the trial seed): the last val_size images of a seeded permutation
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(12345))
    val_idx, train_idx = perm[n - d.val_size :], perm[: n - d.val_size]
    X = _images_to_tensor(tr_x, d.normalize)
    Y = torch.from_numpy(np.asarray(tr_y, dtype=np.int64))
    return (
        (X[train_idx], Y[train_idx]),
        (X[val_idx], Y[val_idx]),
        (_images_to_tensor(te_x, d.normalize), torch.from_numpy(np.asarray(te_y, dtype=np.int64))),
    )


@torch.no_grad()
def evaluate(net: THAMnistNet, X: torch.Tensor, Y: torch.Tensor, batch_size: int) -> float:
    was = net.training
    net.eval()
    correct = 0
    for i in range(0, X.shape[0], batch_size):
        s, _ = net(X[i : i + batch_size].to(net.fc.weight))
        correct += int((spike_count_predictions(s) == Y[i : i + batch_size].to(s.device)).sum())
    net.train(was)
    return correct / max(X.shape[0], 1)


def _loss_fn(cfg: MnistConfig) -> Callable:
    t = cfg.train
    if t.loss == "mse_count":
        return lambda s, y: spike_count_mse(s, y, t.correct_rate, t.incorrect_rate)
    return count_cross_entropy


def evaluate_checkpoint(
    path: str | os.PathLike, data_dir: str | None = None, splits: tuple[str, ...] = ("val", "test"), threads: int = 1
) -> dict:
    """Accuracy of a ``tha mnist`` checkpoint on the validation split and/or the test set, with the
    configuration stored in the checkpoint (``data_dir`` overrides where MNIST is read from)."""
    torch.set_num_threads(threads)
    tensors, meta = load_tensors(path)
    if not isinstance(meta.get("config"), dict) or "identity" not in meta:
        raise ConfigError(
            f"{path} is not a 'tha mnist' checkpoint (it was written by "
            f"{meta.get('experiment') or 'another command'}): give RUN/trialK/best or RUN/trialK/last of a "
            "`spikeforge tha mnist` run"
        )
    cfg = MnistConfig.from_dict(meta["config"])
    if data_dir is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"data_dir": data_dir})})
    net = THAMnistNet(cfg.model)
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    _, val, test = _load_mnist_splits(cfg)
    out = {
        "checkpoint": str(path),
        "global_step": meta.get("state", {}).get("global_step"),
        "epochs_done": meta.get("state", {}).get("epoch"),
        "thresholds": [float(l.threshold) for l in net.lif_layers],
    }
    for name, (X, Y) in (("val", val), ("test", test)):
        if name in splits:
            out[f"{name}_acc"] = evaluate(net, X, Y, cfg.train.eval_batch_size)
            out[f"{name}_size"] = int(X.shape[0])
    return out


def _config_identity(cfg: MnistConfig) -> dict:
    """The part of the config a checkpoint must match to be resumed (not run length/logging)."""
    d = cfg.to_dict()
    for k in ("epochs", "threads", "device", "dtype", "checkpoint_every", "log_every", "trials", "patience"):
        d["run"].pop(k, None)
    return d


def train_mnist(
    cfg: MnistConfig, out_dir: str | os.PathLike | None = None, resume: bool = True, log: Callable[[str], None] = print
) -> dict:
    """Run every trial of the MNIST experiment in the run directory ``out_dir`` (opened and locked
    here; ``resume=False`` starts it again); returns (and writes) ``results.json``."""
    rd = RunDir(out_dir or MNIST_SPEC.default_out, MNIST_SPEC)
    if resume:
        rd.saved()
    with rd.open(cfg, fresh=not resume):
        return train_mnist_in(rd, log)


def train_mnist_in(rd: RunDir, log: Callable[[str], None] | None = None, dp: SingleProcess = SINGLE) -> dict:
    """The MNIST experiment in an opened run directory (``rd.cfg`` is its config); ``dp``: the
    data-parallel hooks of this rank (see :mod:`.distributed`)."""
    cfg = rd.cfg
    assert isinstance(cfg, MnistConfig)
    log = log or rd.log
    torch.set_num_threads(cfg.run.threads)
    log(f"loading MNIST ({cfg.data.data_dir or os.environ.get('SPIKEFORGE_DATA') or 'embedded subset'})")
    train, val, test = _load_mnist_splits(cfg)
    log(f"train {train[0].shape[0]}, validation {val[0].shape[0]} (from the training set), test {test[0].shape[0]}")
    trials: list[dict] = []
    for trial in range(cfg.run.trials):

        def on_epoch(partial: dict, done=list(trials)) -> None:  # noqa: B006 (binds the list)
            _write_results(rd, done + [partial])

        trials.append(_train_trial(rd, trial, train, val, test, log, on_epoch, dp))
        _write_results(rd, trials)
    return _write_results(rd, trials)


def _write_results(rd: RunDir, trials: list[dict]) -> dict:
    cfg = rd.cfg
    assert isinstance(cfg, MnistConfig)
    tests = [t["test_acc_at_best_val"] for t in trials if t.get("test_acc_at_best_val") is not None]
    res = {
        "experiment": "tha mnist",
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
    rd: RunDir,
    trial: int,
    train,
    val,
    test,
    log: Callable[[str], None],
    on_epoch: Callable[[dict], None] | None = None,
    dp: SingleProcess = SINGLE,
) -> dict:
    cfg = rd.cfg
    assert isinstance(cfg, MnistConfig)
    tdir = rd.path / f"trial{trial}"
    last, best = f"trial{trial}/last", f"trial{trial}/best"
    seed = cfg.run.seed + trial
    torch.manual_seed(seed)
    net = THAMnistNet(cfg.model)
    dtype, device = getattr(torch, cfg.run.dtype), dp.device_of(cfg.run.device)
    if dtype != torch.float32 or device.type != "cpu":
        net = net.to(device, dtype)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr, betas=cfg.train.betas)
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
    st = {
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
    ident = _config_identity(cfg)
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
                    x, y = Xtr[idx].to(device, dtype), Ytr[idx].to(device)
                    t0 = time.time()
                    s, _ = model(x)
                    loss = dp.scale(loss_fn(s, y))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.train.grad_clip:
                        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.train.grad_clip)
                    opt.step()
                    if cfg.train.weight_clip:
                        clamp_binary_weights_(net)
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
        val_acc = dp.evaluate(evaluate, net, *val, cfg.train.eval_batch_size)
        test_acc = dp.evaluate(evaluate, net, *test, cfg.train.eval_batch_size)
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
            _plot_mnist(tdir, st)
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


def _plot_mnist(tdir: Path, st: dict) -> None:
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
