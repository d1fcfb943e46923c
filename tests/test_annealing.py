"""Threshold annealing: closed form, checkpointed thresholds, bad schedules."""

import pytest
import torch

from spikeforge.config import ConfigError
from spikeforge.evaluation.spike_losses import spike_count_accuracy, spike_count_mse
from spikeforge.neurons.leaky import Leaky
from spikeforge.plasticity.threshold_annealing import AnnealParams, ThresholdAnnealing


def test_recursion_matches_closed_form():
    layers = [Leaky(threshold=1.0), Leaky(threshold=1.0)]
    params = [
        AnnealParams(theta_initial=11.666, theta_final=15.983, alpha=0.024),
        AnnealParams(theta_initial=5.0, theta_final=50.0, alpha=5e-3),
    ]
    tha = ThresholdAnnealing(layers, params)
    assert tha.thresholds() == pytest.approx([11.666, 5.0])
    for n in range(1, 401):
        tha.step()
        if n in (1, 75, 400):
            for layer, p in zip(layers, params):
                closed = p.theta_final - (p.theta_final - p.theta_initial) * (1 - p.alpha) ** n
                assert float(layer.threshold) == pytest.approx(closed, rel=1e-5)
                assert p.theta_at(n) == pytest.approx(closed, rel=1e-12)
    assert params[1].theta_at(100) == pytest.approx(22.74, abs=0.01)  # reference §2.2
    assert tha.num_steps == 400


def test_alpha_one_jumps_to_final_and_thresholds_are_in_state_dict():
    lif = Leaky(threshold=1.0)
    tha = ThresholdAnnealing([lif], [{"theta_initial": 2.0, "theta_final": 7.0, "alpha": 1.0}])
    tha.step()
    assert float(lif.state_dict()["threshold"]) == 7.0
    fresh = Leaky(threshold=1.0)
    fresh.load_state_dict(lif.state_dict())
    assert float(fresh.threshold) == 7.0


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_alpha_outside_0_1_is_rejected(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        AnnealParams.from_dict(theta_initial=1.0, theta_final=2.0, alpha=alpha)


def test_final_below_initial_and_layer_count_are_rejected():
    with pytest.raises(ConfigError, match="theta_final = 1.0 is below theta_initial = 5.0"):
        AnnealParams.from_dict(theta_initial=5.0, theta_final=1.0, alpha=0.1)
    with pytest.raises(ConfigError, match="2 layers but 1 schedules"):
        ThresholdAnnealing([Leaky(), Leaky()], [AnnealParams(theta_initial=1, theta_final=2, alpha=0.1)])


def test_spike_count_loss_and_accuracy_by_hand():
    T = 10
    spikes = torch.zeros(2, T, 3)
    spikes[0, :8, 1] = 1  # example 0: class 1 fires 8 times -> prediction 1
    spikes[1, :3, 2] = 1  # example 1: class 2 fires 3 times -> prediction 2
    labels = torch.tensor([1, 0])
    # targets: correct int(0.8*10)=8, others int(0.2*10)=2
    sq = [(0 - 2) ** 2, (8 - 8) ** 2, (0 - 2) ** 2, (0 - 8) ** 2, (0 - 2) ** 2, (3 - 2) ** 2]
    assert float(spike_count_mse(spikes, labels)) == pytest.approx(sum(sq) / 6 / T)
    assert spike_count_accuracy(spikes, labels) == 0.5
    with pytest.raises(ConfigError, match="labels of shape"):
        spike_count_mse(spikes, torch.tensor([1, 0, 2]))
