"""The olfaction experiment: train DECOLLE / hybrid (DECOLLE + STDP) SNNs or Wang's ANN on the
synthetic odor task, pick the best epoch on a validation split of the training set, report test
accuracy, GloScore and K, checkpoint every epoch (a killed run resumes), and plot.

Config sections: ``[run]`` (:class:`OlfactionRunParams`), ``[data]`` (generator overrides of the
preset), ``[model]`` (:class:`..models.olfaction.OlfactionNetParams`) and ``[ann]``
(:class:`..models.olfaction_ann.WangANNParams`); defaults in ``configs/olfaction.toml``.

Data parallel (``olfaction run --nproc-per-node P``; ``dp``: the rank's hooks of
:mod:`.scaffold.parallel`): every batch (training and evaluation) is split between the ranks, the
random draws are the rank's rows of the whole batch's (:class:`~..models.data_parallel.BatchShard`), the
gradients and STDP updates are averaged over the whole batch before every optimizer step, rank 0's
state (fresh or resumed) is broadcast at the start and only rank 0 writes; so ``P`` ranks train what
one process trains (to float rounding).

Weight averaging (``run.ema_decay = d > 0``, spiking modes): every batch gets ``steps - burn_in``
online updates, so the weights at the end of a batch are fitted to that batch. The trainer keeps
an exponential moving average of the gradient-trained tensors (the DECOLLE blocks' weights and
biases, the output readout; not the STDP blocks, which keep their rule's own state), updated
after every training batch, ``avg = d * avg + (1 - d) * w``, and evaluates, plots and reports that
average; training continues from the weights themselves. The average is saved in the checkpoint
(``ema.NAME``), so a resumed run continues it exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from ..config import ConfigError
from ..data import olfaction as odata
from ..models.data_parallel import BatchShard
from ..models.olfaction import OlfactionNet
from ..models.olfaction_ann import WangANN
from . import olfaction_report as report
from .olfaction_config import KC_SIZES, MODES, SPEC, OlfactionConfig
from .scaffold import RunDir, check_device, set_threads
from .scaffold.parallel import OneProcess, Ranks

ONE_PROCESS = OneProcess()

__all__ = ["KC_SIZES", "MODES", "SPEC", "OlfactionConfig", "Trainer", "run_in", "split_data"]


def split_data(cfg: OlfactionConfig) -> dict[str, np.ndarray]:
    dp = odata.preset(cfg.run.preset, **cfg.data)
    d = odata.load(dp, cfg.run.cache_dir)
    x, y = d["x_train"], d["y_train"]
    if cfg.run.train_limit:
        x, y = x[: cfg.run.train_limit], y[: cfg.run.train_limit]
    n_val = max(1, int(round(cfg.run.val_fraction * len(x))))
    if n_val >= len(x):
        raise ConfigError(f"val_fraction = {cfg.run.val_fraction} leaves no training samples of {len(x)}")
    return {
        "x_train": x[:-n_val],
        "y_train": y[:-n_val],
        "x_val": x[-n_val:],
        "y_val": y[-n_val:],
        "x_test": d["x_test"],
        "y_test": d["y_test"],
    }


def blend_average(avg: dict[str, torch.Tensor], live: dict[str, torch.Tensor], decay: float) -> None:
    """One step of the weight average, in place: ``avg[k] = decay * avg[k] + (1 - decay) * live[k]``."""
    for k, v in avg.items():
        v.mul_(decay).add_(live[k], alpha=1 - decay)


class Trainer:
    """One model (spiking or ANN) with its optimizer; epoch training and evaluation."""

    def __init__(self, cfg: OlfactionConfig, dp: OneProcess = ONE_PROCESS):
        self.cfg, self.dp = cfg, dp
        r = cfg.run
        g = torch.Generator().manual_seed(r.seed)
        self.dtype = getattr(torch, r.dtype)
        self.device = torch.device(check_device(r.device) or "cpu")
        if self.device.type != "cpu" and dp.world_size > 1:
            raise ConfigError(
                f"run.device = {r.device!r}: data-parallel olfaction training runs on the CPU (gloo); "
                "use --device cpu, or one process on the GPU"
            )
        self.opt: torch.optim.Optimizer
        # the weights are drawn on the CPU from the seed, then moved: every device starts alike
        if r.mode == "ann":
            self.ann = WangANN(cfg.ann, g).to(self.device, self.dtype)
            groups = self.ann.param_groups(r.ann_lr, r.ann_pn2kc_lr) if r.ann_pn2kc_lr else self.ann.parameters()
            self.opt = torch.optim.Adam(groups, lr=r.ann_lr)
        else:
            self.net = OlfactionNet(cfg.model, g).to_dtype(self.dtype, self.device)
            self.opt = self.net.make_optimizer(r.optimizer, r.lr, r.weight_decay)
        # the running average of the gradient-trained tensors (run.ema_decay > 0, spiking modes only):
        # not the masks and local readouts (fixed), nor the weights and homeostatic biases of the
        # STDP blocks, whose local rules keep their own running state
        self.ema: dict[str, torch.Tensor] = {}
        if r.mode != "ann" and r.ema_decay > 0:
            skip = {f"{kind}{b}" for b in self.net.stdp_set for kind in ("w", "bias")}
            self.ema = {
                k: t.detach().clone()
                for k, t in self.net.tensors().items()
                if not k.startswith(("mask", "readout")) and k not in skip
            }

    def _shard(self, n: int | None) -> tuple[int, int]:
        """This rank's rows ``[a, b)`` of a batch of ``n`` (the model draws for all ``n`` rows);
        ``None``: the model is whole again."""
        a, b = self.dp.rows(n or 0)
        shard = BatchShard(self.dp.group, a, b - a, n) if isinstance(self.dp, Ranks) and n is not None else None
        (self.ann if self.cfg.run.mode == "ann" else self.net).data_parallel = shard
        return a, b

    # --- state ---------------------------------------------------------------------------------
    def _opt_params(self) -> list[torch.Tensor]:
        """The optimizer's parameters over all its groups, in order (the checkpoint's numbering)."""
        return [prm for group in self.opt.param_groups for prm in group["params"]]

    def tensors(self) -> dict[str, torch.Tensor]:
        """The state to checkpoint, on the CPU (the tensors themselves where they are there)."""
        d = dict(self.ann.state_dict()) if self.cfg.run.mode == "ann" else dict(self.net.tensors())
        d.update({f"ema.{k}": v for k, v in self.ema.items()})
        for k, prm in enumerate(self._opt_params()):
            for name, val in self.opt.state.get(prm, {}).items():
                d[f"opt.{k}.{name}"] = torch.as_tensor(val).reshape(-1) if name == "step" else val
        return {k: v.detach().cpu() for k, v in d.items()}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        if self.cfg.run.mode == "ann":
            self.ann.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items() if not k.startswith("opt.")})
        else:
            self.net.load_tensors(arrays)
            for name, avg in self.ema.items():
                if f"ema.{name}" not in arrays:
                    raise ConfigError(
                        "the checkpoint holds no weight average (it was written with run.ema_decay = 0); "
                        "resume it with --set run.ema_decay=0, or use --out elsewhere for a new run"
                    )
                avg.copy_(torch.as_tensor(arrays[f"ema.{name}"]))
        for k, prm in enumerate(self._opt_params()):
            st = {
                n.split(".", 2)[2]: torch.from_numpy(v.copy()) for n, v in arrays.items() if n.startswith(f"opt.{k}.")
            }
            if st:
                # Adam keeps its step count on the CPU unless capturable; the moments go with the weight
                st = {n: (v.reshape(()) if n == "step" else v.to(prm.device)) for n, v in st.items()}
                self.opt.state[prm] = st

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """Within the block the network holds the weight average (``run.ema_decay > 0``; otherwise
        its own weights); after it, the training weights again."""
        if not self.ema:
            yield
            return
        live = self.net.tensors()
        saved = {k: live[k].clone() for k in self.ema}
        for k, v in self.ema.items():
            live[k].copy_(v)
        try:
            yield
        finally:
            for k, v in saved.items():
                live[k].copy_(v)

    def _update_average(self) -> None:
        blend_average(self.ema, self.net.tensors(), self.cfg.run.ema_decay)

    # --- training ------------------------------------------------------------------------------
    def train_epoch(self, x: np.ndarray, y: np.ndarray, epoch: int) -> tuple[float, float]:
        r = self.cfg.run
        if r.mode != "ann":
            scale = 0.5 * (1 + math.cos(math.pi * epoch / r.epochs)) if r.lr_schedule == "cosine" else 1.0
            for group in self.opt.param_groups:
                group["lr"] = group.get("base_lr", r.lr) * scale
        order = np.random.default_rng([r.seed, epoch]).permutation(len(x))
        g = torch.Generator().manual_seed(r.seed * 100003 + epoch)
        correct, loss_sum, n_batches = 0, 0.0, 0
        if r.mode == "ann":
            self.ann.train()
        for start in range(0, len(x), r.batch_size):
            idx = order[start : start + r.batch_size]
            a, b = self._shard(len(idx))
            share = (b - a) / len(idx)  # of the batch's mean loss
            if b == a:
                raise ConfigError(
                    f"a batch of {len(idx)} examples cannot be split between {self.dp.world_size} processes"
                )
            xb = torch.from_numpy(x[idx[a:b]]).to(self.device, self.dtype)
            yb = torch.from_numpy(y[idx[a:b]]).to(self.device)
            if r.mode == "ann":
                out = self.ann(xb, g)
                loss = torch.nn.functional.cross_entropy(out, yb)
                self.opt.zero_grad()
                (loss * share if share != 1.0 else loss).backward()
                if self.ann.data_parallel is not None:  # the whole batch's gradient (one all-reduce)
                    self.ann.data_parallel.all_sum([q.grad for q in self.ann.parameters() if q.grad is not None])
                self.opt.step()
                logits, lv = out.detach(), loss.item()
            else:
                res = self.net.run_batch(xb, yb, self.opt, g)
                logits, lv = res["logits"], res["loss"]
                if self.ema:
                    self._update_average()
            correct += int((logits.argmax(1) == yb).sum())  # one sync per batch
            loss_sum += lv * share
            n_batches += 1
        self._shard(None)
        total = self.dp.all_sum(torch.tensor([float(correct), loss_sum], dtype=torch.float64))
        return float(total[1]) / n_batches, float(total[0]) / len(x)

    @torch.no_grad()
    def predict(self, x: np.ndarray, seed_offset: int = 0, raw: bool = False) -> np.ndarray:
        """Predicted classes of ``x`` by the weight average (``run.ema_decay > 0``; ``raw``: by the
        training weights) or the weights themselves."""
        if self.ema and not raw:
            with self.averaged():
                return self.predict(x, seed_offset, raw=True)
        r = self.cfg.run
        g = torch.Generator().manual_seed(r.seed * 7919 + 17 + seed_offset)
        out = torch.zeros(len(x), dtype=torch.int64)
        if r.mode == "ann":
            self.ann.eval()
        for start in range(0, len(x), r.eval_batch):
            a, b = self._shard(min(r.eval_batch, len(x) - start))
            xb = torch.from_numpy(x[start + a : start + b]).to(self.device, self.dtype)
            logits = self.ann(xb, g) if r.mode == "ann" else self.net.run_batch(xb, generator=g)["logits"]
            out[start + a : start + b] = logits.argmax(1).cpu()
        self._shard(None)
        return self.dp.all_sum(out).numpy()  # every rank's rows

    def connectivity(self) -> list[np.ndarray]:
        """Effective weights of every block ``[n_out, n_in]`` (of the weight average where there is one)."""
        if self.cfg.run.mode == "ann":
            return [w.cpu().numpy() for w in self.ann.connectivity()]
        with self.averaged():
            return [self.net.effective(b).cpu().numpy().copy() for b in range(self.cfg.model.n_blocks)]


def run_in(rd: RunDir, log=None, dp: OneProcess = ONE_PROCESS) -> dict:
    """Train (or resume) in the opened run directory ``rd`` and write ``results.json``, the
    checkpoint and the plots there (``log``: where progress goes, default: printed unless
    ``rd.quiet``; ``dp``: the data-parallel hooks of this rank, see the module docstring)."""
    assert isinstance(rd.cfg, OlfactionConfig)
    cfg = rd.cfg.resolved()
    out = rd.path
    set_threads(cfg.run.threads)
    if log is None:

        def log(msg: str) -> None:
            if not rd.quiet:
                print(msg, flush=True)

    data = split_data(cfg)
    trainer = Trainer(cfg, dp)
    hist: dict[str, list] = {
        "epoch": [],
        "train_loss": [],
        "train_acc": [],
        "val_acc": [],
        "test_acc": [],
        "seconds": [],
    }
    start_epoch = 0
    if rd.has_checkpoint("checkpoint"):
        arrays, meta = rd.load_checkpoint("checkpoint")
        trainer.load(arrays)
        hist = meta["history"]
        start_epoch = len(hist["epoch"])
        log(f"resuming {out} after epoch {start_epoch}")
    if dp.world_size > 1:  # rank 0's state (fresh or resumed) on every rank
        state = {k: v.detach().cpu().numpy() for k, v in trainer.tensors().items()}
        state, hist = dp.broadcast((state, hist) if dp.is_main else None)
        if not dp.is_main:
            trainer.load(state)
        start_epoch = len(hist["epoch"])
    n_train = len(data["x_train"])
    n_epochs = cfg.run.ann_epochs if cfg.run.mode == "ann" else cfg.run.epochs
    with dp.interrupts(rd) as stop:
        for epoch in range(start_epoch, n_epochs):
            t0 = time.perf_counter()
            loss, train_acc = trainer.train_epoch(data["x_train"], data["y_train"], epoch)
            seconds = time.perf_counter() - t0
            val_acc = float((trainer.predict(data["x_val"]) == data["y_val"]).mean())
            if trainer.ema:  # the training weights' own figure, to show what the average adds
                raw = float((trainer.predict(data["x_val"], raw=True) == data["y_val"]).mean())
                hist.setdefault("val_acc_raw", []).append(raw)
            test_acc = float((trainer.predict(data["x_test"], 1) == data["y_test"]).mean())
            conn = report.epoch_connectivity(trainer.connectivity())
            for k, v in zip(hist, (epoch + 1, loss, train_acc, val_acc, test_acc, seconds)):
                hist[k].append(v)
            for k, v in conn.items():  # setdefault: checkpoints written before these keys existed
                hist.setdefault(k, []).append(v)
            raw_note = f" (weights {hist['val_acc_raw'][-1]:.4f})" if trainer.ema else ""
            log(
                f"epoch {epoch + 1}/{n_epochs}: loss {loss:.4f} train {train_acc:.4f} val {val_acc:.4f}{raw_note} "
                f"test {test_acc:.4f} ({n_train / seconds:.1f} samples/s) "
                + " ".join(f"{k} {v}" for k, v in conn.items())
            )
            rd.save_checkpoint("checkpoint", trainer.tensors(), {"history": hist})
            stop.check()
    # Wang's ANN (autograd), the fused CPU loop (spiking modes on the CPU) or the whole-tensor
    # reference loop on another device
    if cfg.run.mode == "ann":
        engine = f"olfaction-ann-{trainer.device}"
    elif trainer.device.type == "cpu":
        engine = "olfaction-closed-form"
    else:
        engine = f"olfaction-reference-{trainer.device}"
    results = rd.write_results(report.summarise(cfg, trainer, hist, n_train), engine=engine)
    if cfg.run.plots and dp.is_main:
        with trainer.averaged():
            report.make_plots(cfg, trainer, hist, data, out, results)
    return results
