"""The dense update-cycle kernel (``mask=None``) against the general per-synapse kernel (the same
block given as an all-ones mask): the same updates bit for bit and the same state after every step,
on spike trains with the correlations of a real layer (bursts and silences) and on random ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge.plasticity.pair_stdp import CycleState, PairSTDPParams, stdp_update


def _trains(kind: str, steps: int, batch: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        return (torch.rand(steps, batch, n, generator=g) < 0.3).float()
    rate = torch.rand(1, batch, n, generator=g) ** 3  # per-neuron rates from 0 to 1, most low
    on = torch.rand(steps, 1, n, generator=g) < 0.6  # shared bursts across the batch
    return ((torch.rand(steps, batch, n, generator=g) < rate) & on).float()


@pytest.mark.parametrize("kind", ["correlated", "random"])
@pytest.mark.parametrize("ignore_zeros", [True, False])
@pytest.mark.parametrize("bounds", ["clip", "soft"])
def test_dense_kernel_equals_general_kernel(kind: str, ignore_zeros: bool, bounds: str) -> None:
    B, n_pre, n_post, steps = 5, 7, 11, 60
    pre = _trains(kind, steps, B, n_pre, 1)
    post = _trains(kind, steps, B, n_post, 2)
    p = PairSTDPParams(
        a_plus=1e-2, a_minus=1.2e-2, tau_plus_steps=4.0, tau_minus_steps=10.0,
        ignore_zeros=ignore_zeros, bounds=bounds, w_min=0.0, w_max=1.0,
    )  # fmt: skip
    w0 = torch.rand(n_post, n_pre, generator=torch.Generator().manual_seed(3))
    w_dense, w_gen = w0.clone(), w0.clone()
    ones = torch.ones(n_post, n_pre)
    s_dense, s_gen = CycleState(B, n_pre, n_post), CycleState(B, n_pre, n_post)
    changed = 0
    for t in range(steps):
        d1 = stdp_update(w_dense, pre[t], post[t], t, s_dense, p)
        d2 = stdp_update(w_gen, pre[t], post[t], t, s_gen, p, mask=ones)
        assert s_dense.n2 is not None and s_gen.open is not None
        assert torch.equal(d1, d2), t
        assert torch.equal(w_dense, w_gen), t
        np.testing.assert_array_equal(s_dense.open, s_gen.open)
        np.testing.assert_array_equal(s_dense.last_pre, s_gen.last_pre)
        np.testing.assert_array_equal(s_dense.last_post, s_gen.last_post)
        opened_by_post = (s_dense.open.reshape(B, n_pre, n_post) == 2).sum(2)
        np.testing.assert_array_equal(s_dense.n2, opened_by_post)
        changed += int((d1 != 0).sum())
    assert changed > 100  # the trains exercise the rule
