"""NIR with real clients: graphs written by spikeforge run in snnTorch and Norse with the same spikes, and
graphs written by snnTorch run in spikeforge with the same spikes as in snnTorch."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir", reason="NIR tests need the 'nir' package (pip install 'spikeforge[nir]')")

from test_nir import _small_tha, _spikes  # noqa: E402

from spikeforge.interchange.nir import from_nir, read_nir, to_nir, write_nir  # noqa: E402
from spikeforge.neurons.leaky import Leaky  # noqa: E402


def _snntorch():
    pytest.importorskip("nirtorch", reason="snnTorch's NIR import needs nirtorch (in the test extra)")
    snn = pytest.importorskip("snntorch", reason="snnTorch is in the test extra: pip install -e '.[test]'")
    import snntorch.export_nir
    import snntorch.import_nir
    import snntorch.utils  # noqa: F401

    return snn


def _norse():
    pytest.importorskip(
        "norse.torch",
        reason="Norse is not in the test extra (it requires torchvision, and pip then resolves torch's CUDA "
        "packages too); "
        "install it with: pip install --no-deps norse",
    )
    import norse.torch

    return norse.torch


def _run_snntorch(module, x):
    """An imported snnTorch graph module, one call per step; x: [B, T, ...]."""
    snn = _snntorch()
    snn.utils.reset(module)
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            o, _ = module(x[:, t])
            out.append(o)
    return _batch_first(out, x.shape[0])


def _run_norse(module, x):
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            o, state = module(x[:, t], state)
            out.append(o)
    return _batch_first(out, x.shape[0])


def _batch_first(outs: list[torch.Tensor], batch: int) -> torch.Tensor:
    """Per-step outputs (``[B, N]``, or ``[N]`` where the importer's Flatten removed the batch) -> ``[B, T, N]``."""
    return torch.stack(outs).reshape(len(outs), batch, -1).transpose(0, 1)


def _dense():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(20, 10), Leaky(beta=0.8, threshold=0.5, reset="zero"))


def _conv():
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.AvgPool2d(2),
        Leaky(beta=0.9, threshold=0.3, reset="zero"),
        nn.Flatten(),
        nn.Linear(36, 5),
        Leaky(beta=0.8, threshold=0.2, reset="zero"),
    )


def _conv_reference(net, x):
    """The spikeforge conv Sequential over [B, T, C, H, W] (time folded into the batch for the stateless layers)."""
    B, T = x.shape[:2]
    h = net[1](net[0](x.reshape(B * T, *x.shape[2:])))
    h = net[2](h.reshape(B, T, *h.shape[1:]))
    h = net[4](net[3](h.reshape(B * T, *h.shape[2:])))
    return net[5](h.reshape(B, T, -1))


@pytest.mark.parametrize("convention", ["snntorch", "unit"])
def test_spikeforge_export_runs_in_snntorch(tmp_path, convention):
    snn = _snntorch()
    net = _dense()
    x = _spikes((3, 40, 20), seed=1)
    ref = net(x).detach()
    assert 5 < ref.sum() < ref.numel()
    write_nir(to_nir(net, (20,), r_convention=convention), tmp_path / "n.nir")
    got = _run_snntorch(snn.import_nir.import_from_nir(read_nir(tmp_path / "n.nir")), x)
    assert torch.equal(got, ref)


def _conv_case():
    net = _conv()
    x = _spikes((2, 25, 2, 8, 8), seed=2)
    with torch.no_grad():
        ref = _conv_reference(net, x)
    assert ref.sum() > 5
    return net, x, ref


# both importers map NIR's Flatten(start_dim=0) (dims without batch) to torch's Flatten(0), which also
# flattens the batch: the conv networks are fed one sample at a time


def test_spikeforge_conv_export_runs_in_snntorch(tmp_path):
    snn = _snntorch()
    net, x, ref = _conv_case()
    write_nir(to_nir(net, (2, 8, 8)), tmp_path / "c.nir")
    m = snn.import_nir.import_from_nir(read_nir(tmp_path / "c.nir"))
    got = torch.cat([_run_snntorch(m, x[b : b + 1]) for b in range(x.shape[0])])
    assert torch.equal(got, ref)


def test_spikeforge_conv_export_runs_in_norse(tmp_path):
    nt = _norse()
    net, x, ref = _conv_case()
    # Norse 1.1 ignores r and reads SumPool2d, not AvgPool2d
    write_nir(to_nir(net, (2, 8, 8), r_convention="unit", pooling="sum"), tmp_path / "c.nir")
    m = nt.from_nir(read_nir(tmp_path / "c.nir"), dt=1e-4)
    got = torch.cat([_run_norse(m, x[b : b + 1]) for b in range(x.shape[0])])
    assert torch.equal(got, ref)


def test_spikeforge_export_runs_in_norse(tmp_path, caplog):
    nt = _norse()
    net = _dense()
    x = _spikes((3, 40, 20), seed=5)
    ref = net(x).detach()
    write_nir(to_nir(net, (20,), r_convention="unit"), tmp_path / "n.nir")
    got = _run_norse(nt.from_nir(read_nir(tmp_path / "n.nir"), dt=1e-4), x)
    assert torch.equal(got, ref)
    # Norse ignores r (it warns): the snnTorch convention r = tau/dt is not what Norse runs
    with caplog.at_level(logging.WARNING):
        m = nt.from_nir(to_nir(net, (20,), r_convention="snntorch"), dt=1e-4)
    assert "parameter r" in caplog.text
    assert not torch.equal(_run_norse(m, x), ref)


def test_tha_approximation_same_spikes_in_snntorch_and_norse():
    snn = _snntorch()
    nt = _norse() if _has("norse") else None
    net = _small_tha(seed=2)
    T = net.params.num_steps
    x = torch.rand(3, 1, 14, 14).unsqueeze(1).expand(-1, T, -1, -1, -1)
    g = to_nir(net, approximate=["reset-to-zero"], r_convention="unit")
    with torch.no_grad():
        ours = from_nir(g)(x)
    assert ours.sum() > 5
    m = snn.import_nir.import_from_nir(g)
    got = torch.cat([_run_snntorch(m, x[b : b + 1]) for b in range(3)])
    assert torch.equal(got, ours)
    if nt is not None:
        m = nt.from_nir(to_nir(net, approximate=["reset-to-zero"], r_convention="unit", pooling="sum"), dt=1e-4)
        got = torch.cat([_run_norse(m, x[b : b + 1]) for b in range(3)])
        assert torch.equal(got, ours)


def _has(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _snntorch_leaky(snn, n, beta, theta, output=False):
    return snn.Leaky(
        beta=torch.full(n, beta),
        threshold=torch.full(n, theta),
        init_hidden=True,
        reset_mechanism="zero",
        output=output,
    )


def _run_snntorch_net(snn, net, x):
    snn.utils.reset(net)
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            out.append(net(x[:, t])[0])
    return torch.stack(out, 1)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_snntorch_export_runs_in_spikeforge(tmp_path, kind):
    snn = _snntorch()
    torch.manual_seed(6)
    if kind == "dense":
        net = nn.Sequential(nn.Linear(20, 10), _snntorch_leaky(snn, (10,), 0.8, 0.5, output=True))
        x, sample = _spikes((3, 40, 20), seed=7), torch.zeros(1, 20)
    else:
        net = nn.Sequential(
            nn.Conv2d(2, 4, 3),
            nn.AvgPool2d(2),
            _snntorch_leaky(snn, (4, 3, 3), 0.9, 0.3),
            nn.Flatten(),
            nn.Linear(36, 5),
            _snntorch_leaky(snn, (5,), 0.8, 0.2, output=True),
        )
        x, sample = _spikes((3, 25, 2, 8, 8), seed=8), torch.zeros(1, 2, 8, 8)
    ref = _run_snntorch_net(snn, net, x)
    assert ref.sum() > 5
    g = snn.export_nir.export_to_nir(net, sample, ignore_dims=[0])
    write_nir(g, tmp_path / "s.nir")
    with torch.no_grad():
        got = from_nir(tmp_path / "s.nir", dt=1e-4)(x)  # snnTorch records no dt; it uses 1e-4
    assert torch.equal(got, ref)
