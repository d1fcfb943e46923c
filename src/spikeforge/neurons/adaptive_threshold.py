"""Adaptive thresholds: the two homeostatic threshold rules used by the package, in one place.

Each rule is written once as plain arithmetic. That source serves as the tensor form (torch tensors
or floats) and, compiled by numba, as the scalar form that the compiled loops inline (``*_c``).

Diehl & Cook (2015), excitatory layer (reference §2.3): ``dtheta/dt = -theta / tau_theta`` decays
between spikes, applied per step as ``theta <- theta * f`` with ``f`` from
:func:`spikeforge.neurons.conductance_lif.decay_factors`. Each spike while learning adds
``theta <- theta + theta_plus``. The threshold is ``v_thresh - theta_offset + theta``.

The talk "Building and Training Spiking Neural Networks" (current LIF, event STDP): per step
``thr <- thr - alpha * thr + beta * spikes``. The threshold is ``v_thresh + thr``.
"""

from __future__ import annotations

from ..jit import kernel


def theta_decay(theta, factor):
    """One step of the exponential decay of theta (``factor = exp(-dt/tau)`` or its Euler form)."""
    return theta * factor


def theta_increment(theta, spikes, theta_plus):
    """Theta after ``spikes`` spikes (a count, or 0/1 per neuron) of ``theta_plus`` each."""
    return theta + theta_plus * spikes


def talk_threshold(thr, spikes, alpha, beta):
    """The talk's adaptive threshold step ``thr - alpha * thr + beta * spikes``."""
    return thr - alpha * thr + beta * spikes


theta_decay_c = kernel(inline="always")(theta_decay)
theta_increment_c = kernel(inline="always")(theta_increment)
talk_threshold_c = kernel(inline="always")(talk_threshold)
