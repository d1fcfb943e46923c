"""What every experiment needs while it runs: deferred interrupts, a progress bar, seeded
generators, thread and device settings, and the provenance recorded in ``results.json``."""

from __future__ import annotations

import functools
import os
import platform
import signal
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ...config import ConfigError


class InterruptedAtBoundary(KeyboardInterrupt):
    """A Ctrl-C or kill that :meth:`DeferredInterrupts.check` raised at a safe point: the state is
    whole, so saving it is correct. (A plain :class:`KeyboardInterrupt` may come from anywhere.)"""


class DeferredInterrupts:
    """Hold Ctrl-C (SIGINT) and ``kill`` (SIGTERM) until the loop reaches a safe point.

    Inside ``with DeferredInterrupts() as stop:``, a signal only sets a flag; the loop calls
    ``stop.check()`` at every example boundary, which raises :class:`InterruptedAtBoundary` (a
    :class:`KeyboardInterrupt`) there; the loop saves on ``except InterruptedAtBoundary`` only, so
    what it saves is the state after a whole example, never half of one.
    Outside the main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum, _frame) -> None:
        if self.pending is None:
            print(
                "\nspikeforge: interrupt received; stopping after the current example or iteration, saving",
                file=sys.stderr,
                flush=True,
            )
        self.pending = signum

    def __enter__(self) -> DeferredInterrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def check(self) -> None:
        """Raise :class:`InterruptedAtBoundary` if a signal arrived since the loop started."""
        if self.pending is not None:
            raise InterruptedAtBoundary

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def progress_bar(total: int, *, initial: int = 0, desc: str = "", quiet: bool = False, unit: str = "ex"):
    """The progress bar of every experiment (tqdm; nothing when ``quiet``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=quiet, dynamic_ncols=True, mininterval=1.0)


def numpy_rng(seed: int) -> np.random.Generator:
    """The numpy generator of a seed (every numpy draw of an experiment comes from one)."""
    return np.random.default_rng(seed)


def torch_generator(seed: int):
    """The torch CPU generator of a seed."""
    import torch

    return torch.Generator().manual_seed(seed)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in torch (and numba, where it is loaded); None: leave as is."""
    if not threads:
        return
    import torch

    torch.set_num_threads(threads)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]


def check_device(device: str | None) -> str | None:
    """``device`` if torch can use it here, else a :class:`ConfigError` saying why and what to use."""
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {device!r} is not a torch device (use cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {device}: no CUDA GPU is usable here (torch {torch.__version__}, built for CUDA "
                f"{torch.version.cuda or 'none'}, torch.cuda.is_available() is False); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: Apple MPS is not available here; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {device}: spikeforge runs on cpu, cuda or mps devices, not {dev.type}")
    return device


def total_memory_bytes() -> int | None:
    """Physical memory of this machine (None where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


@functools.lru_cache(maxsize=1)
def _git() -> dict[str, Any] | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(engine: str | None = None, git: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where a result comes from: versions, the git commit (with a dirty flag) when the package runs
    from a git checkout, the CPU, the thread counts and the engine."""
    from ... import __version__

    threads: dict[str, Any] = {"cpu_count": os.cpu_count()}
    if "torch" in sys.modules:
        threads["torch"] = sys.modules["torch"].get_num_threads()
    if "numba" in sys.modules:
        threads["numba"] = sys.modules["numba"].get_num_threads()
    return {
        "spikeforge": __version__,
        "git": git if git is not None else _git(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": _version("numba"),
        "torch": _version("torch"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "threads": threads,
        "engine": engine,
    }
