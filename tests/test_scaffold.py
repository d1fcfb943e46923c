"""The experiment scaffold: one config merge, one source for each default, shared flags with help
and defaults, provenance in results.json."""

import argparse
import json

import numpy as np
import pytest

from spikeforge.cli.main import build_parser, main
from spikeforge.config import ConfigError, get_path
from spikeforge.experiments.scaffold import resolve_config
from spikeforge.io import load_checkpoint

TINY = [
    "--train-examples",
    "12",
    "--label-examples",
    "10",
    "--test-examples",
    "10",
    "--quiet",
    "--set",
    "model.protocol.example_ms=60",
    "--set",
    "model.protocol.rest_ms=20",
]


def _specs():
    from spikeforge.experiments.diehl_cook_config import SPEC as DC

    specs = [DC]
    try:
        from spikeforge.experiments.event_stdp_config import SPEC as ES

        specs.append(ES)
    except ImportError:
        pass
    try:
        from spikeforge.experiments.tha.config import MNIST_SPEC, SPIKE_TIMING_SPEC

        specs += [MNIST_SPEC, SPIKE_TIMING_SPEC]
    except ImportError:
        pass
    try:
        from spikeforge.experiments.tha.dataset_config import DVS_GESTURE_SPEC, FMNIST_SPEC, SHD_SPEC

        specs += [FMNIST_SPEC, DVS_GESTURE_SPEC, SHD_SPEC]
    except ImportError:
        pass
    return specs


def test_set_of_the_model_size_is_the_size_that_runs(tmp_path):
    out = tmp_path / "r"
    assert main(["diehl-cook", "train", "--out", str(out), "--set", "model.network.n_neurons=7", *TINY]) == 0
    arrays, meta = load_checkpoint(out / "checkpoint")
    assert arrays["weights"].shape == (784, 7) and meta["model"]["network"]["n_neurons"] == 7


@pytest.mark.parametrize(
    "override, needles",
    [
        ("modle.exc.refractory_ms=50", ["'modle'", "model, run"]),
        ("model.exc.refractory=50", ["'model.exc.refractory'", "refractory_ms"]),
        ("model.exc.refractory_ms.x=1", ["is a value, not a section"]),
    ],
)
def test_a_typo_at_any_depth_of_set_is_named_with_the_allowed_keys(tmp_path, capsys, override, needles):
    assert main(["diehl-cook", "run", "--out", str(tmp_path / "r"), "--set", override]) == 2
    err = capsys.readouterr().err
    for n in needles:
        assert n in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "text, needles",
    [
        ("model = 5\n", ["'model' is a section", "5"]),
        ("[modle.exc]\nrefractory_ms = 5\n", ["'modle'", "allowed keys: model, run"]),
        ("[model.exc]\ntau_m = 100\n", ["model.exc.tau_m", "tau_m_ms"]),
    ],
)
def test_config_file_keys_are_checked_at_every_depth(tmp_path, capsys, text, needles):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    assert main(["diehl-cook", "run", "--out", str(tmp_path / "r"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err
    for n in needles:
        assert n in err, err


def test_config_that_is_a_directory_says_so(tmp_path, capsys):
    assert main(["diehl-cook", "run", "--out", str(tmp_path / "r"), "--config", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_config_file_sets_one_key_of_a_section_and_keeps_the_others():
    from spikeforge.experiments.diehl_cook_config import SPEC

    default = SPEC.default_config()
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write("[model.exc]\ntheta_plus_mv = 0.025\n")
    cfg = resolve_config(SPEC, config_file=fh.name)
    assert cfg.model.exc.theta_plus_mv == 0.025
    assert cfg.model.exc.replace(theta_plus_mv=default.model.exc.theta_plus_mv) == default.model.exc


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("spec", _specs(), ids=lambda s: s.name)
def test_packaged_toml_agrees_with_the_parameter_objects(spec):
    """One source for each default: where a key is both in the packaged TOML and a default of the
    Python parameter objects, the two agree."""
    toml = spec.default_dict()
    schema_default = spec.schema.from_dict({}).to_dict() if _constructible(spec) else None
    if schema_default is None:
        pytest.skip("schema has required fields")
    validated = spec.default_config().to_dict()  # the TOML's values, typed by the schema
    bad = []
    for key, _ in _leaves(toml):
        py = get_path(schema_default, key, default=KeyError)
        if py is KeyError:
            continue
        value = get_path(validated, key)
        if py != value:
            bad.append(f"{key}: TOML {value!r}, Python {py!r}")
    assert not bad, bad


def _constructible(spec):
    try:
        spec.schema.from_dict({})
        return True
    except ConfigError:
        return False


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


#: the commands built on the experiment scaffold, and the data command
CHECKED = ("diehl-cook", "tha", "event-stdp", "data", "olfaction", "sweep")


def test_every_flag_has_help_and_shows_its_default():
    missing = []
    for name, sub in _subparsers(build_parser()):
        if name.split()[0] not in CHECKED:
            continue
        for action in sub._actions:
            if not action.option_strings or action.option_strings[0] in ("-h", "--help"):
                continue
            text = action.help or ""
            if not text or "default" not in text:
                missing.append(f"{name} {action.option_strings[0]}: {text!r}")
    assert not missing, "\n".join(missing)


def test_results_record_provenance(tmp_path):
    out = tmp_path / "r"
    assert main(["diehl-cook", "run", "--out", str(out), "--neurons", "4", "--no-plot", *TINY]) == 0
    prov = json.loads((out / "results.json").read_text())["provenance"]
    for key in ("spikeforge", "git", "python", "numpy", "numba", "torch", "cpu", "threads", "engine"):
        assert key in prov, key
    assert prov["engine"] == "numba" and prov["threads"]["cpu_count"] >= 1
    if prov["git"] is not None:
        assert len(prov["git"]["commit"]) == 40 and isinstance(prov["git"]["dirty"], bool)


def test_provenance_names_the_commit_checked_out_when_the_run_opened(tmp_path, monkeypatch):
    """A commit made while a long run trains must not appear in its results.json."""
    from spikeforge.experiments.olfaction_config import SPEC, OlfactionConfig
    from spikeforge.experiments.scaffold import runtime
    from spikeforge.experiments.scaffold.rundir import RunDir

    monkeypatch.setattr(runtime, "_git", lambda: {"commit": "a" * 40, "dirty": False})
    rd = RunDir(tmp_path / "r", SPEC, quiet=True).open(OlfactionConfig())
    monkeypatch.setattr(runtime, "_git", lambda: {"commit": "b" * 40, "dirty": True})
    try:
        prov = rd.write_results({"test_accuracy": 0.5})["provenance"]
    finally:
        rd.close()
    assert prov["git"] == {"commit": "a" * 40, "dirty": False}
    assert json.loads((tmp_path / "r" / "results.json").read_text())["provenance"]["git"]["commit"] == "a" * 40


def test_show_config_prints_the_resolved_toml_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["diehl-cook", "run", "--out", str(out), "--neurons", "12", "--show-config"]) == 0
    text = capsys.readouterr().out
    assert "[model.network]" in text and "n_neurons = 12" in text
    assert not out.exists()


def test_event_stdp_config_file_setting_one_excitatory_key_keeps_the_others(tmp_path):
    from spikeforge.experiments.event_stdp import load_config

    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("[layer.excitatory]\ntau_m_ms = 12.0\n")
    base = load_config()
    cfg = load_config(cfg_file)
    assert cfg.layer.excitatory.tau_m_ms == 12.0
    assert cfg.layer.excitatory.replace(tau_m_ms=base.layer.excitatory.tau_m_ms) == base.layer.excitatory
    assert cfg.layer.replace(excitatory=base.layer.excitatory) == base.layer
    # the same change through --set gives the same config
    assert load_config(None, ["layer.excitatory.tau_m_ms=12.0"]) == cfg


def test_a_new_experiment_built_from_the_guide(tmp_path, capsys):
    """A toy experiment written as the scaffold's docstring says: flags with defaults from its TOML,
    resume, an interrupt at a boundary, refusal of another run's settings, results with provenance."""
    from pydantic import Field

    from spikeforge.config import Params
    from spikeforge.experiments.scaffold import (
        ExperimentSpec,
        Flag,
        InterruptedAtBoundary,
        RunDir,
        add_arguments,
        positive_int,
        start,
    )

    class Run(Params):
        seed: int = Field(0, ge=0)
        examples: int = Field(10, ge=1)

    class ToyConfig(Params):
        run: Run = Field(default_factory=Run)

    toml = tmp_path / "toy.toml"
    toml.write_text("[run]\nseed = 0\nexamples = 10\n")
    spec = ExperimentSpec(
        name="toy", schema=ToyConfig, default_toml=str(toml), default_out=str(tmp_path / "runs"), seed_key="run.seed"
    )
    flags = (Flag("--examples", "run.examples", positive_int, "examples to learn"),)

    def experiment(rd: RunDir, stop_at: int | None = None) -> dict:
        start_at, w = 0, np.zeros(3)
        if rd.has_checkpoint("checkpoint"):
            arrays, meta = rd.load_checkpoint("checkpoint")
            start_at, w = meta["index"], arrays["w"]
        with rd.interrupts() as stop:
            try:
                for i in range(start_at, rd.cfg.run.examples):
                    w = w + i
                    if i == stop_at:
                        stop.pending = 2  # as if Ctrl-C arrived during this example
                    stop.check()
            except InterruptedAtBoundary:
                rd.save_checkpoint("checkpoint", {"w": w}, {"index": i + 1})
                raise
        rd.save_checkpoint("checkpoint", {"w": w}, {"index": rd.cfg.run.examples})
        return rd.write_results({"w": w.tolist()})

    parser = argparse.ArgumentParser(prog="toy")
    add_arguments(parser, spec, flags)
    assert "(default: 10; config key run.examples)" in " ".join(parser.format_help().split())
    out = str(tmp_path / "r")
    rd = start(spec, parser.parse_args(["--out", out, "--quiet"]), flags)
    with rd, pytest.raises(KeyboardInterrupt):
        experiment(rd, stop_at=4)
    rd = start(spec, parser.parse_args(["--out", out, "--quiet"]), flags)
    with rd:
        res = experiment(rd)
    assert res["w"] == [45.0] * 3 and "provenance" in res  # 0 + 1 + ... + 9, resumed after example 4
    with pytest.raises(ConfigError, match="run.examples is 10 in the saved run, 12 now"):
        start(spec, parser.parse_args(["--out", out, "--examples", "12"]), flags)
