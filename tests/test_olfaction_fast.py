"""The fused CPU loop of the olfaction network (models/olfaction_fast.py) gives the reference loop's
results bit for bit, and both give what the code before the fused loop gave (main at 814b8cc):
every output, spike count, weight, bias, gradient and optimizer state after a few training batches
and an evaluation, on the grid of tests/olfaction_exact.py (mode x dtype x dropout x neuron x
eligibility x encoding, with stdp_fan_in and homeostasis on) and a dozen other options."""

import json
import pathlib

import pytest
import torch
from olfaction_exact import cases, digest, environment, train

from spikeforge.models.olfaction import OlfactionNet, OlfactionNetParams

CASES = cases()
GOLDEN = json.loads((pathlib.Path(__file__).parent / "olfaction_golden.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_loop_equals_the_reference_loop_and_the_code_before_it(name):
    fast, ref = train(CASES[name], fast=True), train(CASES[name], fast=False)
    assert sorted(fast) == sorted(ref)
    bad = [k for k in ref if not (fast[k].dtype == ref[k].dtype and torch.equal(fast[k], ref[k]))]
    assert not bad, f"{len(bad)} tensors differ, e.g. {bad[:5]}"
    if environment() != GOLDEN["environment"]:
        pytest.skip(f"golden digests made with {GOLDEN['environment']}, not {environment()}")
    assert digest(ref) == GOLDEN["digests"][name], "the reference loop changed"


def test_the_cases_learn_and_spike():
    """The grid is not vacuous: spikes in every layer without saturation, weights that move, and
    the STDP block of the hybrid network changing."""
    out = train(CASES["hybrid-float32-0.5-cuba-trace-current"])
    rates = out["rates2"]
    assert bool(((rates > 0.05) & (rates < 0.95)).all()), rates
    net = OlfactionNet(OlfactionNetParams(**{**_base(), "stdp_block_idx": [2]}), torch.Generator().manual_seed(0))
    assert not torch.equal(out["w2"], net.weights[2]) and not torch.equal(out["w1"], net.weights[1])
    assert torch.equal(out["w2"] != 0, out["mask2"] != 0)


def _base():
    from olfaction_exact import BASE

    return BASE
