"""Surrogate gradients: the backward pass equals the analytic derivative of each smooth primitive."""

import math

import pytest
import torch

from spikeforge.config import ConfigError
from spikeforge.surrogate import SURROGATES, get_surrogate, spike_fn

# smooth primitives whose derivative each surrogate claims to be
PRIMITIVES = {
    "fast_sigmoid": lambda x, k: x / (1 + k * x.abs()),
    "arctan": lambda x, a: torch.atan(math.pi / 2 * a * x) / math.pi,
    "sigmoid": lambda x, k: torch.sigmoid(k * x),
    "straight_through": lambda x, k: x,
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
@pytest.mark.parametrize("slope", [0.5, 2.0, 10.22])
def test_backward_equals_derivative_of_primitive(name, slope):
    x = torch.linspace(-3, 3, 241, dtype=torch.float64).requires_grad_()
    (g_prim,) = torch.autograd.grad(PRIMITIVES[name](x, slope).sum(), x)
    x2 = x.detach().clone().requires_grad_()
    spike_fn(x2, get_surrogate(name, slope)).sum().backward()
    torch.testing.assert_close(x2.grad, g_prim, rtol=1e-12, atol=1e-12)


def test_closed_forms_at_points():
    x = torch.tensor([0.0, 0.1, -0.3], dtype=torch.float64)
    k = 4.0
    torch.testing.assert_close(get_surrogate("fast_sigmoid", k).grad(x), 1 / (1 + k * x.abs()) ** 2)
    torch.testing.assert_close(
        get_surrogate("arctan", 2.0).grad(torch.zeros(1, dtype=torch.float64)), torch.ones(1, dtype=torch.float64)
    )  # alpha/2 at 0
    torch.testing.assert_close(
        get_surrogate("sigmoid", k).grad(torch.zeros(1, dtype=torch.float64)),
        torch.full((1,), k / 4, dtype=torch.float64),
    )
    tri = get_surrogate("triangle", 2.0).grad(torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(tri, torch.tensor([2.0, 1.0, 0.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_forward_is_heaviside_with_h0_zero(name):
    x = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 2.0])
    assert spike_fn(x, get_surrogate(name)).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_slope_is_a_parameter_and_aliases():
    assert get_surrogate("fast_sigmoid").slope == 25.0
    assert get_surrogate("fast_sigmoid", 10.22).slope == 10.22
    assert get_surrogate("atan").name == "arctan"
    assert get_surrogate("STE").name == "straight_through"


def test_unknown_surrogate_and_bad_slope_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown surrogate gradient 'nope'.*fast_sigmoid"):
        get_surrogate("nope")
    with pytest.raises(ConfigError, match="slope"):
        get_surrogate("sigmoid", -1.0)
