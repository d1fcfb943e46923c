"""``olfaction run --device``: the spiking modes and Wang's ANN on a CUDA GPU train what the CPU
trains (the same initial weights and random draws, float64), a run started on the CPU resumes
on the GPU, and a device that is not there is refused with the fix."""

import json

import pytest
import torch
from test_olfaction_distributed import RANDOM, TINY, _same_run

from spikeforge.cli.main import main


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_OLFACTION_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_a_missing_gpu_is_refused_with_the_fix(cache, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert main([*TINY, "--mode", "ann", "--device", "cuda", "--out", str(cache / "gpu")]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "use --device cpu" in err
    assert not (cache / "gpu" / "results.json").exists()
    # the table refuses it before it makes a run directory
    table = ["olfaction", "table", "--kc", "10", "--modes", "ann", "--ann-epochs", "1", "--device", "cuda"]
    assert main([*table, "--train-limit", "80", "--out", str(cache / "table")]) == 2
    assert "use --device cpu" in capsys.readouterr().err and not (cache / "table").exists()


def test_device_cpu_is_recorded_and_continues_a_run(cache):
    out = cache / "cpu"
    assert main([*TINY, "--mode", "decolle", "--epochs", "1", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["run"]["device"] == "cpu"
    assert res["provenance"]["engine"] == "olfaction-closed-form"  # the fused CPU loop
    # run.device continues a run: asking for another epoch with it given explicitly resumes
    assert main([*TINY, "--mode", "decolle", "--epochs", "2", "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["epochs"] == 2


@pytest.mark.parametrize(
    "mode, extra",
    [("decolle", RANDOM), ("hybrid", []), ("hybrid", ["--set", 'model.stdp.rule="trace"']), ("ann", [])],
    ids=["decolle", "hybrid-cycle", "hybrid-trace", "ann"],
)
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_trains_what_the_cpu_trains(cache, mode, extra):
    common = [*TINY, "--mode", mode, "--epochs", "2", "--ann-epochs", "2", *extra]
    assert main([*common, "--out", str(cache / "cpu")]) == 0
    assert main([*common, "--device", "cuda", "--out", str(cache / "gpu")]) == 0
    _same_run(cache / "cpu", cache / "gpu")
    res = json.loads((cache / "gpu" / "results.json").read_text())
    assert res["config"]["run"]["device"] == "cuda"
    assert res["provenance"]["engine"] == ("olfaction-ann-cuda" if mode == "ann" else "olfaction-reference-cuda")
    # resumed on the GPU after one epoch on the CPU: the optimizer state moves with the weights
    one = [*TINY, "--mode", mode, "--ann-epochs", "1", "--epochs", "1", *extra, "--out", str(cache / "mixed")]
    assert main(one) == 0
    assert main([*common, "--device", "cuda", "--out", str(cache / "mixed")]) == 0
    _same_run(cache / "cpu", cache / "mixed")
