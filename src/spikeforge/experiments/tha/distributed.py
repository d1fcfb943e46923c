"""The data-parallel hooks of ``tha mnist`` (``--nproc-per-node P`` / torchrun): DistributedDataParallel.

The launcher, the workers' start-up, rank 0's ownership of the run directory and the agreed
interrupts are :mod:`spikeforge.experiments.scaffold.parallel` (shared with ``olfaction run``);
``cli/tha.py`` hands it a :class:`~spikeforge.experiments.scaffold.parallel.Job`. What holds here, by construction
(``tests/test_tha_distributed.py`` checks it):

* **the global batch is the configured one**: each of ``W`` ranks takes its slice of the batch
  one process would take (the batch size must be divisible by ``W``; the last, shorter batch of
  an epoch is split as evenly as it goes, each rank's loss weighted by its share);
* **batch norm is synchronised** (:class:`~spikeforge.models.data_parallel.BatchShard`): per-step
  statistics over the whole batch, as one process computes them, and the matching backward;
* **randomness is shared**: every rank seeds the same generators, draws the whole batch's
  permutation and dropout masks and uses its own rows, so ``W`` ranks train the same network as
  one process on the whole batch (to float rounding: DDP sums gradients in another order);
* **the training state comes from rank 0** (:meth:`DataParallel.sync_state`): fresh, resumed or
  initialised from another run, no file is read on other machines;
* **interrupts stop every rank at the same iteration** (checked after each iteration).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from ...config import ConfigError
from ...models.data_parallel import BatchShard
from ..scaffold.parallel import OneProcess, Ranks


class SingleProcess(OneProcess):
    """The one-process run: every hook is the identity (the training loop calls these hooks)."""

    def device_of(self, name: str) -> torch.device:
        """The device to train on for the configured ``run.device``."""
        from ..scaffold import check_device

        return torch.device(check_device(name) or "cpu")

    def sync_state(self, net, opt, sched, annealer, st: dict) -> dict:
        return st

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        return net

    def shard(self, net, idx: torch.Tensor) -> torch.Tensor:
        return idx

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def loss_value(self, loss: torch.Tensor) -> float:
        return loss.item()

    def evaluate(self, evaluate: Callable[..., float], net, X, Y, batch_size: int) -> float:
        return evaluate(net, X, Y, batch_size)


SINGLE = SingleProcess()


class DataParallel(Ranks, SingleProcess):
    """The hooks of one rank of an initialised default process group (see the module docstring).
    Collectives of our own (batch norm, loss, interrupts, state) run on a group of their own, so
    their order never interleaves with DDP's gradient buckets."""

    def __init__(self):
        super().__init__()
        self._scale = 1.0

    def device_of(self, name: str) -> torch.device:
        """``run.device`` for this rank: CUDA GPU ``LOCAL_RANK`` (NCCL) for ``cuda``, else the CPU (gloo)."""
        dev = super().device_of(name)
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
            torch.cuda.set_device(dev)
        self.device = dev
        return dev

    def sync_state(self, net, opt, sched, annealer, st: dict) -> dict:
        """Rank 0's weights, buffers (thresholds, BN statistics), optimizer, schedules, loop state
        and generator state, on every rank (fresh, resumed or initialised from another run)."""
        state = self.broadcast(
            {
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "annealer": annealer.state_dict() if annealer is not None else None,
                "st": st,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            }
        )
        if not self.is_main:
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if annealer is not None:
                annealer.load_state_dict(state["annealer"])
            torch.set_rng_state(state["rng"])
            if state["cuda_rng"] is not None:
                torch.cuda.set_rng_state(state["cuda_rng"])
        return state["st"]

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # buffers (thresholds, batch-norm statistics) evolve identically on every rank: no broadcast
        # (torch >= 2.12 names the switch forward_sync_buffers)
        fwd = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync: dict[str, Any] = {"forward_sync_buffers" if fwd else "broadcast_buffers": False}
        unused = not getattr(getattr(net, "params", None), "batch_norm", True)
        return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=unused, **no_sync)

    def shard(self, net, idx: torch.Tensor) -> torch.Tensor:
        n = idx.shape[0]
        if n < self.world_size:
            raise ConfigError(f"a batch of {n} examples cannot be split between {self.world_size} processes")
        a, b = self.rows(n)
        net.data_parallel = BatchShard(self.group, a, b - a, n)
        self._scale = self.world_size * (b - a) / n
        return idx[a:b]

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """This rank's mean loss weighted so that DDP's average of the gradients is the whole batch's."""
        return loss if self._scale == 1.0 else loss * self._scale

    def loss_value(self, loss: torch.Tensor) -> float:
        """The whole batch's loss (from the scaled loss of every rank)."""
        v = loss.detach().reshape(1).to(torch.float64)
        self.dist.all_reduce(v, group=self.group)
        return float(v) / self.world_size

    def evaluate(self, evaluate: Callable[..., float], net, X, Y, batch_size: int) -> float:
        """Accuracy over all of ``X``: each rank scores its rows, the counts are summed."""
        a, b = self.rows(X.shape[0])
        acc = evaluate(net, X[a:b], Y[a:b], batch_size) if b > a else 0.0
        correct = torch.tensor([round(acc * (b - a))], dtype=torch.float64, device=self._tensor_device())
        self.dist.all_reduce(correct, group=self.group)
        return float(correct) / max(X.shape[0], 1)
