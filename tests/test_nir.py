"""NIR export/import (spikeforge.interchange.nir) without other libraries: mapping, folding, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

nir = pytest.importorskip("nir", reason="NIR tests need the 'nir' package (pip install 'spikeforge[nir]')")
h5py = pytest.importorskip("h5py", reason="NIR files are HDF5: the tests need h5py")

from spikeforge.cli.main import main  # noqa: E402
from spikeforge.interchange.nir import NIRError, from_nir, read_nir, to_nir, write_nir  # noqa: E402
from spikeforge.models.tha_nets import THAMnistNet  # noqa: E402
from spikeforge.neurons.leaky import Leaky, leaky_multistep  # noqa: E402
from spikeforge.synapses.binarized import BinaryLinear, binarize  # noqa: E402


def _spikes(shape, p=0.3, seed=0):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < p).float()


def _dense_net(reset="zero", binary=False):
    torch.manual_seed(1)
    lin = BinaryLinear(20, 10) if binary else nn.Linear(20, 10)
    return nn.Sequential(lin, Leaky(beta=0.8, threshold=0.5 if not binary else 2.3, reset=reset))


@pytest.mark.parametrize("convention", ["snntorch", "unit"])
@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_through_file_same_spikes(tmp_path, convention, binary):
    net = _dense_net(binary=binary)
    x = _spikes((3, 40, 20))
    ref = net(x)
    assert 5 < ref.sum() < ref.numel()  # not trivial
    g = to_nir(net, (20,), r_convention=convention)
    write_nir(g, tmp_path / "n.nir")
    back = from_nir(tmp_path / "n.nir")
    assert torch.equal(back(x), ref)
    if binary:  # sign weights, times tau/dt in the 'unit' convention
        w = g.nodes["0"].weight
        scale = 1.0 if convention == "snntorch" else 1 / (1 - 0.8)
        np.testing.assert_allclose(np.abs(w), scale, rtol=1e-6)


def test_time_mapping_and_metadata():
    g = to_nir(_dense_net(), (20,), dt=2e-3)
    lif = g.nodes["1"]
    np.testing.assert_allclose(lif.tau, 2e-3 / (1 - 0.8), rtol=1e-6)
    np.testing.assert_allclose(lif.r, 1 / (1 - 0.8), rtol=1e-6)  # r = tau/dt
    np.testing.assert_allclose(lif.v_threshold, 0.5)
    assert np.all(lif.v_reset == 0) and np.all(lif.v_leak == 0)
    assert g.metadata["dt_s"] == 2e-3 and g.metadata["approximations"] == "none"
    assert "tau = dt_s / (1 - beta)" in g.metadata["time_mapping"]
    # beta = 1 (no leak) is an IF neuron
    g1 = to_nir(nn.Sequential(nn.Linear(4, 3), Leaky(beta=1.0, reset="zero")), (4,))
    assert isinstance(g1.nodes["1"], nir.IF)


def test_subtractive_reset_refused_or_flagged():
    net = _dense_net(reset="subtract")
    with pytest.raises(NIRError, match=r"node '1' \(Leaky, reset by subtraction\).*--approximate reset-to-zero"):
        to_nir(net, (20,))
    g = to_nir(net, (20,), approximate=["reset-to-zero"])
    assert "reset by subtraction approximated by reset to zero" in g.metadata["approximations"]
    assert g.nodes["1"].metadata["approximation"].startswith("reset by subtraction")
    with pytest.raises(NIRError, match="unknown approximation"):
        to_nir(net, (20,), approximate=["delays"])


def test_unsupported_module_named():
    with pytest.raises(NIRError, match=r"node '1' \(ReLU\).*no NIR mapping"):
        to_nir(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), (3,))
    with pytest.raises(NIRError, match="give input_shape"):
        to_nir(_dense_net())


def _small_tha(seed=0):
    torch.manual_seed(seed)
    net = THAMnistNet(image_size=14, kernel_size=3, channels1=3, channels2=4, num_steps=12, thresholds=(1.0, 1.5, 0.5))
    with torch.no_grad():  # non-trivial running statistics, so the folding matters
        for bn in (net.bn1, net.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _tha_zero_reset_reference(net, x):
    """The THA network in eval mode with reset to zero, written out layer by layer (unfolded BN)."""
    T, B = net.params.num_steps, x.shape[0]
    c1 = net.bn1(F.avg_pool2d(F.conv2d(x, binarize(net.conv1.weight)), 2))
    s1, _ = leaky_multistep(c1, net.lif1.beta, net.lif1.threshold, reset="zero", num_steps=T)
    c2 = F.avg_pool2d(F.conv2d(s1.reshape(B * T, *s1.shape[2:]), binarize(net.conv2.weight)), 2)
    c2 = net.bn2(c2).reshape(B, T, -1)
    s2, _ = leaky_multistep(c2, net.lif2.beta, net.lif2.threshold, reset="zero")
    c3 = F.linear(s2, binarize(net.fc.weight), net.fc.bias)
    return leaky_multistep(c3, net.lif3.beta, net.lif3.threshold, reset="zero")[0]


@pytest.mark.parametrize("convention,pooling", [("snntorch", "avg"), ("unit", "avg"), ("unit", "sum")])
def test_tha_net_refused_then_approximated_with_bn_folded(convention, pooling):
    net = _small_tha()
    msg = r"node 'lif1' \(Leaky, reset by subtraction\), node 'lif2' .*, node 'lif3' .* no reset by subtraction"
    with pytest.raises(NIRError, match=msg):
        to_nir(net)
    g = to_nir(net, approximate=["reset-to-zero"], r_convention=convention)
    kinds = [type(n).__name__ for n in g.nodes.values()]
    assert kinds == [
        "Input",
        "Conv2d",
        "AvgPool2d",
        "LIF",
        "Conv2d",
        "AvgPool2d",
        "LIF",
        "Flatten",
        "Affine",
        "LIF",
        "Output",
    ]
    assert [k for k in g.nodes if k.startswith("lif")] == ["lif1", "lif2", "lif3"]
    x = torch.rand(5, 1, 14, 14)
    with torch.no_grad():
        ref = _tha_zero_reset_reference(net, x)
        got = from_nir(g)(x.unsqueeze(1).expand(-1, net.params.num_steps, -1, -1, -1))
    assert ref.sum() > 10
    assert torch.equal(got, ref)


def test_reading_bad_files(tmp_path):
    g = to_nir(_dense_net(), (20,))
    write_nir(g, tmp_path / "ok.nir")
    with h5py.File(tmp_path / "ok.nir", "r+") as f:
        del f["version"]
        f.create_dataset("version", data="0.2.0", dtype=h5py.string_dtype())
    with pytest.raises(NIRError, match=r"NIR version 0\.2\.0; spikeforge reads NIR 1\.x"):
        read_nir(tmp_path / "ok.nir")
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    with pytest.raises(NIRError, match="not a NIR"):
        read_nir(tmp_path / "junk.nir")
    with pytest.raises(FileNotFoundError):
        read_nir(tmp_path / "missing.nir")
    one = np.ones(3, np.float32)
    cuba = nir.NIRGraph.from_list(
        nir.Affine(np.eye(3, dtype=np.float32), one), nir.CubaLIF(one, one, one, 0 * one, one, 0 * one, one)
    )
    with pytest.raises(NIRError, match=r"\(CubaLIF\): current-based synapse"):
        from_nir(cuba, dt=1e-4)
    lif = nir.NIRGraph.from_list(nir.Linear(np.eye(3, dtype=np.float32)), nir.LIF(one, one, 0 * one, one, 0 * one))
    with pytest.raises(NIRError, match="pass dt"):
        from_nir(lif)
    next(n for n in lif.nodes.values() if isinstance(n, nir.LIF)).v_reset = one
    with pytest.raises(NIRError, match="v_reset != 0"):
        from_nir(lif, dt=1e-4)


def test_cli_export_refuses_then_writes(tmp_path, capsys):
    from spikeforge.io.checkpoint import save_checkpoint

    net = _small_tha()
    cfg = {"model": dict(net.params.to_dict())}
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    save_checkpoint(tmp_path / "run" / "trial0" / "best", tensors, {"config": cfg, "identity": cfg})
    out = tmp_path / "net.nir"
    assert main(["export", "nir", str(tmp_path / "run"), str(out)]) == 2
    assert "reset by subtraction" in capsys.readouterr().err and not out.exists()
    assert main(["export", "nir", str(tmp_path / "run"), str(out), "--approximate", "reset-to-zero"]) == 0
    g = read_nir(out)
    assert g.metadata["model"] == "THAMnistNet" and "lif3" in g.metadata["approximations"]
    assert main(["export", "nir", str(tmp_path / "nothing"), str(out)]) == 2


def test_spike_timing_net_exact_with_reset_to_zero():
    from spikeforge.models.tha_nets import SpikeTimingNet

    torch.manual_seed(2)
    net = SpikeTimingNet(num_inputs=12, num_hidden=30, num_outputs=3, binarize=True, beta=0.7, threshold=1.5)
    with pytest.raises(NIRError, match=r"node 'lif1' \(Leaky, reset by subtraction\), node 'lif2'"):
        to_nir(net)
    for lif in net.lif_layers:  # the same network with reset to zero: NIR expresses it exactly
        lif.params = lif.params.replace(reset="zero")
    x = _spikes((2, 50, 12), p=0.4, seed=3)
    with torch.no_grad():
        _, ref, _ = net(x)
        got = from_nir(to_nir(net))(x)
    assert ref.sum() > 5 and torch.equal(got, ref)
