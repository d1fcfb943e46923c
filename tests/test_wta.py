"""Winner-take-all wiring (identity E->I, hollow I->E), the k-winners rule, and the layer step."""

import pytest
import torch

from spikeforge.models.event_stdp import WTALayerParams, _fresh_state, layer_step
from spikeforge.synapses.wta import hollow_current, hollow_matrix, identity_matrix, k_winners


def test_identity_and_hollow_matrices():
    i = identity_matrix(4, 2.5)
    h = hollow_matrix(4, 3.0)
    assert torch.equal(i, torch.tensor([[2.5, 0, 0, 0], [0, 2.5, 0, 0], [0, 0, 2.5, 0], [0, 0, 0, 2.5]]))
    assert torch.equal(h.diagonal(), torch.zeros(4))
    assert torch.equal(h + torch.eye(4) * 3.0, torch.full((4, 4), 3.0))
    with pytest.raises(ValueError):
        hollow_matrix(0)


def test_hollow_current_equals_matrix_product():
    s = (torch.rand(5, 6, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    assert torch.allclose(hollow_current(s, 1.7), s @ hollow_matrix(6, 1.7))
    assert torch.allclose(hollow_current(s.bool(), 1.7), s @ hollow_matrix(6, 1.7))


def test_k_winners_keeps_largest_drive_among_candidates():
    cand = torch.tensor([[True, True, False, True], [False, False, False, False]])
    drive = torch.tensor([[1.0, 3.0, 9.0, 2.0], [5.0, 4.0, 3.0, 2.0]])
    assert k_winners(cand, drive, 1).tolist() == [[False, True, False, False], [False] * 4]
    assert k_winners(cand, drive, 2).tolist() == [[False, True, False, True], [False] * 4]
    assert torch.equal(k_winners(cand, drive, 4), cand)


def _layer(**kw):
    base = dict(
        n_features=3,
        n_inputs=2,
        inhibition="ei",
        w_ei_na=10.0,
        w_ie_na=50.0,
        excitatory=dict(v_rest_mv=0.0, v_reset_mv=0.0, v_thresh_mv=1.0, tau_m_ms=1.0, r_mohm=1.0, refractory_ms=0.0),
        inhibitory=dict(v_rest_mv=0.0, v_reset_mv=0.0, v_thresh_mv=0.5, tau_m_ms=1.0, r_mohm=1.0, refractory_ms=0.0),
    )
    base.update(kw)
    return WTALayerParams.from_dict(base)


def test_excitatory_spike_inhibits_all_others_but_itself():
    p = _layer()
    w = torch.tensor([[5.0, 0.0, 0.0], [0.0, 1.2, 1.2]])
    thr = torch.zeros(1, 3)
    st = _fresh_state(p, 1, thr)
    # step 0: only input 0 -> neuron 0 fires, its inhibitory partner fires in the same step
    st, s = layer_step(st, torch.tensor([[1.0, 0.0]]), w, p, 1.0, adapt=False)
    assert s.tolist() == [[True, False, False]]
    assert st.inh_spikes.tolist() == [[True, False, False]]
    # step 1: both inputs; neurons 1 and 2 would cross threshold (v_inf 2.4 * 0.63 > 1) but are
    # inhibited by partner 0 through the hollow matrix; neuron 0 is not inhibited by itself
    st, s = layer_step(st, torch.tensor([[1.0, 1.0]]), w, p, 1.0, adapt=False)
    assert s.tolist() == [[True, False, False]]
    assert bool((st.exc.v[0, 1:] < 0).all())


def test_without_inhibition_all_cross_threshold():
    p = _layer(inhibition="none")
    w = torch.tensor([[5.0, 0.0, 0.0], [0.0, 2.0, 2.0]])
    st = _fresh_state(p, 1, torch.zeros(1, 3))
    st, s = layer_step(st, torch.tensor([[1.0, 0.0]]), w, p, 1.0, adapt=False)
    st, s = layer_step(st, torch.tensor([[1.0, 1.0]]), w, p, 1.0, adapt=False)
    assert s.tolist() == [[True, True, True]]


def test_k_winners_layer_lets_only_the_strongest_fire():
    p = _layer(inhibition="k_winners", k=1)
    w = torch.tensor([[2.0, 3.0, 4.0], [0.0, 0.0, 0.0]])
    st = _fresh_state(p, 2, torch.zeros(1, 3))
    st, s = layer_step(st, torch.tensor([[1.0, 0.0], [0.0, 0.0]]), w, p, 1.0, adapt=False)
    assert s.tolist() == [[False, False, True], [False, False, False]]
    # the losers were reset without spiking and are not refractory
    assert st.exc.v[0].tolist() == [0.0, 0.0, 0.0]


def test_adaptive_threshold_shared_across_batch():
    p = _layer(
        inhibition="none",
        excitatory=dict(
            v_rest_mv=0.0,
            v_reset_mv=0.0,
            v_thresh_mv=1.0,
            tau_m_ms=1.0,
            r_mohm=1.0,
            refractory_ms=0.0,
            adapt_alpha=0.1,
            adapt_beta_mv=0.5,
        ),
    )
    w = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    thr = torch.tensor([[0.2, 0.2, 0.2]])
    st = _fresh_state(p, 2, thr)
    st, s = layer_step(st, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), w, p, 1.0, adapt=True)
    # thr <- thr - alpha * thr + beta * (mean spike of the two parallel patches)
    assert torch.allclose(st.exc.thr, torch.tensor([[0.18 + 0.5, 0.18, 0.18]]))
    # one patch spiking out of two counts half
    st = _fresh_state(p, 2, thr)
    st, s = layer_step(st, torch.tensor([[1.0, 0.0], [0.0, 0.0]]), w, p, 1.0, adapt=True)
    assert torch.allclose(st.exc.thr, torch.tensor([[0.18 + 0.25, 0.18, 0.18]]))


@pytest.mark.parametrize("inhibition,k", [("ei", 1), ("none", 1), ("k_winners", 1), ("k_winners", 3)])
def test_compiled_response_equals_pytorch_step(inhibition, k):
    from spikeforge.models.event_stdp import RateCodingParams, respond

    g = torch.Generator().manual_seed(3)
    p = WTALayerParams.from_dict(
        dict(n_features=12, n_inputs=9, inhibition=inhibition, k=k, input_current_na=3.0, w_ie_na=3.0)
    )
    w = torch.rand(9, 12, generator=g)
    thr = torch.rand(1, 12, generator=g) * 0.5
    patches = torch.rand(300, 9, generator=g) * (torch.rand(300, 1, generator=g) < 0.7)
    coding = RateCodingParams(steps=20)
    a = respond(w, thr, patches, p, coding, deterministic=True, engine="torch")
    b = respond(w, thr, patches, p, coding, deterministic=True, engine="numba")
    assert a.sum() > 0
    # float32 rounding may move a threshold crossing by a step in rare cases
    assert float((a == b).float().mean()) > 0.995
    assert float((a - b).abs().sum()) <= 0.002 * float(a.sum()) + 2


def test_patch_layer_wrapper_learns_and_rejects_wrong_shapes():
    from spikeforge.config import ConfigError
    from spikeforge.models.event_stdp import EventSTDPPatchLayer

    layer = EventSTDPPatchLayer(WTALayerParams(n_features=4, n_inputs=9, input_current_na=5.0), seed=0)
    w0 = layer.w.clone()
    patches = torch.zeros(40, 9)
    patches[:, :3] = 1.0  # always the same three pixels on
    assert layer.learn(patches) > 0
    assert not torch.equal(layer.w, w0)
    assert layer.respond(patches[:5]).shape == (5, 4)
    with pytest.raises(ConfigError, match=r"\(9, 5\)"):
        layer.load_state_dict({"weights": torch.zeros(9, 5), "thresholds": torch.zeros(5)})
