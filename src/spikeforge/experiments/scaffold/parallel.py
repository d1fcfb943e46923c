"""Data-parallel runs of an experiment command (``--nproc-per-node P``; ``tha mnist``, ``olfaction run``).

``spikeforge EXPERIMENT ... --nproc-per-node P`` starts ``P`` workers on this machine through
torchrun's elastic launcher (:func:`launch`); ``torchrun --nnodes N --nproc-per-node P ... -m
spikeforge.cli.main EXPERIMENT ...`` starts them on several machines. A worker (a process that
torchrun started: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set) runs
:func:`run_worker`: gloo on the CPU, NCCL on CUDA. What a command hands over is a :class:`Job`
(its start, its training function, its report, its config class and batch-size key, its hooks).

What holds for every command, by construction:

* **rank 0 owns the run directory**: it resolves the config, holds the lock, writes checkpoints,
  results and figures; the other ranks get the config from it and see a :class:`FollowerRunDir`
  that reads and writes nothing (the training state comes from rank 0 too, so resuming needs no
  shared file system);
* **interrupts stop every rank at the same boundary** (:class:`AgreedInterrupts`): at each
  ``stop.check()`` the ranks agree on whether any got Ctrl-C or ``kill`` (one tiny all-reduce);
  rank 0 saves, all exit;
* **bad input is refused before any worker starts** (``Job.preflight``, :func:`check_world_size`).

The hooks of a rank (:class:`Ranks`; :class:`OneProcess` for the one-process run, every hook an
identity) give the collectives the training loops use: :meth:`~Ranks.broadcast`,
:meth:`~Ranks.rows` (this rank's share of ``n`` rows), :meth:`~Ranks.all_sum`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...config import ConfigError, get_path
from .runtime import DeferredInterrupts, InterruptedAtBoundary, progress_bar

WORKER_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def in_worker() -> bool:
    """Whether this process was started by torchrun (or another ``env://`` launcher) as a worker."""
    return all(k in os.environ for k in WORKER_ENV)


class OneProcess:
    """The hooks of a one-process run: every collective is the identity."""

    rank, world_size, is_main = 0, 1, True

    def broadcast(self, obj: Any) -> Any:
        return obj

    def rows(self, n: int) -> tuple[int, int]:
        return 0, n

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def interrupts(self, rd) -> DeferredInterrupts:
        return rd.interrupts()


class Ranks(OneProcess):
    """One rank of the initialised default process group. The collectives of these hooks run on a
    group of their own, so their order never interleaves with those of DDP's gradient buckets."""

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        self.device = torch.device("cpu")
        self.group = dist.new_group()

    def broadcast(self, obj: Any) -> Any:
        """``obj`` of rank 0, on every rank."""
        box = [obj if self.is_main else None]
        self.dist.broadcast_object_list(box, src=0, group=self.group, device=self._object_device())
        return box[0]

    def _object_device(self):
        return self.device if self.device.type == "cuda" else None

    def _tensor_device(self):
        return self.device

    def rows(self, n: int) -> tuple[int, int]:
        """This rank's ``[start, stop)`` of ``n`` rows split as evenly as they go."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks, in place (and returned)."""
        self.dist.all_reduce(tensor, group=self.group)
        return tensor

    def interrupts(self, rd) -> AgreedInterrupts:
        return AgreedInterrupts(self)


class AgreedInterrupts(DeferredInterrupts):
    """Deferred Ctrl-C / kill that every rank obeys at the same boundary: :meth:`check` raises on
    all ranks if any rank got a signal; after rank 0 saved, the ranks leave together."""

    def __init__(self, dp: Ranks):
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
    writes nothing (the training state comes from rank 0)."""

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


def check_world_size(batch_size: int, world_size: int, key: str = "train.batch_size") -> None:
    """Refuse a number of processes that does not divide the batch size (``key``: its config key)."""
    if world_size < 1:
        raise ConfigError(f"--nproc-per-node {world_size}: give at least 1 process")
    if batch_size % world_size:
        raise ConfigError(
            f"{key} = {batch_size} cannot be split evenly between {world_size} processes "
            f"(each rank trains on batch_size / processes examples): use a batch size divisible by "
            f"{world_size}, e.g. {max(world_size, batch_size - batch_size % world_size)}, or another "
            "number of processes"
        )


@dataclass(frozen=True)
class Job:
    """One command run data-parallel. Every callable must be a module-level function or class
    (the launcher pickles the job for its workers)."""

    start: Callable[[Any], Any]
    """``start(args)``: the command's opened run directory (or None after ``--show-config``); rank 0 only"""
    train: Callable[..., dict]
    """``train(rd, log, dp=hooks)``: the training, on every rank; returns the results"""
    report: Callable[[Any, dict], None]
    """``report(rd, results)``: prints the summary, on rank 0"""
    schema: Any
    """the config class (the other ranks rebuild rank 0's config from its dict)"""
    batch_key: str
    """the config key of the training batch size (it must divide between the ranks)"""
    hooks: Callable[[], Ranks] = Ranks
    """the class of a rank's hooks (made after the process group is initialised)"""
    preflight: Callable[[Any], int] | None = None
    """``preflight(args)``: the batch size the run will use, checked before any worker starts"""


def add_nproc_argument(parser, command: str) -> None:
    """``--nproc-per-node P`` of ``spikeforge COMMAND`` (``command``, e.g. ``"tha mnist"``)."""
    from .cli import positive_int

    parser.add_argument(
        "--nproc-per-node",
        type=positive_int,
        metavar="P",
        help="train data-parallel in P processes on this machine, each on batch_size / P examples of "
        "every batch, through torchrun's launcher; for several machines run `torchrun --nnodes N "
        f"--nproc-per-node P ... -m spikeforge.cli.main {command} ...` instead (default: one process)",
    )


def run_command(args, job: Job) -> int:
    """The command of ``job``: as a torchrun worker (when this process is one), data-parallel in
    ``args.nproc_per_node`` processes (when given), else in this process. Returns the exit status."""
    if in_worker():  # started by torchrun (or by --nproc-per-node below)
        return run_worker(args, job)
    if getattr(args, "nproc_per_node", None) is not None and not getattr(args, "show_config", False):
        return launch(args, args.nproc_per_node, job)
    rd = job.start(args)
    if rd is None:
        return 0
    with rd:
        res = job.train(rd, print if not args.quiet else rd.log)
    job.report(rd, res)
    return 0


def run_worker(args, job: Job) -> int:
    """One rank of ``job`` (see :class:`Job`)."""
    import torch.distributed as dist

    # gloo for CPU tensors; NCCL for CUDA tensors where CUDA is usable (the device is in the config)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    try:
        dp = job.hooks()
        rd: Any = None
        msg: dict[str, Any] | None = None
        if dp.is_main:
            try:
                rd = job.start(args)
                if rd is not None:
                    bs = get_path(rd.cfg.to_dict(), job.batch_key)
                    check_world_size(bs, dp.world_size, job.batch_key)
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
            rd = FollowerRunDir(msg["path"], job.schema.from_dict(msg["config"]))
        with rd:
            res = job.train(rd, (print if not args.quiet else rd.log) if dp.is_main else rd.log, dp=dp)
        if dp.is_main:
            job.report(rd, res)
        return 0
    finally:
        dist.destroy_process_group()


def _spawned(args, job: Job) -> None:
    """The entry point of a worker started by :func:`launch`: the error handling of ``spikeforge``'s
    ``main`` (a message and exit status 2 for bad input, 130 when interrupted)."""
    try:
        code = run_worker(args, job)
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


def launch(args, nproc: int, job: Job) -> int:
    """Run ``job`` in ``nproc`` worker processes on this machine through torchrun's elastic
    launcher (``torch.distributed.launcher``; standalone rendezvous on a free local port, no
    restarts). ``job.preflight(args)`` (in this process, before any worker starts) returns the
    batch size, so a bad one is refused at once. Returns the exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ConfigError(f"--nproc-per-node {nproc}: give at least 1 process")
    if job.preflight is not None:
        check_world_size(job.preflight(args), nproc, job.batch_key)
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
        elastic_launch(config, _spawned)(args, job)
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
