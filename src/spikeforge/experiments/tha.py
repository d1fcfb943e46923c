"""Threshold-annealing experiments (Eshraghian & Lu 2022, code ``jeshraghian/snn-tha``).

``mnist``: train :class:`~spikeforge.models.tha_nets.THAMnistNet` on MNIST with the snn-tha
hyper-parameters (reference §1.4-1.5): Adam, cosine learning rate stepped per iteration,
``mse_count_loss(0.8, 0.2)``, spike-count accuracy, per-iteration threshold annealing. Differences
from snn-tha, on purpose (reference §1.10): a validation split taken from the *training* set selects
the best epoch (snn-tha used the test set), each trial has its own seed (``seed + trial``), and
the run is checkpointed every few iterations and resumes where it stopped.

``spike_timing``: the section-4 task (reference §2): a 100-1000-1 network, 100 steps, one fixed
Bernoulli input, the output membrane trained by MSE to ramp linearly to just above threshold at
step 75; four cases (full precision theta=1, binarized theta=1, binarized theta=50, binarized with
theta annealed 5 -> 50).

Both write ``results.json``, curves (PNG) and, for spike timing, GIF animations into the run
directory.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator

from ..config import ConfigError, Params
from ..evaluation.spike_losses import count_cross_entropy, membrane_mse, spike_count_mse, spike_count_predictions
from ..models.tha_nets import SpikeTimingNet, SpikeTimingNetParams, THAMnistNet, THAMnistNetParams
from ..plasticity.threshold_annealing import AnnealParams, ThresholdAnnealing
from ..synapses.binarized import clamp_binary_weights_

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


# ------------------------------------------------------------------------------------------------
# small I/O helpers (checkpoint + JSON from spikeforge.io, plots with matplotlib)


def _save_ckpt(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    from ..io import save_checkpoint

    save_checkpoint(path, tensors, meta)


def _load_ckpt(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from ..io import load_checkpoint

    arrays, meta = load_checkpoint(path)
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, meta


def _ckpt_exists(path: Path) -> bool:
    from ..io import checkpoint_exists

    return checkpoint_exists(path)


def _write_json(path: Path, obj: Any) -> None:
    from ..io import atomic_write_json

    atomic_write_json(path, obj)


def _plot_curves(
    curves: dict[str, tuple[list, list]], path: Path, xlabel: str, ylabel: str, title: str = "", logy: bool = False
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    from .. import __version__

    return {
        "spikeforge": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# ------------------------------------------------------------------------------------------------
# state flattening for checkpoints: tensors -> safetensors, everything else -> JSON


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), _flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {
            "__list__": [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)],
            "tuple": isinstance(obj, tuple),
        }
    return obj


def _key(k):
    return k if isinstance(k, (str, int)) else str(k)


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_unflatten(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


# ------------------------------------------------------------------------------------------------
# MNIST


class RunSection(Params):
    out_dir: str = "runs/tha_mnist"
    seed: int = Field(0, ge=0)
    trials: int = Field(1, ge=1)
    epochs: int = Field(10, ge=1)
    threads: int = Field(1, ge=1, description="torch CPU threads")
    checkpoint_every: int = Field(50, ge=1, description="iterations between checkpoints")
    log_every: int = Field(10, ge=1, description="iterations between logged loss/threshold points")
    patience: int = Field(0, ge=0, description="early stopping on validation accuracy, in epochs (0: off)")
    init_from: str | None = Field(
        None,
        description="start from the weights, batch-norm state and "
        "(annealed) thresholds of this checkpoint (fresh optimizer and "
        "LR schedule; annealing continues from the loaded thresholds)",
    )
    progress: bool = True


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


class MnistConfig(Params):
    run: RunSection = RunSection()
    data: DataSection = DataSection()
    model: THAMnistNetParams = THAMnistNetParams()
    train: TrainSection = TrainSection()
    anneal: AnnealSection = AnnealSection()

    @classmethod
    def from_dict(cls, data=None, **overrides):
        cfg = super().from_dict(data, **overrides)
        if cfg.anneal.enabled:
            cfg.anneal_params()  # raises ConfigError on alpha / theta_final out of range
        return cfg

    def anneal_params(self) -> list[AnnealParams]:
        out = []
        for i, (t0, tf, a) in enumerate(zip(self.model.thresholds, self.anneal.theta_final, self.anneal.alpha)):
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


def load_config(kind: str, path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Params:
    from ..config import apply_overrides, load_toml

    cls = {"mnist": MnistConfig, "spike_timing": SpikeTimingConfig}[kind]
    data = load_toml(path or CONFIG_DIR / f"tha_{kind}.toml")
    data = apply_overrides(data, overrides or [])
    return cls.from_dict(data)


def _images_to_tensor(images: np.ndarray, normalize: bool) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0).unsqueeze(1)
    if normalize:
        x = (x - 0.1307) / 0.3081
    return x


def _load_mnist_splits(cfg: MnistConfig):
    from ..data import load_dataset

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
        s, _ = net(X[i : i + batch_size])
        correct += int((spike_count_predictions(s) == Y[i : i + batch_size]).sum())
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
    tensors, meta = _load_ckpt(Path(path))
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
    for k in ("epochs", "threads", "checkpoint_every", "log_every", "progress", "out_dir", "trials", "patience"):
        d["run"].pop(k, None)
    return d


def train_mnist(
    cfg: MnistConfig, out_dir: str | os.PathLike | None = None, resume: bool = True, log: Callable[[str], None] = print
) -> dict:
    """Run every trial of the MNIST experiment; returns (and writes) ``results.json``."""
    out = Path(out_dir or cfg.run.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.run.threads)
    _write_json(out / "config.json", cfg.to_dict())
    log(f"loading MNIST ({cfg.data.data_dir or os.environ.get('SPIKEFORGE_DATA') or 'embedded subset'})")
    train, val, test = _load_mnist_splits(cfg)
    log(f"train {train[0].shape[0]}, validation {val[0].shape[0]} (from the training set), test {test[0].shape[0]}")
    trials: list[dict] = []
    for trial in range(cfg.run.trials):

        def on_epoch(partial: dict, done=list(trials)) -> None:  # noqa: B006 (binds the list)
            _write_results(cfg, out, done + [partial])

        trials.append(_train_trial(cfg, trial, out / f"trial{trial}", train, val, test, resume, log, on_epoch))
        _write_results(cfg, out, trials)
    return _write_results(cfg, out, trials)


def _write_results(cfg: MnistConfig, out: Path, trials: list[dict]) -> dict:
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
        "config": cfg.to_dict(),
        "versions": _versions(),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
    }
    _write_json(out / "results.json", res)
    return res


def _train_trial(
    cfg: MnistConfig,
    trial: int,
    tdir: Path,
    train,
    val,
    test,
    resume: bool,
    log: Callable[[str], None],
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    from tqdm import tqdm

    tdir.mkdir(parents=True, exist_ok=True)
    seed = cfg.run.seed + trial
    torch.manual_seed(seed)
    net = THAMnistNet(cfg.model)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr, betas=cfg.train.betas)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.train.t_max_iterations, eta_min=cfg.train.eta_min)
    fresh_start = not (resume and _ckpt_exists(tdir / "last"))
    if cfg.run.init_from and fresh_start:
        src, _ = _load_ckpt(Path(cfg.run.init_from))
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
    last = tdir / "last"
    ident = _config_identity(cfg)
    if resume and _ckpt_exists(last):
        tensors, meta = _load_ckpt(last)
        if meta.get("identity") != ident:
            raise ConfigError(
                f"{last} was written with a different configuration; use another "
                "--out directory, or --fresh to start this one again"
            )
        net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt.load_state_dict(_unflatten(meta["optimizer"], tensors))
        sched.load_state_dict(meta["scheduler"])
        if annealer is not None:
            annealer.load_state_dict(meta["annealer"])
        torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
        st = meta["state"]
        log(f"trial {trial}: resumed at epoch {st['epoch']} batch {st['batch']} (step {st['global_step']})")
        if st["finished"] and st["epoch"] < cfg.run.epochs:
            st["finished"] = False

    def save(path: Path) -> None:
        tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            "identity": ident,
            "config": cfg.to_dict(),
            "trial": trial,
            "seed": seed,
            "optimizer": _flatten(opt.state_dict(), "optim", tensors),
            "scheduler": sched.state_dict(),
            "annealer": annealer.state_dict() if annealer else None,
            "thresholds": [float(l.threshold) for l in net.lif_layers],
            "state": st,
        }
        _save_ckpt(path, tensors, meta)

    def summary() -> dict:
        return _trial_summary(trial, seed, tdir, st, its_per_epoch, net)

    t_start = time.time() - st["wall_s"]
    stop = st["finished"]
    while not stop and st["epoch"] < cfg.run.epochs:
        epoch = st["epoch"]
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        bar = tqdm(
            total=its_per_epoch,
            initial=st["batch"],
            desc=f"trial {trial} epoch {epoch + 1}/{cfg.run.epochs}",
            disable=not cfg.run.progress,
            mininterval=2.0,
            dynamic_ncols=True,
        )
        t_epoch = time.time()
        while st["batch"] < its_per_epoch:
            idx = perm[st["batch"] * bs : (st["batch"] + 1) * bs]
            x, y = Xtr[idx], Ytr[idx]
            t0 = time.time()
            s, _ = net(x)
            loss = loss_fn(s, y)
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
            lv = loss.item()
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
        bar.close()
        val_acc = evaluate(net, *val, cfg.train.eval_batch_size)
        test_acc = evaluate(net, *test, cfg.train.eval_batch_size)
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
            save(tdir / "best")
        save(last)
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
    h = st["hist"]
    if h["step"]:
        _plot_curves(
            {"training loss": (h["step"], h["loss"])},
            tdir / "loss.png",
            "iteration",
            "loss (spike-count MSE / T)",
            logy=True,
        )
        thr = np.asarray(h["thresholds"])
        _plot_curves(
            {f"layer {i + 1}": (h["step"], thr[:, i].tolist()) for i in range(thr.shape[1])},
            tdir / "thresholds.png",
            "iteration",
            "threshold (membrane units)",
        )
    if st["epochs"]:
        ep = [e["epoch"] for e in st["epochs"]]
        _plot_curves(
            {
                "validation": (ep, [100 * e["val_acc"] for e in st["epochs"]]),
                "test": (ep, [100 * e["test_acc"] for e in st["epochs"]]),
            },
            tdir / "accuracy.png",
            "epoch",
            "accuracy (%)",
        )


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

    out_dir: str = "runs/tha_spike_timing"
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


def ramp_target(num_steps: int, target_step: int, peak: float) -> torch.Tensor:
    """Membrane target: ``peak * t / target_step`` for ``t <= target_step``, then 0 (snnTorch
    ``targets_latency(..., interpolate=True)`` semantics, reference §2.1)."""
    t = torch.arange(num_steps, dtype=torch.float32)
    return torch.where(t <= target_step, peak * t / target_step, torch.zeros(()))


def run_spike_timing(
    cfg: SpikeTimingConfig,
    out_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    from tqdm import tqdm

    out = Path(out_dir or cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    _write_json(out / "config.json", cfg.to_dict())
    gen = torch.Generator().manual_seed(cfg.seed)
    # fixed input: per-step, per-input firing probability U[0, 1), one Bernoulli draw reused
    prob = torch.rand(1, cfg.num_steps, cfg.num_inputs, generator=gen)
    x = torch.bernoulli(prob, generator=gen)
    results = {}
    for case in cfg.cases:
        torch.manual_seed(cfg.seed)
        net = SpikeTimingNet(
            SpikeTimingNetParams(
                num_inputs=cfg.num_inputs,
                num_hidden=cfg.num_hidden,
                beta=case.beta,
                threshold=case.threshold,
                surrogate=cfg.surrogate,
                slope=cfg.slope,
                binarize=case.binarize,
            )
        )
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        ap = case.anneal_params()
        annealer = ThresholdAnnealing(net.lif_layers, [ap, ap]) if ap else None
        target = ramp_target(cfg.num_steps, cfg.target_step, case.target_peak).view(1, -1, 1)
        losses, out_spikes, hid_rates, thetas, frames = [], [], [], [], []
        t0 = time.time()
        for it in tqdm(range(cfg.iterations), desc=case.name, disable=not progress, mininterval=2.0):
            h, s, u = net(x)
            loss = membrane_mse(u, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            out_spikes.append(int(s.sum()))
            hid_rates.append(h.mean().item())
            thetas.append(float(net.lif2.threshold))
            if it % cfg.frame_every == 0 or it == cfg.iterations - 1:
                frames.append(
                    (
                        it,
                        u.detach().view(-1).numpy().copy(),
                        float(net.lif2.threshold),
                        s.detach().view(-1).numpy().copy(),
                    )
                )
            if annealer is not None:
                annealer.step()
        with torch.no_grad():
            h, s, u = net(x)
        final_loss = float(membrane_mse(u, target))
        spk_t = torch.nonzero(s.view(-1)).view(-1).tolist()
        cdir = out / case.name
        cdir.mkdir(exist_ok=True)
        peak2 = case.target_peak**2
        w = min(cfg.final_window, len(losses))
        results[case.name] = {
            "case": case.to_dict(),
            "final_loss": final_loss,
            "final_loss_normalised": final_loss / peak2,
            "final_loss_mean_last_iterations": float(np.mean(losses[-w:])),
            "final_loss_mean_last_iterations_normalised": float(np.mean(losses[-w:])) / peak2,
            "final_window": w,
            "first_loss": losses[0],
            "final_output_spike_times": spk_t,
            "iterations_with_output_spikes": int(sum(1 for n in out_spikes if n > 0)),
            "total_output_spikes_during_training": int(sum(out_spikes)),
            "final_hidden_rate": float(h.mean()),
            "final_threshold": float(net.lif2.threshold),
            "seconds": time.time() - t0,
        }
        log(
            f"{case.name}: final loss {final_loss:.4g} (normalised by peak^2: {final_loss / peak2:.4g}), "
            f"output spikes at {spk_t}, iterations with output spikes "
            f"{results[case.name]['iterations_with_output_spikes']}/{cfg.iterations}"
        )
        _plot_curves(
            {case.name: (list(range(len(losses))), losses)},
            cdir / "loss.png",
            "training iteration",
            "membrane MSE",
            title=case.name,
            logy=True,
        )
        _plot_trace(
            cdir / "membrane_final.png",
            u.view(-1).numpy(),
            target.view(-1).numpy(),
            s.view(-1).numpy(),
            float(net.lif2.threshold),
            case.name + " (final)",
        )
        _animate(cdir / "membrane_training.gif", frames, target.view(-1).numpy(), case.name)
        np.savez_compressed(
            cdir / "curves.npz",
            loss=np.asarray(losses),
            output_spikes=np.asarray(out_spikes),
            hidden_rate=np.asarray(hid_rates),
            threshold=np.asarray(thetas),
        )
    names = list(results)
    _plot_curves(
        {
            n: (
                list(range(cfg.iterations)),
                list(np.load(out / n / "curves.npz")["loss"] / cfg.cases[i].target_peak ** 2),
            )
            for i, n in enumerate(names)
        },
        out / "loss_normalised_all.png",
        "training iteration",
        "membrane MSE / target_peak^2",
        logy=True,
    )
    res = {"experiment": "tha spike-timing", "cases": results, "config": cfg.to_dict(), "versions": _versions()}
    _write_json(out / "results.json", res)
    return res


def _plot_trace(path: Path, mem: np.ndarray, target: np.ndarray, spikes: np.ndarray, theta: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    _draw_trace(ax, mem, target, spikes, theta, title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_trace(ax, mem, target, spikes, theta, title):
    t = np.arange(len(mem))
    ax.plot(t, target, "k--", lw=1, label="target")
    ax.plot(t, mem, color="C0", label="output membrane")
    ax.axhline(theta, color="C3", lw=0.8, ls=":", label=f"threshold {theta:.3g}")
    st = np.nonzero(spikes)[0]
    if len(st):
        ax.plot(st, np.full(len(st), theta), "v", color="C3", ms=6, label="output spikes")
    ax.set_xlabel("time step")
    ax.set_ylabel("membrane")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")


def _animate(path: Path, frames, target: np.ndarray, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    lo = min(float(target.min()), min(float(f[1].min()) for f in frames))
    hi = max(float(target.max()), max(float(f[1].max()) for f in frames), max(f[2] for f in frames))
    pad = 0.05 * (hi - lo + 1e-9)
    images = []
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=80)
    for it, mem, theta, spikes in frames:
        ax.clear()
        _draw_trace(ax, mem, target, spikes, theta, f"{name}: iteration {it}")
        ax.set_ylim(lo - pad, hi + pad)
        fig.tight_layout()
        fig.canvas.draw()
        images.append(
            Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]).convert(
                "P", palette=Image.ADAPTIVE, colors=64
            )
        )
    plt.close(fig)
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)
