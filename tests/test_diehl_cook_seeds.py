"""``spikeforge diehl-cook run --seeds``: one process and run directory per seed, a summary beside
them, finished seeds skipped when run again, bad input refused clearly."""

import json
import statistics

import pytest

from spikeforge.cli.main import main

TINY = [
    "--neurons",
    "5",
    "--train-examples",
    "12",
    "--label-examples",
    "10",
    "--test-examples",
    "8",
    "--no-plot",
    "--set",
    "model.protocol.example_ms=60",
    "--set",
    "model.protocol.rest_ms=20",
]


def test_two_seeds_run_apart_and_the_summary_matches_their_results(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPIKEFORGE_DATA", raising=False)
    out = tmp_path / "multi"
    assert main(["diehl-cook", "run", "--out", str(out), "--seeds", "3,1", "--jobs", "2", "--quiet", *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    results = {s: json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in (1, 3)}
    assert [r["seed"] for r in results.values()] == [1, 3]  # each run got its own seed
    acc = [results[s]["accuracy"] for s in (1, 3)]
    assert [r["seed"] for r in summary["seeds"]] == [1, 3]
    assert [r["accuracy"] for r in summary["seeds"]] == acc
    assert [r["run_dir"] for r in summary["seeds"]] == [str(out / "seed-1"), str(out / "seed-3")]
    assert summary["n"] == 2 and summary["failed"] == [] and summary["profile"] == "default"
    assert summary["mean"] == pytest.approx(statistics.fmean(acc))
    assert summary["std"] == pytest.approx(statistics.stdev(acc))
    assert results[1]["train_examples_seen"] == 12 and (out / "seed-1" / "train.log").is_file()
    md = (out / "summary.md").read_text()
    assert f"{100 * summary['mean']:.2f}" in md and str(out / "seed-3") in md
    printed = capsys.readouterr().out
    assert "summary.json" in printed
    # again, with one seed more: the finished seeds are skipped (their results are not rewritten)
    before = (out / "seed-1" / "results.json").stat().st_mtime_ns
    assert main(["diehl-cook", "run", "--out", str(out), "--seeds", "1-3", "--quiet", *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["seed"], r["status"]) for r in summary["seeds"]] == [(1, "skipped"), (2, "ran"), (3, "skipped")]
    assert (out / "seed-1" / "results.json").stat().st_mtime_ns == before
    assert summary["n"] == 3 and summary["seeds"][0]["accuracy"] == acc[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0-1", "--jobs", "0"], "argument --jobs: must be a positive integer, got 0"),
        (["--seeds", ""], "seeds must be non-negative integers"),
        (["--seeds", "1,2,1"], "seed(s) 1 given twice in '1,2,1': name each seed once"),
        (["--seeds", "4-2"], "seeds must look like 0,1,2 or 0-4"),
    ],
)
def test_bad_seeds_or_jobs_are_refused_by_the_parser(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        main(["diehl-cook", "run", "--out", str(tmp_path / "m"), *args, *TINY])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_seeds_with_seed_or_on_a_single_run_are_refused(tmp_path, capsys):
    out = str(tmp_path / "m")
    assert main(["diehl-cook", "run", "--out", out, "--seeds", "0,1", "--seed", "2", *TINY]) == 2
    assert "--seed 2 and --seeds 0,1 both given" in capsys.readouterr().err
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert main(["diehl-cook", "run", "--out", out, "--seeds", "0,1", *TINY]) == 2
    assert "holds a single run" in capsys.readouterr().err
    # a bad setting is refused before any seed runs
    assert main(["diehl-cook", "run", "--out", str(tmp_path / "n"), "--seeds", "0", "--set", "run.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "n").exists()
