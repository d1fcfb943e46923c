"""The run directory: one run per directory, locked while a command uses it, its resolved config
and the checkpoints it wrote on record, results with provenance."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ...config import ConfigError, Params, to_toml
from ...io.atomic import atomic_write_json, atomic_write_text, remove_stale_temporaries
from ...io.checkpoint import (
    CheckpointFallbackWarning,
    checkpoint_exists,
    checkpoint_paths,
    load_checkpoint,
    save_checkpoint,
)
from . import runtime
from .runtime import DeferredInterrupts, progress_bar, provenance
from .spec import ExperimentSpec, diff

RECORD = "config.json"
LOCK = ".lock"


class RunDir:
    """A run directory ``path`` of the experiment ``spec``.

    ``config.json`` records ``{"experiment", "config", "checkpoints"}``: the resolved config the run
    was made with and the name of every checkpoint it saved (so a checkpoint deleted later is
    noticed instead of silently retraining over the old run); ``config.toml`` holds the same config
    as TOML (pass it back with ``--config``)."""

    def __init__(self, path: str | Path, spec: ExperimentSpec, quiet: bool = False):
        self.path = Path(path)
        self.spec = spec
        self.quiet = quiet
        self.cfg: Params | None = None
        self._record: dict[str, Any] = {}
        self._lock_fd: int | None = None
        self._recorded = False
        self._loaded = False
        self._git_at_open: dict[str, Any] | None = None
        self._check_path()

    # ------------------------------------------------------------------ the directory
    def _check_path(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise ConfigError(f"--out {p} is a file, not a directory: give a directory for the run")
        for parent in p.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ConfigError(f"--out {p} is under {parent}, which is a file: give a directory")
                break

    def saved(self) -> dict[str, Any] | None:
        """The config of the run this directory holds (None if it holds none)."""
        path = self.path / RECORD
        self._loaded = True
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(
                f"{path} is corrupt ({err}): it records the run's settings. Restore it, or pass --fresh "
                f"to delete the run in {self.path} and start again"
            ) from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path} is not a spikeforge run record; move it away or choose another --out")
        if "config" not in record and self.spec.legacy is not None:  # written by spikeforge <= 0.1.0
            record = {"experiment": self.spec.name, "config": self.spec.legacy(record), "checkpoints": []}
        if record.get("experiment") != self.spec.name or not isinstance(record.get("config"), dict):
            raise ConfigError(
                f"{self.path} holds a run of {record.get('experiment') or 'another program'!r}, not "
                f"{self.spec.name!r} (see {path}): choose another --out"
            )
        self._record = record
        return record["config"]

    def open(self, cfg: Params, *, fresh: bool = False, create: bool = True) -> RunDir:
        """Lock the directory, refuse a config that disagrees with the saved run (unless
        ``fresh``: then the old run is deleted first); ``cfg`` is recorded with the first file saved."""
        if not create and not (self.path / RECORD).is_file():
            raise ConfigError(
                f"no {self.spec.name} run in {self.path}: run `spikeforge {self.spec.name} run --out {self.path}` first"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:
            raise ConfigError(f"--out {self.path} is not writable: choose a directory you can write to") from None
        except OSError as err:
            if err.errno in (errno.EROFS, errno.EACCES):
                raise ConfigError(
                    f"--out {self.path} is read-only ({err.strerror}): choose another directory"
                ) from None
            raise
        self._lock(fd)
        try:
            if fresh:
                self._clear()
            else:
                if not self._loaded:
                    self.saved()
                self.check(cfg)
            for d in (self.path, *(p for p in self.path.iterdir() if p.is_dir())):
                remove_stale_temporaries(d)  # left by a killed command (we hold the lock)
            self.cfg = cfg
            # the code that runs is the code checked out now, not when results.json is written
            # (a long run outlives commits made beside it)
            self._git_at_open = runtime._git()
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self, fd: int) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            self._lock_fd = fd
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"another spikeforge command is using the run directory {self.path} (it holds the lock "
                f"{self.path / LOCK}): wait for it to finish, or use another --out"
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _clear(self) -> None:
        names = [p for p in self.path.iterdir() if p.name != LOCK]
        if names and not (self.path / RECORD).is_file():
            raise ConfigError(
                f"--fresh: {self.path} holds files but no spikeforge run ({RECORD}); not deleting them. "
                "Choose another --out"
            )
        for p in names:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        self._record = {}

    def check(self, cfg: Params) -> None:
        """Refuse ``cfg`` if it differs from the saved run in a setting that does not continue it."""
        saved = self._record.get("config")
        if saved is None:
            return
        bad = [d for d in diff(saved, cfg.to_dict(), only_common=True) if not self.spec.is_continuable(d[0])]
        if bad:
            lines = "; ".join(f"{k} is {a!r} in the saved run, {b!r} now" for k, a, b in bad)
            raise ConfigError(
                f"{self.path} holds another run: {lines}. Use --out with a new directory for a new run, "
                f"or --fresh to delete this one and start again"
            )

    def record(self) -> None:
        """Write the run record (``config.json``, ``config.toml``) once per command: called by the
        first checkpoint or results written, so a command that fails before saving anything leaves
        no run behind."""
        if self._recorded or self.cfg is None:
            return
        self._write_record(self.cfg)
        self._recorded = True

    def _write_record(self, cfg: Params) -> None:
        self._record = {
            "experiment": self.spec.name,
            "config": cfg.to_dict(),
            "checkpoints": sorted(set(self._record.get("checkpoints", []))),
        }
        atomic_write_json(self.path / RECORD, self._record)
        atomic_write_text(self.path / "config.toml", to_toml(cfg.to_dict()))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(
        self, name: str, tensors: dict[str, Any], meta: dict[str, Any], *, recorded: bool = True
    ) -> None:
        """Save the checkpoint ``name`` (a path relative to the run directory, e.g. ``trial0/last``).
        ``recorded=False``: not listed in ``config.json``, for a checkpoint whose loss only costs
        time (the progress of a stage that can start again), so that a missing one is no error."""
        meta = {"experiment": self.spec.name, **meta}
        self.record()
        save_checkpoint(self.path / name, tensors, meta)
        if recorded and name not in self._record.get("checkpoints", []):
            self._record.setdefault("checkpoints", []).append(name)
            atomic_write_json(self.path / RECORD, self._record)

    def has_checkpoint(self, name: str) -> bool:
        """Whether ``name`` exists; a checkpoint this run saved that has disappeared is an error."""
        if checkpoint_exists(self.path / name):
            return True
        if name in self._record.get("checkpoints", []):
            path = checkpoint_paths(self.path / name).tensors
            raise ConfigError(
                f"the run in {self.path} saved the checkpoint {path.name}, which is missing: restore it, or "
                f"pass --fresh to delete the run and start again (continuing would silently retrain)"
            )
        return False

    def remove_checkpoint(self, name: str) -> None:
        """Delete the checkpoint ``name`` and its previous copy (forgotten by the record first, and
        the previous copy deleted before the current one: a kill half-way leaves no gap)."""
        if name in self._record.get("checkpoints", []):
            self._record["checkpoints"].remove(name)
            atomic_write_json(self.path / RECORD, self._record)
        paths = checkpoint_paths(self.path / name)
        for p in (paths.previous, paths.meta, paths.tensors):
            p.unlink(missing_ok=True)

    def load_checkpoint(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Load ``name``; falling back to the previous checkpoint is reported on stderr."""
        import sys
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CheckpointFallbackWarning)
            out = load_checkpoint(self.path / name)
        for w in caught:
            print(f"spikeforge: warning: {w.message}", file=sys.stderr)
        return out

    # ------------------------------------------------------------------ running
    def interrupts(self) -> DeferredInterrupts:
        return DeferredInterrupts()

    def progress(self, total: int, *, initial: int = 0, desc: str = "", unit: str = "ex"):
        return progress_bar(total, initial=initial, desc=desc, quiet=self.quiet, unit=unit)

    def log(self, msg: str) -> None:
        if not self.quiet:
            from tqdm.auto import tqdm

            tqdm.write(msg)

    def write_results(
        self, results: dict[str, Any], engine: str | None = None, provenance_extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write ``results.json`` with the run's config and provenance (plus the experiment's own
        ``provenance_extra`` entries; the git commit is the one checked out when this process opened
        the directory); returns what was written."""
        results = dict(results)
        results["config"] = self.cfg.to_dict() if self.cfg is not None else results.get("config")
        results["provenance"] = provenance(engine, self._git_at_open) | (provenance_extra or {})
        self.record()
        atomic_write_json(self.path / "results.json", results)
        return results

    def read_results(self) -> dict[str, Any]:
        path = self.path / "results.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path} is corrupt ({err}); delete it and run the test stage again") from None

    def files(self) -> list[str]:
        """The run directory's files (relative, sorted), for the end-of-run summary."""
        return sorted(
            str(p.relative_to(self.path))
            for p in self.path.rglob("*")
            if p.is_file() and not p.name.startswith(".") and ".prev." not in p.name
        )
