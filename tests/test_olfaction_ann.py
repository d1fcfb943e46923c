"""Wang et al.'s reference ANN (models/olfaction_ann.py) against Wang's code as reference §2.3-2.4
describes it, its optimizer groups in the experiment, and the ORN score."""

import numpy as np
import pytest
import torch

from spikeforge.evaluation.olfaction_metrics import orn_score
from spikeforge.experiments.olfaction import Trainer
from spikeforge.experiments.olfaction_config import OlfactionConfig
from spikeforge.models.olfaction_ann import WangANN, WangANNParams


def _model(**kw) -> WangANN:
    p = WangANNParams(layer_sizes=[50, 500, 50, 300], n_class=10, **kw)
    return WangANN(p, torch.Generator().manual_seed(0))


def test_orn_noise_is_added_after_the_orn_relu():
    """Wang's FullModel.forward adds ORN_NOISE_STD * randn to the receptor layer's output, after its
    ReLU: with a zero odor the ORN activity is the noise itself, negative values included."""
    m = _model(orn_noise_std=0.1)
    acts = m.activities(torch.zeros(64, 50), torch.Generator().manual_seed(5))
    expected = 0.1 * torch.randn((64, 500), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(acts[0], expected)
    assert (acts[0] < 0).float().mean() > 0.4
    assert [a.shape[1] for a in acts] == [500, 50, 300]
    # no noise: the receptor layer of a zero odor is silent
    assert _model(orn_noise_std=0.0).activities(torch.zeros(3, 50))[0].abs().max() == 0


def test_initial_ranges_normalisation_and_pruning():
    m = _model()
    w0, w1, w2 = (b.weight.detach() for b in m.blocks)
    assert 0 <= w0.min() and w0.max() <= 4 / 50  # U(0, 4/n_in)
    assert 0 <= w1.min() and w1.max() <= 4 / 500
    assert 0.02 <= w2.min() and w2.max() <= 0.08  # U(prune threshold 1/N_PN, initial_pn2kc = 4/N_PN)
    eff = m.connectivity()
    torch.testing.assert_close(eff[0].sum(1), torch.ones(500))  # or2orn_normalization
    assert m.blocks[0].bias is None and m.blocks[2].bias is not None
    assert torch.all(m.blocks[2].bias == -1.0)
    with torch.no_grad():  # sign constraint |W|; weights at or below 0.02 are pruned (Wang: w > threshold survives)
        m.blocks[2].weight[0, :3] = torch.tensor([-0.05, 0.02, 0.019])
    assert m.connectivity()[2][0, :3].tolist() == pytest.approx([0.05, 0.0, 0.0])


def test_separate_pn2kc_learning_rate_and_resume():
    cfg = OlfactionConfig.from_dict(
        {
            "run": {"mode": "ann", "kc": 30, "ann_lr": 1e-3, "ann_pn2kc_lr": 2e-4},
            "model": {"layer_sizes": [50, 20, 10, 30]},
        }
    ).resolved()
    t = Trainer(cfg)
    lrs = [g["lr"] for g in t.opt.param_groups]
    assert lrs == [1e-3, 2e-4]
    kc_block = {id(q) for q in t.ann.blocks[-1].parameters()}
    assert {id(q) for q in t.opt.param_groups[1]["params"]} == kc_block
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 50), dtype=np.float32), rng.integers(0, 10, 64)
    t.train_epoch(x, y, 0)
    saved = {k: v.detach().numpy().copy() for k, v in t.tensors().items()}
    # every parameter of both groups has its Adam state in the checkpoint
    n_params = len(list(t.ann.parameters()))
    assert {k.split(".")[1] for k in saved if k.startswith("opt.")} == {str(k) for k in range(n_params)}
    t2 = Trainer(cfg)
    t2.load(saved)
    for a, b in zip(t.opt.param_groups[1]["params"], t2.opt.param_groups[1]["params"], strict=True):
        torch.testing.assert_close(t.opt.state[a]["exp_avg"], t2.opt.state[b]["exp_avg"])
    # the default (0) keeps one group at ann_lr
    assert len(Trainer(cfg.replace(run=cfg.run.replace(ann_pn2kc_lr=0.0))).opt.param_groups) == 1


def test_orn_score_hand_built():
    # [n_orn=3, n_or=2]: ORN0 one receptor (1), ORN1 3 vs 1 (0.5), ORN2 equal (0)
    w = np.array([[2.0, 0.0], [3.0, 1.0], [1.0, 1.0]])
    assert orn_score(w) == pytest.approx(0.5)


def test_without_receptor_layer_orns_tile_the_ors():
    """Wang's standard config (receptor_layer = False): ORN i copies OR i mod 50, nothing to train
    before the PNs; the fixed block's matrix is one-hot, so GloScore uses the tiled types."""
    m = _model(receptor_layer=False, orn_noise_std=0.0)
    x = torch.rand(4, 50, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m.activities(x)[0], x.repeat(1, 10))
    tile = m.connectivity()[0]
    assert tile.shape == (500, 50) and torch.all(tile.argmax(1) == torch.arange(500) % 50)
    n_params = sum(q.numel() for q in m.parameters())
    assert n_params == sum(q.numel() for q in _model().parameters()) - 500 * 50  # no OR->ORN weights
    # the later blocks draw the same initial weights as with a receptor layer
    torch.testing.assert_close(m.blocks[1].weight, _model().blocks[1].weight)
    with pytest.raises(ValueError, match="multiple of n_OR"):
        WangANN(WangANNParams(layer_sizes=[50, 420, 50, 300], receptor_layer=False), torch.Generator())
