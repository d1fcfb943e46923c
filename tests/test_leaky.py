"""LIF recurrence against hand computations; fused (numba) and unfused (PyTorch) forms agree."""

import pytest
import torch

from spikeforge.config import ConfigError
from spikeforge.neurons.leaky import Leaky, LeakyParams, leaky_multistep, leaky_step


def _run(x, reset, fused):
    s, u = leaky_multistep(
        torch.tensor(x, dtype=torch.float64).view(1, -1, 1), 0.5, 1.0, "fast_sigmoid", reset, fused=fused
    )
    return s.view(-1).tolist(), u.view(-1).tolist()


@pytest.mark.parametrize("fused", [True, False])
def test_subtractive_reset_by_hand(fused):
    # beta 0.5, theta 1: U = .6, .9, 1.05 (spike), then .5*1.05 + 0 - 1 = -.475, -.2375
    s, u = _run([0.6, 0.6, 0.6, 0.0, 0.0], "subtract", fused)
    assert s == [0, 0, 1, 0, 0]
    assert u == pytest.approx([0.6, 0.9, 1.05, -0.475, -0.2375])


@pytest.mark.parametrize("fused", [True, False])
def test_zero_reset_and_no_reset_by_hand(fused):
    s, u = _run([0.6, 0.6, 0.6, 0.3, 0.0], "zero", fused)
    assert s == [0, 0, 1, 0, 0]
    assert u == pytest.approx([0.6, 0.9, 1.05, 0.3, 0.15])
    s, u = _run([0.6, 0.6, 0.6, 0.3, 0.0], "none", fused)
    assert s == [0, 0, 1, 0, 0]
    assert u == pytest.approx([0.6, 0.9, 1.05, 0.825, 0.4125])


def _grads(x, beta, th, m0, sur, reset, static, fused):
    s, u = leaky_multistep(x, beta, th, sur, reset, num_steps=7 if static else None, mem0=m0, fused=fused)
    g = torch.Generator().manual_seed(1)
    loss = (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum() + (
        u * torch.randn(u.shape, generator=g, dtype=u.dtype)
    ).sum()
    return (s, u, *torch.autograd.grad(loss, [x, beta, th, m0]))


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("sur", ["fast_sigmoid", "arctan", "sigmoid", "straight_through", "triangle"])
def test_fused_and_unfused_give_same_outputs_and_gradients(reset, static, sur):
    torch.manual_seed(0)
    shape = (3, 5) if static else (3, 7, 5)
    x = (torch.randn(shape, dtype=torch.float64) * 1.5).requires_grad_()
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    th = (torch.rand(5, dtype=torch.float64) + 0.5).requires_grad_()  # per-neuron thresholds
    m0 = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    a = _grads(x, beta, th, m0, sur, reset, static, True)
    b = _grads(x, beta, th, m0, sur, reset, static, False)
    assert torch.equal(a[0], b[0])
    assert a[0].sum() > 0
    for ta, tb in zip(a[1:], b[1:]):
        torch.testing.assert_close(ta, tb, rtol=1e-10, atol=1e-10)


def test_fused_float32_close_to_unfused():
    torch.manual_seed(1)
    x = torch.randn(4, 50, 30).requires_grad_()
    out = {}
    for fused in (True, False):
        s, u = leaky_multistep(x, 0.9, 1.0, fused=fused)
        (g,) = torch.autograd.grad(s.sum() + 0.1 * u.sum(), x)
        out[fused] = (s, g)
    assert torch.equal(out[True][0], out[False][0])
    torch.testing.assert_close(out[True][1], out[False][1], rtol=1e-4, atol=1e-5)


def test_static_input_equals_repeated_input():
    torch.manual_seed(2)
    x = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    s1, u1 = leaky_multistep(x, 0.7, 0.5, num_steps=9)
    (u1.sum() + s1.sum()).backward()
    g1 = x.grad.clone()
    x.grad = None
    s2, u2 = leaky_multistep(x.unsqueeze(1).expand(2, 9, 6), 0.7, 0.5)
    (u2.sum() + s2.sum()).backward()
    assert torch.equal(s1, s2) and torch.allclose(u1, u2)
    torch.testing.assert_close(x.grad, g1)


def test_step_function_matches_multistep():
    torch.manual_seed(3)
    x = torch.randn(2, 10, 4, dtype=torch.float64)
    s, u = leaky_multistep(x, 0.9, 0.8, reset="zero")
    mem = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(10):
        st, mem = leaky_step(x[:, t], mem, 0.9, 0.8, reset="zero")
        assert torch.equal(st, s[:, t]) and torch.allclose(mem, u[:, t])


def test_module_batch_first_time_first_and_learnable_parameters():
    lif = Leaky(LeakyParams(beta=0.9, threshold=1.0, learn_beta=True, learn_threshold=True), return_mem=True)
    assert {n for n, _ in lif.named_parameters()} == {"beta", "threshold"}
    x = torch.rand(3, 20, 8) * 0.5
    s, u = lif(x)
    assert s.shape == u.shape == (3, 20, 8)
    (s.sum() + u.sum()).backward()
    assert lif.beta.grad is not None and lif.threshold.grad is not None
    fixed = Leaky(beta=0.9, time_first=True)
    assert "threshold" in dict(fixed.named_buffers()) and not list(fixed.parameters())
    st = fixed(x.transpose(0, 1))
    assert torch.equal(st.transpose(0, 1), s.detach())


def test_bad_shapes_and_values_are_clear_errors():
    with pytest.raises(ConfigError, match="no time axis"):
        leaky_multistep(torch.zeros(5), 0.9, 1.0)
    with pytest.raises(ConfigError, match="mem0 has shape"):
        leaky_multistep(torch.zeros(2, 3, 4), 0.9, 1.0, mem0=torch.zeros(3, 4))
    with pytest.raises(ConfigError, match="threshold of shape"):
        leaky_multistep(torch.zeros(2, 3, 4), 0.9, torch.ones(5))
    with pytest.raises(ConfigError, match="reset"):
        leaky_multistep(torch.zeros(2, 3, 4), 0.9, 1.0, reset="soft")
    with pytest.raises(ConfigError, match="unknown surrogate"):
        LeakyParams.from_dict(surrogate="bogus")
    with pytest.raises(ConfigError, match="beta"):
        LeakyParams.from_dict(beta=1.5)
