"""Binarized layers (sign forward, straight-through backward) and the fast snn-tha network."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from spikeforge.config import ConfigError
from spikeforge.models.tha_nets import SpikeTimingNet, THAMnistNet
from spikeforge.synapses.binarized import BinaryConv2d, BinaryLinear, binarize, clamp_binary_weights_


def test_sign_maps_zero_to_plus_one_and_gradient_is_straight_through():
    w = torch.tensor([-2.0, -0.0, 0.0, 1e-9, 3.0], requires_grad=True)
    b = binarize(w)
    assert b.tolist() == [-1.0, 1.0, 1.0, 1.0, 1.0]
    g = torch.tensor([0.1, -0.2, 0.3, 0.4, -5.0])
    b.backward(g)
    assert torch.equal(w.grad, g)  # identity, no |w| <= 1 cancellation


def test_binary_linear_and_conv_forward_and_latent_gradient():
    torch.manual_seed(0)
    lin = BinaryLinear(6, 3)
    s = math.sqrt(1.5 / 9)
    assert lin.weight.abs().max() <= s and torch.equal(lin.bias, torch.zeros(3))
    x = torch.randn(4, 6)
    y = lin(x)
    torch.testing.assert_close(y, x @ torch.sign(lin.weight).T + lin.bias)
    y.sum().backward()
    torch.testing.assert_close(lin.weight.grad, x.sum(0).expand(3, 6))  # d/dsign(W) passed through
    conv = BinaryConv2d(2, 4, 3, bias=False)
    xc = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(conv(xc), F.conv2d(xc, torch.where(conv.weight >= 0, 1.0, -1.0)))


def test_clamp_latent_weights():
    lin = BinaryLinear(3, 2, clamp_weights=True)
    with torch.no_grad():
        lin.weight.mul_(100)
    clamp_binary_weights_(lin)
    assert lin.weight.abs().max() <= 1.0


@pytest.mark.parametrize("binarize_", [True, False])
def test_fast_mnist_net_equals_per_step_reference(binarize_):
    torch.manual_seed(0)
    net = THAMnistNet(binarize=binarize_, num_steps=8, dropout=0.0, thresholds=(1.0, 1.5, 0.5)).double()
    ref = copy.deepcopy(net)
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    s, u = net(x)
    s2, u2 = ref.forward_reference(x)
    assert torch.equal(s, s2) and s.sum() > 0
    torch.testing.assert_close(u, u2)
    loss = ((s.sum(1) - 3) ** 2).mean() + 0.01 * (u**2).mean()
    loss2 = ((s2.sum(1) - 3) ** 2).mean() + 0.01 * (u2**2).mean()
    loss.backward()
    loss2.backward()
    for (n, a), (_, b) in zip(net.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=n)
    for k in ("bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var", "bn1.num_batches_tracked"):
        torch.testing.assert_close(net.state_dict()[k], ref.state_dict()[k])
    net.eval(), ref.eval()
    assert torch.equal(net(x)[0], ref.forward_reference(x)[0])


def test_network_input_shape_errors():
    with pytest.raises(ConfigError, match=r"expects images of shape \[B, 1, 28, 28\]"):
        THAMnistNet(num_steps=2)(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ConfigError, match=r"expects input \[B, T, 100\]"):
        SpikeTimingNet()(torch.zeros(1, 10, 99))
