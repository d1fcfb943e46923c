"""train.log of a Diehl & Cook run: a line per interval as it trains, appended across resumes,
every example once."""

import shutil

from spikeforge.experiments.diehl_cook import Experiment
from spikeforge.experiments.diehl_cook_trainlog import log_interval

ARGS = dict(neurons=5, train_examples=24, checkpoint_every=8)
OVER = ["model.protocol.example_ms=60", "model.protocol.rest_ms=20"]
#: what a line says that does not depend on timing or on the process
SAME = ("examples", "epoch", "index", "spikes_per_presentation", "presentations_per_example", "mean_theta_mv")


def _lines(path):
    """The data lines of a train.log, as dicts."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        stamp, *fields = line.split(" ")
        assert stamp.endswith("Z"), line
        out.append(dict(f.split("=", 1) for f in fields))
    return out


def test_interval_is_the_setting_or_a_tenth_of_a_short_run():
    assert log_interval(1000, 60000) == 1000 and log_interval(1000, 3000) == 300
    assert log_interval(1000, 24) == 2 and log_interval(1000, 5) == 1 and log_interval(7, 60000) == 7


def test_training_writes_a_line_per_interval(tmp_path):
    exp = Experiment.from_sources(tmp_path / "run", None, OVER, ARGS, quiet=True)
    with exp.rd:
        exp.train()
    lines = _lines(tmp_path / "run" / "train.log")
    assert [int(d["examples"]) for d in lines] == list(range(2, 25, 2))
    last = lines[-1]
    assert last["epoch"] == "0" and last["index"] == "24"
    for key in ("running_acc", "ex_per_s", "max_theta_mv", "peak_rss_mib"):
        assert key in last, key
    assert float(last["mean_theta_mv"]) > 20.0  # theta starts at 20 mV and rises while learning
    assert float(last["spikes_per_presentation"]) >= 0 and float(last["presentations_per_example"]) >= 1
    assert "started: N = 5, profile default" in (tmp_path / "run" / "train.log").read_text()


def test_a_resumed_run_appends_and_logs_every_example_once(tmp_path, monkeypatch):
    saved = []
    original = Experiment._save

    def spy(self, engine, progress):
        original(self, engine, progress)
        if progress["index"] == 8 and not saved:
            shutil.copytree(self.out, tmp_path / "killed")
            saved.append(True)

    monkeypatch.setattr(Experiment, "_save", spy)
    full = Experiment.from_sources(tmp_path / "full", None, OVER, ARGS, quiet=True)
    with full.rd:
        full.train()
    monkeypatch.setattr(Experiment, "_save", original)
    # as if killed after example 24 was logged but before its checkpoint: the log runs past the
    # checkpoint at example 8 that the run resumes from
    shutil.copy(tmp_path / "full" / "train.log", tmp_path / "killed" / "train.log")
    resumed = Experiment.from_sources(tmp_path / "killed", None, OVER, ARGS, quiet=True)
    with resumed.rd:
        resumed.train()
    text = (tmp_path / "killed" / "train.log").read_text()
    assert "dropped 8 line(s) after example 8" in text and "resumed: N = 5" in text
    got, want = _lines(tmp_path / "killed" / "train.log"), _lines(tmp_path / "full" / "train.log")
    assert [int(d["examples"]) for d in got] == list(range(2, 25, 2))  # each once, in order
    assert [{k: d[k] for k in SAME} for d in got] == [{k: d[k] for k in SAME} for d in want]
    # resumed again with nothing left to train: the log is left as it was
    again = Experiment.from_sources(tmp_path / "killed", None, OVER, ARGS, quiet=True)
    with again.rd:
        again.train()
    assert (tmp_path / "killed" / "train.log").read_text() == text


def test_stability_records_of_a_resumed_run_add_up():
    import numpy as np

    from spikeforge.experiments.diehl_cook_trainlog import stability_so_far

    class Engine:
        def __init__(self, record):
            self.record = record

        def stability(self):
            return self.record

    first = {"example": 3, "step": 10, "neuron": 1, "g_e": 0.5, "g_i": 420.0, "factor": 2.1}
    a = stability_so_far(None, Engine({"substep_neuron_steps": np.int64(4), "first_unstable": None}))
    assert a == {"substep_neuron_steps": 4, "first_unstable": None} and type(a["substep_neuron_steps"]) is int
    b = stability_so_far(a, Engine({"substep_neuron_steps": 3, "first_unstable": first}))
    assert b == {"substep_neuron_steps": 7, "first_unstable": first}
    c = stability_so_far(b, Engine({"substep_neuron_steps": 0, "first_unstable": {**first, "example": 9}}))
    assert c["first_unstable"] == first  # the first one stays the first
    layers = {"exc": {"substep_neuron_steps": 2, "max_substeps": 3}}
    d = stability_so_far(
        {"layers": layers}, Engine({"layers": {"exc": {"substep_neuron_steps": 5, "max_substeps": 2}}})
    )
    assert d == {"layers": {"exc": {"substep_neuron_steps": 7, "max_substeps": 3}}}
    assert stability_so_far(a, object()) == a  # an engine without a record


def test_the_log_is_read_back_and_drawn_by_plot(tmp_path):
    import math

    from spikeforge.experiments.diehl_cook_trainlog import read_train_log

    exp = Experiment.from_sources(tmp_path / "run", None, OVER, ARGS, quiet=True)
    with exp.rd:
        exp.train()
        figures = exp.plot()
    path = tmp_path / "run" / "train.log"
    log, lines = read_train_log(path), _lines(path)
    assert list(log["examples"]) == [float(d["examples"]) for d in lines]
    assert list(log["mean_theta_mv"]) == [float(d["mean_theta_mv"]) for d in lines]
    # 'none' (no running accuracy yet: the window is 1000 examples) reads as NaN
    assert all(math.isnan(v) for v in log["running_acc"])
    png = tmp_path / "run" / "training.png"
    assert str(png) in figures and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plotting_a_log_without_data_lines_is_refused(tmp_path):
    import pytest

    from spikeforge.plotting.figures import plot_training_log

    with pytest.raises(ValueError, match="no data lines"):
        plot_training_log({"examples": []}, tmp_path / "x.png")
