"""spikeforge sweep: search spaces, studies shared by worker processes on SQLite and PostgreSQL,
a killed worker's trial re-queued, the report, and clear errors for bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikeforge.cli.main import main
from spikeforge.config import ConfigError
from spikeforge.sweep.space import parse_space

optuna = pytest.importorskip("optuna")

FAKE = Path(__file__).with_name("sweep_fake_experiment.py")
SPACE = """
[study]
sampler = "grid"
[params]
x = { low = 0.0, high = 0.6, num = 3 }
y = ["a", "b"]
"""


def _sweep_argv(tmp: Path, study: str, *extra: str, storage: str | None = None, fake_args: str = "") -> list[str]:
    (tmp / "space.toml").write_text(SPACE) if not (tmp / "space.toml").exists() else None
    argv = [
        "sweep",
        "exec",
        "--space",
        str(tmp / "space.toml"),
        "--study",
        study,
        "--root",
        str(tmp / "runs"),
        "--command",
        f"{sys.executable} {FAKE} --out {{out}} {fake_args}",
        "--metric",
        "accuracy",
        "--quiet",
        *extra,
    ]
    return argv + (["--storage", storage] if storage else [])


def _events(tmp: Path, study: str) -> dict[str, list[str]]:
    out = {}
    for log in sorted((tmp / "runs" / study).glob("*/*/events.log")):
        out[str(log.parent.relative_to(tmp / "runs" / study))] = log.read_text().split()
    return out


def _plain(events: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: [e.split(":")[0] for e in v] for k, v in events.items()}


# ------------------------------------------------------------------------------------ spaces
def test_space_grid_values_and_types():
    s = parse_space(
        {
            "params": {
                "a": [1, 2],
                "b": {"low": 1, "high": 9, "step": 4},
                "c": {"low": 0.001, "high": 0.1, "log": True, "num": 3},
                "d": {"low": 0.0, "high": 1.0, "num": 5},
                "e": "fixed",
            }
        }
    )
    grid = s.grid_space()
    assert grid["a"] == [1, 2] and grid["b"] == [1, 5, 9] and grid["e"] == ["fixed"]
    assert grid["c"] == pytest.approx([0.001, 0.01, 0.1]) and grid["d"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert s.params[1].is_int and not s.params[3].is_int
    assert len(s.grid()) == 2 * 3 * 3 * 5 and s.grid()[0] == {"a": 1, "b": 1, "c": 0.001, "d": 0.0, "e": "fixed"}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"x": {"low": 1.0, "high": 1.0, "step": 0.1}}, "is empty"),
        ({"x": []}, "empty list"),
        ({"x": {"low": 0, "high": 1, "log": True, "num": 3}}, "low > 0"),
        ({"x": {"low": 0.0, "high": 1.0}}, "finite set"),
        ({"x": {"low": 0.0, "high": 1.0, "steps": 0.1}}, "unknown field"),
        ({"x": {"high": 1.0}}, "needs both"),
        ({}, "no [params]"),
    ],
)
def test_space_errors(params, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_space({"params": params})


def test_space_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not one of"):
        parse_space({"study": {"sampler": "annealing"}, "params": {"x": [1]}})
    bad = tmp_path / "s.toml"
    bad.write_text("[params\nx = 1")
    assert main(["sweep", "exec", "--space", str(bad), "--study", "s", "--command", "x {out}", "--metric", "m"]) == 2
    assert (
        main(["sweep", "exec", "--space", str(tmp_path), "--study", "s", "--command", "x {out}", "--metric", "m"]) == 2
    )


# ------------------------------------------------------------------------------- sqlite
def test_two_workers_share_a_study_each_configuration_once(tmp_path, capsys):
    assert main(_sweep_argv(tmp_path, "grid", "--jobs", "2", "--seeds", "0,1")) == 0
    events = _plain(_events(tmp_path, "grid"))
    assert len(events) == 6 * 2 and all(v == ["start", "done"] for v in events.values())
    capsys.readouterr()
    assert main(["sweep", "report", "--study", "grid", "--root", str(tmp_path / "runs")]) == 0
    table = capsys.readouterr().out
    assert "| x | y | accuracy mean | accuracy std | seeds | seed 0 | seed 1 |" in table
    assert "| 0.3000 | b | 1.1050 | 0.0071 | 2 | 1.1000 | 1.1100 | complete |" in table
    for name in ("grid.csv", "grid.md", "grid_x.png", "grid_y.png", "grid_history.png"):
        assert (tmp_path / "runs" / "grid" / name).is_file()
    # running the command again runs nothing
    assert main(_sweep_argv(tmp_path, "grid", "--seeds", "0,1")) == 0
    assert _plain(_events(tmp_path, "grid")) == events


def _kill_and_restart(tmp_path: Path, study: str, storage: str | None) -> None:
    argv = _sweep_argv(tmp_path, study, "--heartbeat", "1", storage=storage, fake_args="--sleep 1.5")
    cmd = [sys.executable, "-m", "spikeforge.cli.main", *argv]
    victim = subprocess.Popen(cmd)
    other = subprocess.Popen(cmd)
    deadline = time.time() + 60
    mine = f"start:{victim.pid}"
    while time.time() < deadline and not any(v == [mine] for v in _events(tmp_path, study).values()):
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # mid-trial: its experiment run dies with it
    victim.wait()
    assert other.wait(timeout=120) == 0  # the other worker goes on (and takes the re-queued trial)
    assert subprocess.run(cmd, timeout=120).returncode == 0  # re-running the command: nothing left
    events = _plain(_events(tmp_path, study))
    assert len(events) == 6
    assert all(v.count("done") == 1 for v in events.values()), events  # nothing finished ran twice
    killed = [k for k, v in events.items() if v.count("start") == 2]
    assert len(killed) == 1 and events[killed[0]] == ["start", "start", "done"]
    study_obj = optuna.load_study(study_name=study, storage=storage or f"sqlite:///{tmp_path / 'runs' / 'sweeps.db'}")
    trials = study_obj.get_trials()
    ran = [t for t in trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    assert len({t.user_attrs["config_id"] for t in ran}) == len(ran) == 6
    assert [t.state.name for t in trials].count("FAIL") == 1


def test_killed_worker_trial_is_requeued_sqlite(tmp_path):
    _kill_and_restart(tmp_path, "killed", None)


# ----------------------------------------------------------------------------- postgres
PG_URL = os.environ.get("SPIKEFORGE_TEST_POSTGRES")


@pytest.mark.skipif(
    not PG_URL,
    reason="no PostgreSQL server: .ci/run starts one where it can (root on Debian) and "
    "sets SPIKEFORGE_TEST_POSTGRES to its URL",
)
def test_workers_share_a_postgres_study_and_survive_a_kill(tmp_path):
    study = f"pg_{os.getpid()}_{int(time.time())}"
    assert main(_sweep_argv(tmp_path, study + "_grid", "--jobs", "2", storage=PG_URL)) == 0
    assert all(v == ["start", "done"] for v in _plain(_events(tmp_path, study + "_grid")).values())
    assert len(_events(tmp_path, study + "_grid")) == 6
    _kill_and_restart(tmp_path, study, PG_URL)


# ------------------------------------------------------------------------------ pruning
def test_median_pruner_stops_poor_trials(tmp_path):
    (tmp_path / "space.toml").write_text(
        '[study]\nsampler = "grid"\npruner = "median"\n[params]\nx = [0.3, 0.35, 2.0, 3.0]\n'
    )
    argv = _sweep_argv(tmp_path, "prune", "--history", "epochs.*.val", fake_args="--epochs 4 --sleep 2")
    assert main(argv) == 0
    study = optuna.load_study(study_name="prune", storage=f"sqlite:///{tmp_path / 'runs' / 'sweeps.db'}")
    by_x = {t.params["x"]: t.state.name for t in study.get_trials()}
    assert by_x[0.3] == "COMPLETE" and by_x[0.35] == "COMPLETE"
    assert by_x[3.0] == "PRUNED"  # far below the median of the earlier trials at the same epoch


# --------------------------------------------------------------------------- bad input
def test_unreachable_storage_is_a_clear_error(tmp_path, capsys):
    url = "postgresql+psycopg://nobody:none@127.0.0.1:9/nothing"
    assert main(_sweep_argv(tmp_path, "s", storage=url)) == 2
    err = capsys.readouterr().err
    assert "cannot reach the sweep storage" in err and url in err and "Traceback" not in err


def test_jobs_zero_and_bad_seeds_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(_sweep_argv(tmp_path, "s", "--jobs", "0"))
    assert "argument --jobs: must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_sweep_argv(tmp_path, "s", "--seeds", "3-1"))
    assert "seeds must look like" in capsys.readouterr().err


def test_random_sampler_needs_trials_and_study_identity_is_kept(tmp_path, capsys):
    (tmp_path / "space.toml").write_text('[study]\nsampler = "random"\n[params]\nx = { low = 0.0, high = 1.0 }\n')
    assert main(_sweep_argv(tmp_path, "r")) == 2
    assert "needs --trials" in capsys.readouterr().err
    assert main(_sweep_argv(tmp_path, "r", "--trials", "3", "--sampler-seed", "1")) == 0
    assert len(_events(tmp_path, "r")) == 3
    (tmp_path / "space.toml").write_text('[study]\nsampler = "random"\n[params]\nx = { low = 0.0, high = 2.0 }\n')
    assert main(_sweep_argv(tmp_path, "r", "--trials", "3")) == 2
    assert "exists with a different space" in capsys.readouterr().err
    (tmp_path / "space.toml").write_text('[study]\nsampler = "random"\n[params]\nx = { low = 0.0, high = 1.0 }\n')
    assert main(_sweep_argv(tmp_path, "r", "--trials", "3", "--", "--epochs", "2")) == 2  # other run arguments
    assert "exists with a different arguments" in capsys.readouterr().err


def test_report_of_unknown_study(tmp_path, capsys):
    (tmp_path / "space.toml").write_text("[params]\nx = [0.1]\n")
    assert main(_sweep_argv(tmp_path, "known")) == 0
    capsys.readouterr()
    assert main(["sweep", "report", "--study", "unknown", "--root", str(tmp_path / "runs")]) == 2
    assert "no study 'unknown'" in capsys.readouterr().err


# ------------------------------------------------------------------- real experiments
def test_diehl_cook_rule_sweep_runs_ordinary_run_directories(tmp_path, capsys):
    (tmp_path / "space.toml").write_text('[params]\n"model.stdp.kind" = ["triplet", "postpre"]\n')
    tiny = ["--neurons", "10", "--train-examples", "10", "--label-examples", "10", "--test-examples", "10", "--no-plot"]
    argv = [
        "sweep",
        "diehl-cook",
        "--space",
        str(tmp_path / "space.toml"),
        "--study",
        "rules",
        "--root",
        str(tmp_path / "runs"),
        "--quiet",
        "--",
        *tiny,
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["sweep", "report", "--study", "rules", "--root", str(tmp_path / "runs")]) == 0
    table = capsys.readouterr().out
    assert "| model.stdp.kind | accuracy mean |" in table and "| postpre |" in table and "| triplet |" in table
    results = sorted((tmp_path / "runs" / "rules").glob("*/run/results.json"))
    assert len(results) == 2
    import json

    kinds = {json.loads(p.read_text())["model"]["stdp"]["kind"] for p in results}
    assert kinds == {"triplet", "postpre"}  # each trial is an ordinary run with its own settings


def test_unknown_config_key_is_refused_by_the_experiment(tmp_path, capsys):
    (tmp_path / "space.toml").write_text('[params]\n"train.nonexistent" = [1, 2]\n')
    argv = [
        "sweep",
        "tha-mnist",
        "--space",
        str(tmp_path / "space.toml"),
        "--study",
        "bad",
        "--root",
        str(tmp_path / "runs"),
        "--quiet",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "refuses the swept settings" in err and "train.nonexistent" in err
    assert not (tmp_path / "runs" / "bad").exists()  # nothing ran


def test_olfaction_sweep_reads_its_metric_and_epochs(tmp_path, capsys, monkeypatch):
    from test_olfaction_cli import TINY as OLFACTION_TINY  # the olfaction tests' tiny network

    monkeypatch.setenv("SPIKEFORGE_OLFACTION_CACHE", str(tmp_path / "cache"))
    (tmp_path / "space.toml").write_text('[study]\npruner = "median"\n[params]\n"run.lr" = [1e-3, 3e-3]\n')
    tiny = ["--kc", "20", "--mode", "decolle", "--epochs", "2", *OLFACTION_TINY, "--no-plot"]
    argv = [
        "sweep",
        "olfaction",
        "--space",
        str(tmp_path / "space.toml"),
        "--study",
        "olf",
        "--root",
        str(tmp_path / "runs"),
        "--quiet",
        "--",
        *tiny,
    ]
    assert main(argv) == 0
    study = optuna.load_study(study_name="olf", storage=f"sqlite:///{tmp_path / 'runs' / 'sweeps.db'}")
    done = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 2 and all(0.0 <= (t.value or 0.0) <= 1.0 for t in done)
    assert all(len(t.intermediate_values) >= 1 for t in done)  # per-epoch validation accuracy reported
