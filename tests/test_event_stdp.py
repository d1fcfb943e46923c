"""Event-based STDP (Tavanaei et al. 2018): the update against its equation on hand-built spike
patterns, the soft bounds, parameter ranges, and reconstruction from features."""

import pytest
import torch

from spikeforge.config import ConfigError
from spikeforge.encoding.patches import extract_patches
from spikeforge.experiments.event_stdp import reconstruct_images
from spikeforge.models.event_stdp import fit_reconstruction_scale
from spikeforge.plasticity.event_stdp import (
    EventSTDPParams,
    event_stdp_delta,
    event_stdp_update,
    pre_active_in_window,
    update_last_spike,
)


def _params(**kw):
    base = dict(learning_rate=0.1, a_plus=1.0, a_minus=0.5, decay_lambda=0.25, w_max=2.0, window_steps=1)
    base.update(kw)
    return EventSTDPParams.from_dict(base)


def test_one_post_spike_matches_equation():
    p = _params()
    w = torch.tensor([[0.2, 0.9], [1.0, 0.3], [0.5, 0.5]])
    pre = torch.tensor([1.0, 0.0, 1.0])  # inputs 0 and 2 spiked in the window
    post = torch.tensor([0.0, 1.0])  # only neuron 1 spikes
    dw = event_stdp_delta(w, pre, post, p)
    eta, s = 0.1, 1.25
    expected = torch.zeros(3, 2)
    expected[0, 1] = eta * 1.0 * (2.0 - s * 0.9)  # LTP
    expected[1, 1] = -eta * 0.5 * s * 0.3  # LTD (input silent)
    expected[2, 1] = eta * 1.0 * (2.0 - s * 0.5)  # LTP
    assert torch.allclose(dw, expected, atol=1e-7)
    assert torch.equal(dw[:, 0], torch.zeros(3))  # no post spike, no change


def test_no_post_spike_no_change():
    p = _params()
    w = torch.rand(4, 3)
    assert torch.equal(event_stdp_update(w, torch.ones(4), torch.zeros(3), p), w)


def test_batch_is_sum_of_single_updates():
    p = _params()
    g = torch.Generator().manual_seed(0)
    w = torch.rand(5, 4, generator=g)
    pre = (torch.rand(3, 5, generator=g) < 0.5).float()
    post = (torch.rand(3, 4, generator=g) < 0.5).float()
    total = sum(event_stdp_delta(w, pre[b], post[b], p) for b in range(3))
    assert torch.allclose(event_stdp_delta(w, pre, post, p), total, atol=1e-6)


def test_window_from_last_spike_steps():
    last = torch.full((4,), -1, dtype=torch.int64)
    last = update_last_spike(last, torch.tensor([1, 0, 0, 0], dtype=torch.bool), 3)
    last = update_last_spike(last, torch.tensor([0, 1, 0, 0], dtype=torch.bool), 5)
    last = update_last_spike(last, torch.tensor([0, 0, 1, 0], dtype=torch.bool), 6)
    # at t = 6 with a window of 1 step: inputs that spiked at 5 or 6
    assert pre_active_in_window(last, 6, 1).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert pre_active_in_window(last, 6, 3).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert pre_active_in_window(last, 6, 0).tolist() == [0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_soft_bounds_hold_and_ltp_converges(lam):
    # the largest allowed learning rate: eta * A * (1 + lambda) == 1
    p = EventSTDPParams.from_dict(
        dict(learning_rate=1.0 / (1.0 + lam), a_plus=1.0, a_minus=1.0, decay_lambda=lam, w_max=1.0)
    )
    g = torch.Generator().manual_seed(1)
    w = torch.rand(20, 6, generator=g) / (1 + lam)
    bound = 1.0 / (1 + lam)
    for _ in range(200):
        pre = (torch.rand(20, generator=g) < 0.5).float()
        post = (torch.rand(6, generator=g) < 0.7).float()
        # without the final clip the soft bounds alone must keep w inside [0, w_max / (1 + lambda)]
        w = w + event_stdp_delta(w, pre, post, p)
        assert float(w.min()) >= -1e-6 and float(w.max()) <= bound + 1e-6
    # repeated LTP converges geometrically to w_max / (1 + lambda)
    p2 = p.replace(learning_rate=0.1 / (1 + lam))
    w = torch.zeros(3, 1)
    for _ in range(300):
        w = event_stdp_update(w, torch.ones(3), torch.ones(1), p2)
    assert torch.allclose(w, torch.full((3, 1), bound), atol=1e-5)
    # repeated LTD decays to 0
    for _ in range(300):
        w = event_stdp_update(w, torch.zeros(3), torch.ones(1), p2)
    assert float(w.max()) < 1e-5


@pytest.mark.parametrize(
    "field,value",
    [
        ("learning_rate", 0.0),
        ("learning_rate", 1.5),
        ("learning_rate", -0.01),
        ("window_steps", -1),
        ("decay_lambda", -0.1),
        ("w_max", 0.0),
    ],
)
def test_out_of_range_parameters_are_rejected(field, value):
    with pytest.raises(ConfigError, match=field):
        EventSTDPParams.from_dict({field: value})


def test_learning_rate_that_breaks_soft_bound_is_rejected():
    with pytest.raises(ConfigError, match="learning_rate"):
        EventSTDPParams.from_dict(dict(learning_rate=0.8, decay_lambda=1.0))


@pytest.mark.parametrize("stride", [3, 1])
@pytest.mark.parametrize("normalize", [False, True])
def test_reconstruction_from_features_that_contain_the_image(stride, normalize):
    g = torch.Generator().manual_seed(2)
    img = torch.rand(1, 6, 6, generator=g)
    patches = extract_patches(img, 3, stride)  # [1, L, 9]
    w = patches[0].T.clone()  # feature k == patch k exactly
    counts = torch.eye(w.shape[1]).unsqueeze(0) * 5.0  # patch k: feature k fires 5 times
    scale = fit_reconstruction_scale(counts[0], w, patches[0], normalize)
    assert scale == pytest.approx(1.0 if normalize else 0.2, rel=1e-6)
    rec = reconstruct_images(counts, w, scale, (6, 6), 3, stride, normalize)
    assert torch.allclose(rec, img, atol=1e-6)


def test_normalized_reconstruction_is_mean_of_active_features():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # 3 pixels, 2 features
    counts = torch.tensor([[3.0, 1.0], [0.0, 0.0]])
    from spikeforge.models.event_stdp import reconstruct_patches

    rec = reconstruct_patches(counts, w, 2.0, normalize=True)
    assert torch.allclose(rec[0], 2.0 * (0.75 * w[:, 0] + 0.25 * w[:, 1]))
    assert torch.equal(rec[1], torch.zeros(3))  # a silent patch rebuilds as blank
    assert torch.allclose(reconstruct_patches(counts, w, 1.0), counts @ w.T)


def test_layer_training_applies_the_rule_on_each_post_spike():
    """A neuron driven by always-on inputs 0 and 2 fires at every step; each spike must apply the
    rule once: LTP for inputs 0 and 2 (active), LTD for the silent input 1."""
    from spikeforge.models.event_stdp import RateCodingParams, WTALayerParams, train_batch

    layer = WTALayerParams.from_dict(
        dict(
            n_features=1,
            n_inputs=3,
            inhibition="none",
            input_current_na=1.0,
            excitatory=dict(
                v_rest_mv=0.0, v_reset_mv=0.0, v_thresh_mv=1.0, tau_m_ms=0.01, r_mohm=1.0, refractory_ms=0.0
            ),
        )
    )
    coding = RateCodingParams(steps=3, dt_ms=1.0, max_rate_hz=1000.0)  # P(spike) = pixel
    p = EventSTDPParams.from_dict(dict(learning_rate=0.1, a_minus=0.5, decay_lambda=0.2, window_steps=0))
    w = torch.tensor([[0.8], [0.5], [0.8]])
    patch = torch.tensor([[1.0, 0.0, 1.0]])
    w_new, _, n_spikes = train_batch(w, torch.zeros(1, 1), patch, layer, coding, p)
    assert n_spikes == 3
    expected = w.clone()
    for _ in range(3):
        expected[0] += 0.1 * (1.0 - 1.2 * expected[0])
        expected[2] += 0.1 * (1.0 - 1.2 * expected[2])
        expected[1] -= 0.1 * 0.5 * 1.2 * expected[1]
    assert torch.allclose(w_new, expected, atol=1e-6)
