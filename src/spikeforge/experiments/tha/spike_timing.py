"""``spikeforge tha spike-timing``: the section-4 task of Eshraghian & Lu 2022 (snn-tha
``temporal/bounded_homeostasis.ipynb``), four cases (see :mod:`spikeforge.experiments.tha`)."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from ...evaluation.spike_losses import membrane_mse
from ...io import atomic_write_bytes
from ...models.tha_nets import SpikeTimingNet, SpikeTimingNetParams
from ...plasticity.threshold_annealing import ThresholdAnnealing
from ...plotting.figures import plot_curves
from ...plotting.traces import animate_membrane, plot_membrane_trace
from ..scaffold import RunDir
from .config import SPIKE_TIMING_SPEC, SpikeTimingConfig


def ramp_target(num_steps: int, target_step: int, peak: float) -> torch.Tensor:
    """Membrane target: ``peak * t / target_step`` for ``t <= target_step``, then 0 (snnTorch
    ``targets_latency(..., interpolate=True)`` semantics, reference §2.1)."""
    t = torch.arange(num_steps, dtype=torch.float32)
    return torch.where(t <= target_step, peak * t / target_step, torch.zeros(()))


def run_spike_timing(
    cfg: SpikeTimingConfig,
    out_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    """All cases in the run directory ``out_dir`` (opened and locked here); returns the results."""
    rd = RunDir(out_dir or SPIKE_TIMING_SPEC.default_out, SPIKE_TIMING_SPEC, quiet=not progress)
    rd.saved()
    with rd.open(cfg):
        return run_spike_timing_in(rd, log)


def run_spike_timing_in(rd: RunDir, log: Callable[[str], None] | None = None) -> dict:
    """The section-4 task in an opened run directory (``rd.cfg`` is its config)."""
    cfg = rd.cfg
    assert isinstance(cfg, SpikeTimingConfig)
    log = log or rd.log
    out = rd.path
    torch.set_num_threads(cfg.threads)
    gen = torch.Generator().manual_seed(cfg.seed)
    # fixed input: per-step, per-input firing probability U[0, 1), one Bernoulli draw reused
    prob = torch.rand(1, cfg.num_steps, cfg.num_inputs, generator=gen)
    x = torch.bernoulli(prob, generator=gen)
    results = {}
    for case in cfg.cases:
        torch.manual_seed(cfg.seed)
        net = SpikeTimingNet(
            SpikeTimingNetParams(
                num_inputs=cfg.num_inputs,
                num_hidden=cfg.num_hidden,
                beta=case.beta,
                threshold=case.threshold,
                surrogate=cfg.surrogate,
                slope=cfg.slope,
                binarize=case.binarize,
            )
        )
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        ap = case.anneal_params()
        annealer = ThresholdAnnealing(net.lif_layers, [ap, ap]) if ap else None
        target = ramp_target(cfg.num_steps, cfg.target_step, case.target_peak).view(1, -1, 1)
        losses, out_spikes, hid_rates, thetas, frames = [], [], [], [], []
        t0 = time.time()
        bar = rd.progress(cfg.iterations, desc=case.name, unit="it")
        for it in range(cfg.iterations):
            bar.update(1)
            h, s, u = net(x)
            loss = membrane_mse(u, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            out_spikes.append(int(s.sum()))
            hid_rates.append(h.mean().item())
            thetas.append(float(net.lif2.threshold))
            if it % cfg.frame_every == 0 or it == cfg.iterations - 1:
                frames.append(
                    (
                        it,
                        u.detach().view(-1).numpy().copy(),
                        float(net.lif2.threshold),
                        s.detach().view(-1).numpy().copy(),
                    )
                )
            if annealer is not None:
                annealer.step()
        bar.close()
        with torch.no_grad():
            h, s, u = net(x)
        final_loss = float(membrane_mse(u, target))
        spk_t = torch.nonzero(s.view(-1)).view(-1).tolist()
        cdir = out / case.name
        cdir.mkdir(exist_ok=True)
        peak2 = case.target_peak**2
        w = min(cfg.final_window, len(losses))
        results[case.name] = {
            "case": case.to_dict(),
            "final_loss": final_loss,
            "final_loss_normalised": final_loss / peak2,
            "final_loss_mean_last_iterations": float(np.mean(losses[-w:])),
            "final_loss_mean_last_iterations_normalised": float(np.mean(losses[-w:])) / peak2,
            "final_window": w,
            "first_loss": losses[0],
            "final_output_spike_times": spk_t,
            "iterations_with_output_spikes": int(sum(1 for n in out_spikes if n > 0)),
            "total_output_spikes_during_training": int(sum(out_spikes)),
            "final_hidden_rate": float(h.mean()),
            "final_threshold": float(net.lif2.threshold),
            "seconds": time.time() - t0,
        }
        log(
            f"{case.name}: final loss {final_loss:.4g} (normalised by peak^2: {final_loss / peak2:.4g}), "
            f"output spikes at {spk_t}, iterations with output spikes "
            f"{results[case.name]['iterations_with_output_spikes']}/{cfg.iterations}"
        )
        plot_curves(
            {case.name: losses},
            cdir / "loss.png",
            "training iteration",
            "membrane MSE",
            x=list(range(len(losses))),
            title=case.name,
            logy=True,
        )
        plot_membrane_trace(
            cdir / "membrane_final.png",
            u.view(-1).numpy(),
            target.view(-1).numpy(),
            s.view(-1).numpy(),
            float(net.lif2.threshold),
            case.name + " (final)",
        )
        animate_membrane(cdir / "membrane_training.gif", frames, target.view(-1).numpy(), case.name)
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            loss=np.asarray(losses),
            output_spikes=np.asarray(out_spikes),
            hidden_rate=np.asarray(hid_rates),
            threshold=np.asarray(thetas),
        )
        atomic_write_bytes(cdir / "curves.npz", buf.getvalue())
    names = list(results)
    plot_curves(
        {n: list(np.load(out / n / "curves.npz")["loss"] / cfg.cases[i].target_peak ** 2) for i, n in enumerate(names)},
        out / "loss_normalised_all.png",
        "training iteration",
        "membrane MSE / target_peak^2",
        x=list(range(cfg.iterations)),
        logy=True,
    )
    return rd.write_results({"experiment": "tha spike-timing", "cases": results}, engine="torch")
