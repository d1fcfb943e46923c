"""Optuna studies on a relational database: storage, study creation, and the bookkeeping that lets
several workers (processes or machines) share one study.

How a shared study stays consistent:

* Every worker records a heartbeat for its running trial. A worker that dies (``kill -9``, a lost
  machine) stops beating; the next worker to look marks its trial failed
  (``optuna.storages.fail_stale_trials``) and re-queues the same configuration, which then resumes
  in the same run directory (run directories are named by configuration, not by trial).
* A configuration is identified by a hash of its swept values (``config_id``). Before a worker runs
  a trial it checks whether an earlier trial of the same configuration is already finished,
  running or queued; if so it does not run it (a finished one is reused, a live one left alone).
  Nothing finished is run twice.
* Grids are queued as fixed-parameter trials; re-running the command queues only the
  configurations that have no finished, running or queued trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

from ..config import ConfigError
from .space import Space

FINISHED_OK = ("COMPLETE", "PRUNED")
LIVE = ("RUNNING", "WAITING")


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "spikeforge sweep needs optuna: pip install 'spikeforge[sweep]' (optuna, and psycopg for PostgreSQL)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats with ask/tell and fail_stale_trials are marked experimental; we rely on them knowingly
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


def config_id(params: dict[str, Any]) -> str:
    """A short stable name for one configuration of the swept values."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def default_storage(root: Path) -> str:
    return f"sqlite:///{(root / 'sweeps.db').resolve()}"


_LOCK_ENGINES: dict[str, Any] = {}


@contextlib.contextmanager
def local_lock(url: str):
    """Workers take trials one at a time: two workers must not take the same queued trial (SQLite
    has no row locks) nor queue the same grid twice. SQLite: a file lock beside the database (its
    workers share one machine); PostgreSQL: an advisory lock; MySQL: GET_LOCK; others: none."""
    if url.startswith("sqlite:///"):
        if fcntl is None:  # pragma: no cover - not POSIX
            yield
            return
        with open(url[len("sqlite:///") :] + ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    if not url.startswith(("postgresql", "mysql")):
        yield
        return
    import sqlalchemy

    engine = _LOCK_ENGINES.get(url)
    if engine is None:
        engine = _LOCK_ENGINES[url] = sqlalchemy.create_engine(url, pool_pre_ping=True)
    pg = url.startswith("postgresql")
    with engine.connect() as conn:
        if pg:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(731295)"))
        else:
            conn.execute(sqlalchemy.text("SELECT GET_LOCK('spikeforge_sweep', 600)"))
        try:
            yield
        finally:
            if pg:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(731295)"))
            else:
                conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK('spikeforge_sweep')"))
            conn.commit()


def check_reachable(url: str) -> None:
    """Connect once, so that a wrong or unreachable URL is an error naming it, not a traceback."""
    import sqlalchemy

    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if path.exists() and path.is_dir():
            raise ConfigError(f"storage {url}: {path} is a directory; give a file name, e.g. {path}/sweeps.db")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"storage {url}: cannot create {path.parent}: {err.strerror}") from None
    kwargs: dict[str, Any] = {}
    if url.startswith(("postgresql", "mysql")):
        kwargs["connect_args"] = {"connect_timeout": 5}
    try:
        engine = sqlalchemy.create_engine(url, **kwargs)
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"storage {url}: the database driver is not installed ({err.name}); for PostgreSQL: "
            f"pip install 'psycopg[binary]'"
        ) from None
    except Exception as err:  # sqlalchemy raises many kinds; all mean "cannot reach it"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"cannot reach the sweep storage {url}: {first}. Check the URL, that the server runs and "
            f"accepts connections, or omit --storage to use the local SQLite file"
        ) from None


def open_storage(url: str, heartbeat_s: int = 10, grace_s: int | None = None):
    optuna = _optuna()
    check_reachable(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True}
    retry: dict[str, Any]
    if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # optuna >= 4.9
        retry = {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)}
    else:  # pragma: no cover - older optuna
        retry = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=3)}
    for attempt in range(10):  # workers starting together on a new database race to create its tables
        try:
            with local_lock(url):
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_s,
                    grace_period=grace_s if grace_s is not None else 3 * heartbeat_s,
                    **retry,
                )
        except Exception as err:
            text = type(err).__name__ + str(err)[:300]
            if attempt == 9 or not ("IntegrityError" in text or "already exists" in text):
                raise
            time.sleep(0.5 + 0.3 * attempt)
    raise AssertionError("unreachable")


def make_sampler(space: Space, seed: int | None):
    optuna = _optuna()
    if space.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)  # a grid runs queued fixed-parameter trials


def make_pruner(space: Space):
    optuna = _optuna()
    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def open_study(
    name: str,
    storage,
    space: Space,
    experiment: str,
    direction: str,
    seeds: list[int] | None,
    metric: str,
    sampler_seed: int | None = None,
    passthrough: list[str] | None = None,
):
    """Create the study, or load it when it exists and was made for the same experiment and space."""
    optuna = _optuna()
    identity = {
        "experiment": experiment,
        "space": {
            p.key: (list(p.choices) if p.choices is not None else [p.low, p.high, p.step, p.log, p.num])
            for p in space.params
        },
        "sampler": space.sampler,
        "seeds": seeds,
        "arguments": list(passthrough or []),
    }
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(space, sampler_seed),
        pruner=make_pruner(space),
        direction=direction,
        load_if_exists=True,
    )
    if "metric" not in study.user_attrs:
        study.set_user_attr("metric", metric)
    saved = study.user_attrs.get("identity")
    if saved is None:
        study.set_user_attr("identity", json.loads(json.dumps(identity)))
    elif saved != json.loads(json.dumps(identity)):
        diffs = [k for k in identity if json.loads(json.dumps(identity[k])) != saved.get(k)]
        raise ConfigError(
            f"study '{name}' exists with a different {', '.join(diffs)} (saved: "
            f"{', '.join(f'{k} = {saved.get(k)!r}' for k in diffs)}); use the same settings to continue it, "
            f"or another --study name"
        )
    return study


def trials_by_config(study) -> dict[str, list]:
    out: dict[str, list] = {}
    for t in study.get_trials(deepcopy=False):
        cid = t.user_attrs.get("config_id") or (config_id(t.params) if t.params else None)
        if cid is not None:
            out.setdefault(cid, []).append(t)
    return out


def queue_missing_grid(study, space: Space) -> int:
    """Queue every grid configuration that has no finished, running or queued trial; returns how many."""
    taken = set()
    for t in study.get_trials(deepcopy=False):
        if t.state.name in FINISHED_OK + LIVE:
            params = t.params or t.system_attrs.get("fixed_params", {})
            taken.add(config_id(params))
    n = 0
    for params in space.grid():
        cid = config_id(params)
        if cid not in taken:
            study.enqueue_trial(params, user_attrs={"config_id": cid}, skip_if_exists=False)
            taken.add(cid)
            n += 1
    return n


def waiting_count(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "WAITING")


def owner_of(study, trial_number: int, cid: str):
    """An earlier trial of the same configuration that is finished, running or queued, if any."""
    best = None
    for t in study.get_trials(deepcopy=False):
        if t.number >= trial_number:
            continue
        tid = t.user_attrs.get("config_id") or config_id(t.params or t.system_attrs.get("fixed_params", {}))
        if tid == cid and t.state.name in FINISHED_OK + LIVE:
            if best is None or (t.state.name == "COMPLETE" and best.state.name != "COMPLETE"):
                best = t
    return best
