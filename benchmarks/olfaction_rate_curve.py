"""Rate curve of the olfaction input neurons: spikes per step against the odor activation.

    python benchmarks/olfaction_rate_curve.py [--out docs/figures/olfaction/rate_curve.png]

Constant-current encoding (the original: the activation is the input current of a CUBA neuron
with threshold 1.0, current decay 0.25, voltage decay 0.03) at input gains 1 (the original) and
0.25, with lava's reset to 0 and with the subtractive reset of our default, over the 100 steps
after a 50-step burn-in; and Bernoulli spikes with probability ``gain * a`` (expected rate).
Prints the table of reference §1.5 at gain 1.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from spikeforge.neurons.olfaction_lif import CubaLIFParams, cuba_init, cuba_step
from spikeforge.plotting.olfaction import plot_rate_curves


def rate_after_burn_in(a: np.ndarray, gain: float, steps: int = 150, burn_in: int = 50, reset: str = "zero"):
    p = CubaLIFParams()
    x = torch.tensor(a, dtype=torch.float64)[None, :] * gain
    st = cuba_init(1, x.shape[1], dtype=torch.float64)
    total = torch.zeros_like(x)
    for t in range(steps):
        v_before = (1 - p.voltage_decay) * st.voltage + (1 - p.current_decay) * st.current + x
        st, s, _ = cuba_step(st, x, p, threshold=1.0)
        if reset == "subtract":  # v <- v - threshold instead of 0
            st = st._replace(voltage=v_before - s)
        if t >= burn_in:
            total += s
    return (total / (steps - burn_in)).numpy()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/figures/olfaction/rate_curve.png")
    args = ap.parse_args()
    a = np.linspace(0.0, 1.0, 401)
    curves = {
        "current, gain 1 (original)": rate_after_burn_in(a, 1.0),
        "current, gain 0.25, reset to 0": rate_after_burn_in(a, 0.25),
        "current, gain 0.25, subtractive reset (default)": rate_after_burn_in(a, 0.25, reset="subtract"),
        "Bernoulli, p = 0.25 a": 0.25 * a,
        "Bernoulli, p = a": a,
    }
    plot_rate_curves(a, curves, args.out, "input neuron rate (100 steps after a 50-step burn-in)")
    probe = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0])
    table = {g: dict(zip(probe.tolist(), rate_after_burn_in(probe, g).round(3).tolist())) for g in (1.0, 0.25)}
    print(json.dumps(table, indent=1))
    sat = {g: float(np.mean(rate_after_burn_in(np.random.default_rng(0).random(5000), g) >= 0.9)) for g in (1.0, 0.25)}
    print("fraction of uniform[0,1) activations with rate >= 0.9:", sat)


if __name__ == "__main__":
    main()
