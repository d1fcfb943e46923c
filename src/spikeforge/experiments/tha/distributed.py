"""Data-parallel training of ``tha mnist`` with torch DistributedDataParallel.

``spikeforge tha mnist --nproc-per-node P`` starts ``P`` workers on this machine through torchrun's
elastic launcher (:func:`launch`); ``torchrun --nnodes N --nproc-per-node P ... -m
spikeforge.cli.main tha mnist ...`` starts them on several machines. A worker (a process that
torchrun started: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set) runs
:func:`run_worker`: gloo on the CPU, NCCL on CUDA.

What holds, by construction (``tests/test_tha_distributed.py`` checks the first three):

* **the global batch is the configured one**: each of ``W`` ranks takes its slice of the batch
  one process would take (the batch size must be divisible by ``W``; the last, shorter batch of
  an epoch is split as evenly as it goes, each rank's loss weighted by its share);
* **batch norm is synchronised** (:class:`~spikeforge.models.tha_nets.BatchShard`): per-step
  statistics over the whole batch, as one process computes them, and the matching backward;
* **randomness is shared**: every rank seeds the same generators, draws the whole batch's
  permutation and dropout masks and uses its own rows, so ``W`` ranks train the same network as
  one process on the whole batch (to float rounding: DDP sums gradients in another order);
* **rank 0 owns the run directory**: it resolves the config, holds the lock, writes checkpoints,
  results and figures; the other ranks receive the config and the (fresh or resumed) training state
  from it (no file is read on other machines, so resuming needs no shared file system);
* **interrupts stop every rank at the same iteration**: after each iteration the ranks agree on
  whether any got Ctrl-C or ``kill`` (one tiny all-reduce); rank 0 saves, all exit.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ...config import ConfigError
from ...models.tha_nets import BatchShard
from ..scaffold import DeferredInterrupts, InterruptedAtBoundary, progress_bar

WORKER_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def in_worker() -> bool:
    """Whether this process was started by torchrun (or another ``env://`` launcher) as a worker."""
    return all(k in os.environ for k in WORKER_ENV)


class SingleProcess:
    """The one-process run: every hook is the identity (the training loop calls these hooks)."""

    rank, world_size, is_main = 0, 1, True

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

    def interrupts(self, rd):
        return rd.interrupts()

    def evaluate(self, evaluate: Callable[..., float], net, X, Y, batch_size: int) -> float:
        return evaluate(net, X, Y, batch_size)


SINGLE = SingleProcess()


class DataParallel(SingleProcess):
    """The hooks of one rank of an initialised default process group (see the module docstring).
    Collectives of our own (batch norm, loss, interrupts, state) run on a group of their own, so
    their order never interleaves with DDP's gradient buckets."""

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        self.device = torch.device("cpu")
        self.group = dist.new_group()
        self._scale = 1.0

    def device_of(self, name: str) -> torch.device:
        """``run.device`` for this rank: CUDA GPU ``LOCAL_RANK`` (NCCL) for ``cuda``, else the CPU (gloo)."""
        dev = super().device_of(name)
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
            torch.cuda.set_device(dev)
        self.device = dev
        return dev

    def broadcast(self, obj: Any) -> Any:
        """``obj`` of rank 0, on every rank."""
        box = [obj if self.is_main else None]
        self.dist.broadcast_object_list(box, src=0, group=self.group, device=self._object_device())
        return box[0]

    def _object_device(self):
        return self.device if self.device.type == "cuda" else None

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

    def rows(self, n: int) -> tuple[int, int]:
        """This rank's ``[start, stop)`` of ``n`` rows split as evenly as they go."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

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

    def interrupts(self, rd) -> _AgreedInterrupts:
        return _AgreedInterrupts(self)

    def evaluate(self, evaluate: Callable[..., float], net, X, Y, batch_size: int) -> float:
        """Accuracy over all of ``X``: each rank scores its rows, the counts are summed."""
        a, b = self.rows(X.shape[0])
        acc = evaluate(net, X[a:b], Y[a:b], batch_size) if b > a else 0.0
        correct = torch.tensor([round(acc * (b - a))], dtype=torch.float64, device=self._tensor_device())
        self.dist.all_reduce(correct, group=self.group)
        return float(correct) / max(X.shape[0], 1)

    def _tensor_device(self):
        return self.device


class _AgreedInterrupts(DeferredInterrupts):
    """Deferred Ctrl-C / kill that every rank obeys at the same iteration: :meth:`check` raises on
    all ranks if any rank got a signal; after rank 0 saved, the ranks leave together."""

    def __init__(self, dp: DataParallel):
        super().__init__()
        self.dp = dp

    def _handler(self, signum, frame) -> None:
        if self.dp.is_main:
            super()._handler(signum, frame)  # says so once
        self.pending = signum

    def check(self) -> None:
        flag = torch.tensor([0.0 if self.pending is None else 1.0], device=self.dp._tensor_device())
        self.dp.dist.all_reduce(flag, op=self.dp.dist.ReduceOp.MAX, group=self.dp.group)
        if float(flag) > 0:
            raise InterruptedAtBoundary

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is not None and issubclass(exc_type, InterruptedAtBoundary):
                self.dp.dist.barrier(group=self.dp.group)  # rank 0 has saved the checkpoint
        finally:
            super().__exit__(exc_type, *exc)


class FollowerRunDir:
    """The run directory as a rank other than 0 sees it: the config and the path; it reads and
    writes nothing (the training state comes from rank 0, see :meth:`DataParallel.sync_state`)."""

    def __init__(self, path: str | Path, cfg):
        self.path, self.cfg, self.quiet = Path(path), cfg, True

    def has_checkpoint(self, name: str) -> bool:
        return False

    def save_checkpoint(self, name: str, tensors: dict, meta: dict) -> None:
        pass

    def write_results(self, results: dict, engine: str | None = None) -> dict:
        return results

    def interrupts(self) -> DeferredInterrupts:
        return DeferredInterrupts()

    def progress(self, total: int, *, initial: int = 0, desc: str = "", unit: str = "ex"):
        return progress_bar(total, initial=initial, desc=desc, quiet=True, unit=unit)

    def log(self, msg: str) -> None:
        pass

    def __enter__(self) -> FollowerRunDir:
        return self

    def __exit__(self, *exc) -> None:
        pass


def check_world_size(batch_size: int, world_size: int) -> None:
    if world_size < 1:
        raise ConfigError(f"--nproc-per-node {world_size}: give at least 1 process")
    if batch_size % world_size:
        raise ConfigError(
            f"train.batch_size = {batch_size} cannot be split evenly between {world_size} processes "
            f"(each rank trains on batch_size / processes examples): use a batch size divisible by "
            f"{world_size}, e.g. {max(world_size, batch_size - batch_size % world_size)}, or another "
            "number of processes"
        )


def run_worker(args, start: Callable, train: Callable, report: Callable[[Any, dict], None]) -> int:
    """One rank of ``tha mnist`` (``start``: the command's :func:`~spikeforge.experiments.scaffold.start`
    of its spec and flags, called on rank 0 only; ``train``: :func:`~.mnist.train_mnist_in`, passed in
    because the training loop itself uses this module; ``report``: prints the summary, on rank 0)."""
    import torch.distributed as dist

    from .config import MnistConfig

    # gloo for CPU tensors; NCCL for CUDA tensors where CUDA is usable (the device is in the config)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    try:
        dp = DataParallel()
        rd: Any = None
        msg: dict[str, Any] | None = None
        if dp.is_main:
            try:
                rd = start(args)
                if rd is not None:
                    check_world_size(rd.cfg.train.batch_size, dp.world_size)
            except BaseException as err:
                msg = {"error": str(err) or type(err).__name__}
                if rd is not None:
                    rd.close()
                dp.broadcast(msg)
                raise
            msg = {"config": rd.cfg.to_dict(), "path": str(rd.path)} if rd is not None else {"exit": 0}
        msg = dp.broadcast(msg)
        if "error" in msg:
            return 2  # rank 0 reports it
        if "exit" in msg:
            return 0
        if rd is None:
            rd = FollowerRunDir(msg["path"], MnistConfig.from_dict(msg["config"]))
        with rd:
            res = train(rd, (print if not args.quiet else rd.log) if dp.is_main else rd.log, dp=dp)
        if dp.is_main:
            report(rd, res)
        return 0
    finally:
        dist.destroy_process_group()


def _spawned(args, start: Callable, train: Callable, report: Callable) -> None:
    """The entry point of a worker started by :func:`launch`: the error handling of ``spikeforge``'s
    ``main`` (a message and exit status 2 for bad input, 130 when interrupted)."""
    try:
        code = run_worker(args, start, train, report)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"spikeforge: error: {err}", file=sys.stderr, flush=True)
        code = 2
    except KeyboardInterrupt:
        for sig in (signal.SIGINT, signal.SIGTERM):  # the launcher passes the signal on: once is enough
            signal.signal(sig, signal.SIG_IGN)
        if int(os.environ.get("RANK", "0")) == 0:
            print("spikeforge: interrupted; run the same command again to resume", file=sys.stderr, flush=True)
        code = 130
    except Exception as err:
        rank = int(os.environ.get("RANK", "0"))
        if rank == 0:
            raise
        # most often: rank 0 stopped (and said why) and a collective lost its peer; give rank 0 the
        # time to exit first, so that the launcher reports its status (and stops this one)
        time.sleep(5.0)
        first = (str(err).strip().splitlines() or [""])[0][:200]
        print(f"spikeforge: rank {rank} stopped ({type(err).__name__}: {first})", file=sys.stderr, flush=True)
        code = 1
    sys.stdout.flush()
    if code:
        sys.exit(code)


def launch(
    args,
    nproc: int,
    start: Callable,
    train: Callable,
    report: Callable,
    preflight: Callable[[Any], int] | None = None,
) -> int:
    """Run ``tha mnist`` in ``nproc`` worker processes on this machine through torchrun's elastic
    launcher (``torch.distributed.launcher``; standalone rendezvous on a free local port, no
    restarts). ``preflight(args)`` (in this process, before any worker starts) returns the batch
    size, so a bad one is refused at once. Returns the exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ConfigError(f"--nproc-per-node {nproc}: give at least 1 process")
    if preflight is not None:
        check_world_size(preflight(args), nproc)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"spikeforge-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # the workers say what went wrong; the launcher's own log would repeat it as tracebacks
    elastic_log = logging.getLogger("torch.distributed.elastic")
    level = elastic_log.level
    elastic_log.setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, _spawned)(args, start, train, report)
    except ChildFailedError as err:  # rank 0's status (it reported the error), else interrupted or the worst
        codes = {rank: f.exitcode for rank, f in err.failures.items()}
        if codes.get(0, 0) > 0:
            code = codes[0]
        else:
            code = 130 if any(c == 130 or c < 0 for c in codes.values()) else max(codes.values())
        if code not in (2, 130):
            failed = ", ".join(f"rank {r}: exit status {c}" for r, c in sorted(codes.items()))
            print(f"spikeforge: a worker failed ({failed}); its message is above", file=sys.stderr)
        return code
    except SignalException:  # Ctrl-C or kill of this process: the workers got it too, rank 0 said so
        return 130
    finally:
        elastic_log.setLevel(level)
    return 0
