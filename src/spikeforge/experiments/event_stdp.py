"""Experiment: features learned from MNIST patches with event-based STDP, then evaluated.

``spikeforge event-stdp run`` does, in a run directory ``out``:

1. **Feature learning.** Random ``size x size`` patches (``patches.count`` per image, all-blank
   ones skipped) of the first ``data.feature_images`` training images are rate coded and presented
   to a winner-take-all LIF layer (:mod:`spikeforge.models.event_stdp`) that learns with
   postsynaptic event-based STDP (Tavanaei et al. 2018). The weights after each epoch are saved to
   ``out/features.*`` (safetensors + JSON); a killed run resumes from the last finished epoch.
   Figure: ``features.png`` (the learned features as a grid).
2. **Feature activity.** The frozen layer is applied convolutionally: every patch position of every
   image (``stride`` apart) is presented, batched over all positions of many images at once, and
   the spike counts per (position, feature) are averaged over a ``pool_grid x pool_grid`` grid of
   image regions (adaptive average pooling of the count map). The frozen layer is the training
   circuit with the ``[inference]`` settings (softer I->E inhibition, stronger input current,
   expected instead of sampled input spikes; see :class:`InferenceParams` for why).
3. **Reconstruction.** Each test patch is rebuilt from the activity of the features on it as the
   spike-count-weighted mean of the active features' weight vectors times ``scale``
   (``reconstruction.normalize = false``: the count-weighted sum), and overlapping patches are
   averaged back into an image; ``scale`` is one least-squares number fitted on
   ``reconstruction.fit_images`` training images. Reported: the mean squared error per pixel
   (pixels in [0, 1]) over the test images, and the same for **random features** of the same count
   (uniform random weights, each column rescaled to the sum of the learned column it replaces, same
   thresholds, same scale fitting). Figure: ``reconstructions.png``.
4. **Linear readout.** Softmax regression (PyTorch, Adam) on the standardised pooled activity of
   the training images; accuracy on the test images.

Outputs: ``results.json``, ``config.toml`` (the full resolved config), ``features.*`` and
``checkpoint.*`` (features, thresholds and readout), the figures, and ``log.txt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..config import (
    ConfigError,
    to_toml,  # noqa: F401  (re-exported: it lived here before)
)
from ..encoding.patches import extract_patches, fold_patches, patch_grid_shape
from ..evaluation.readout import readout_predict, train_readout
from ..models.event_stdp import (
    fit_reconstruction_scale,
    init_thresholds,
    init_weights,
    reconstruct_patches,
    respond,
    train_batch,
)
from .event_stdp_config import (  # noqa: F401  (config classes re-exported)
    SPEC,
    DataParams,
    EventSTDPExperimentParams,
    InferenceParams,
    ReadoutParams,
    ReconstructionParams,
    TrainingParams,
)
from .scaffold import RunDir, resolve_config, torch_generator

CURVE_PATCHES = 256  # patches per point of the feature-training curve (training.png)


def load_config(
    config_path: str | Path | None = None, overrides: list[str] | None = None, fields: dict[str, Any] | None = None
) -> EventSTDPExperimentParams:
    """The packaged TOML <- ``config_path`` <- ``section.key=value`` <- ``{"section.key": value}``."""
    cfg = resolve_config(SPEC, config_file=config_path, sets=overrides or [], values=fields)
    assert isinstance(cfg, EventSTDPExperimentParams)
    return cfg


# ------------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------------


def learn_features(
    images: torch.Tensor,
    cfg: EventSTDPExperimentParams,
    generator: torch.Generator,
    w: torch.Tensor | None = None,
    thr: torch.Tensor | None = None,
    start_epoch: int = 0,
    on_epoch: Callable[[int, torch.Tensor, torch.Tensor, dict], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
):
    """Train the features on random patches of ``images`` ``[n, H, W]`` (float in [0, 1]).

    Returns ``(w [n_in, N], thr [1, N], history)``; ``on_epoch(epoch, w, thr, stats)`` is called
    after every epoch (used for checkpoints)."""
    if w is None:
        w = init_weights(cfg.layer, generator)
        thr = init_thresholds(cfg.layer)
    history: list[dict[str, float]] = []
    p, tr = cfg.patches, cfg.training
    chunk_images = max(1, 8192 // p.count)
    n_total = max(tr.epochs * images.shape[0], 1)
    stdp = cfg.event_stdp
    for epoch in range(start_epoch, tr.epochs):
        order = torch.randperm(images.shape[0], generator=generator)
        n_patches = n_spikes = 0
        curve: list[list[float]] = []  # [patches presented this epoch, spikes per patch] per window
        window = [0, 0]
        t0 = time.perf_counter()
        for lo in range(0, images.shape[0], chunk_images):
            if tr.final_lr_fraction < 1.0:
                done = (epoch * images.shape[0] + lo) / n_total
                stdp = cfg.event_stdp.replace(
                    learning_rate=cfg.event_stdp.learning_rate * (1.0 - (1.0 - tr.final_lr_fraction) * done)
                )
            batch_imgs = images[order[lo : lo + chunk_images]]
            pt = extract_patches(batch_imgs, p.size_px, p.stride_px, p.count, generator)
            pt = pt.reshape(-1, pt.shape[-1])
            pt = pt[pt.sum(dim=1) >= max(tr.min_pixel_sum, 1e-12)]
            pt = pt[torch.randperm(pt.shape[0], generator=generator)]
            for b in range(0, pt.shape[0], tr.batch_size):
                w, thr, n = train_batch(w, thr, pt[b : b + tr.batch_size], cfg.layer, cfg.coding, stdp, generator)
                n_spikes += n
                window[0] += int(n)
                window[1] += min(tr.batch_size, pt.shape[0] - b)
                if window[1] >= CURVE_PATCHES:  # one point of the training curve
                    seen = n_patches + min(b + tr.batch_size, pt.shape[0])
                    curve.append([seen, window[0] / window[1]])
                    window = [0, 0]
            n_patches += pt.shape[0]
        stats = {
            "epoch": epoch + 1,
            "patches": n_patches,
            "seconds": time.perf_counter() - t0,
            "spikes_per_patch": n_spikes / max(n_patches, 1),
            "threshold_mean": float(thr.mean()),
            "weight_mean": float(w.mean()),
            "curve": curve,
        }
        history.append(stats)
        log(
            f"epoch {epoch + 1}/{tr.epochs}: {n_patches} patches, "
            f"{stats['spikes_per_patch']:.2f} spikes/patch, {stats['seconds']:.1f} s"
        )
        if on_epoch is not None:
            on_epoch(epoch + 1, w, thr, stats)
    return w, thr, history


def feature_activity(
    images: torch.Tensor,
    w: torch.Tensor,
    thr: torch.Tensor,
    cfg: EventSTDPExperimentParams,
    generator: torch.Generator,
    keep_counts: int = 0,
    on_chunk: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
):
    """Pooled activity ``[n, N * g * g]`` of every image, computed in chunks of images (memory
    bounded by ``inference.chunk_patches``); also the raw counts ``[keep_counts, L, N]`` of the
    first ``keep_counts`` images. ``on_chunk(first_index, images, counts [b, L, N])`` is called
    for every chunk (used to score reconstructions without keeping all counts)."""
    p = cfg.patches
    gr, gc = patch_grid_shape(images.shape[1:], p.size_px, p.stride_px)
    n_pos = gr * gc
    n_feat = w.shape[1]
    g = cfg.readout.pool_grid
    chunk_imgs = max(1, cfg.inference.chunk_patches // n_pos)
    layer = cfg.inference_layer()
    pooled = torch.empty((images.shape[0], n_feat * g * g), dtype=torch.float32)
    kept = torch.empty((min(keep_counts, images.shape[0]), n_pos, n_feat), dtype=torch.float32)
    for lo in range(0, images.shape[0], chunk_imgs):
        x = images[lo : lo + chunk_imgs]
        pt = extract_patches(x, p.size_px, p.stride_px).reshape(-1, p.size_px * p.size_px)
        counts = respond(
            w,
            thr,
            pt,
            layer,
            cfg.coding,
            generator,
            chunk=cfg.inference.chunk_patches,
            deterministic=cfg.inference.deterministic_input,
            engine=cfg.inference.engine,
        )
        counts = counts.reshape(x.shape[0], gr, gc, n_feat)
        if lo < kept.shape[0]:
            hi = min(kept.shape[0], lo + x.shape[0])
            kept[lo:hi] = counts[: hi - lo].reshape(hi - lo, n_pos, n_feat)
        if on_chunk is not None:
            on_chunk(lo, x, counts.reshape(x.shape[0], n_pos, n_feat))
        maps = counts.permute(0, 3, 1, 2)
        pooled[lo : lo + x.shape[0]] = F.adaptive_avg_pool2d(maps, (g, g)).reshape(x.shape[0], -1)
    return pooled, kept


def reconstruct_images(
    counts: torch.Tensor,
    w: torch.Tensor,
    scale: float,
    image_hw: tuple[int, int],
    size_px: int,
    stride_px: int,
    normalize: bool = False,
) -> torch.Tensor:
    """Images ``[n, H, W]`` rebuilt from per-position counts ``[n, L, N]`` (overlaps averaged;
    see :func:`~spikeforge.models.event_stdp.reconstruct_patches`)."""
    return fold_patches(reconstruct_patches(counts, w, scale, normalize), image_hw, size_px, stride_px)


def random_features_like(w: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform random weights of ``w``'s shape, each column rescaled to the sum of ``w``'s column."""
    r = torch.rand(w.shape, generator=generator)
    return r * (w.sum(0, keepdim=True) / r.sum(0, keepdim=True).clamp_min(1e-12))


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------


def run(
    cfg: EventSTDPExperimentParams, out: str | Path, *, quiet: bool = False, threads: int | None = None
) -> dict[str, Any]:
    """The whole experiment in the run directory ``out`` (opened and locked here); its results."""
    from .scaffold import set_threads

    set_threads(threads)
    rd = RunDir(out, SPEC, quiet=quiet)
    rd.saved()
    with rd.open(cfg):
        return run_in(rd)


def run_in(rd: RunDir) -> dict[str, Any]:
    """The experiment in an opened run directory (``rd.cfg`` is its config)."""
    from ..data.mnist import describe_source, load_dataset
    from ..io import atomic_write_text
    from ..plotting.figures import plot_curves, plot_weight_grid
    from ..plotting.reconstruction import plot_reconstructions

    cfg = rd.cfg
    assert isinstance(cfg, EventSTDPExperimentParams)
    out = rd.path
    log_lines: list[str] = []

    def log(msg: str) -> None:
        log_lines.append(msg)
        if not rd.quiet:
            print(msg, flush=True)

    t_start = time.perf_counter()
    d = cfg.data
    tr_imgs, tr_lbls = load_dataset(d.data_dir, "train", d.train_limit)
    te_imgs, te_lbls = load_dataset(d.data_dir, "test", d.test_limit)
    source = describe_source(d.data_dir)
    log(f"data: {source}: {len(tr_imgs)} train / {len(te_imgs)} test images")
    x_tr = torch.from_numpy(np.asarray(tr_imgs, dtype=np.float32) / 255.0)
    x_te = torch.from_numpy(np.asarray(te_imgs, dtype=np.float32) / 255.0)
    y_tr = torch.from_numpy(np.asarray(tr_lbls, dtype=np.int64))
    y_te = torch.from_numpy(np.asarray(te_lbls, dtype=np.int64))
    image_hw = tuple(x_tr.shape[1:])
    p = cfg.patches
    patch_grid_shape(image_hw, p.size_px, p.stride_px)  # clear error for a patch larger than images

    # ---- 1. features -------------------------------------------------------------------------
    gen = torch_generator(cfg.seed)
    n_feat_imgs = min(d.feature_images, x_tr.shape[0])
    key = cfg.feature_key()
    w = thr = None
    start_epoch = 0
    history: list[dict] = []
    train_seconds = 0.0
    if rd.has_checkpoint("features"):
        arrays, meta = rd.load_checkpoint("features")
        if meta.get("feature_key") != key:
            raise ConfigError(
                f"{out} holds features trained with another config: use another --out, or --fresh to start again"
            )
        w = torch.from_numpy(arrays["weights"]).float()
        thr = torch.from_numpy(arrays["thresholds"]).float()
        gen.set_state(torch.from_numpy(arrays["generator_state"]).to(torch.uint8))
        start_epoch = int(meta["epochs_done"])
        history = list(meta.get("history", []))
        train_seconds = float(meta.get("train_seconds", 0.0))
        log(f"resuming: features of {start_epoch}/{cfg.training.epochs} epochs loaded from {out / 'features'}")

    def save_features(epoch, w_, thr_, stats):
        nonlocal train_seconds
        train_seconds += stats["seconds"]
        history.append(stats)
        rd.save_checkpoint(
            "features",
            {"weights": w_, "thresholds": thr_, "generator_state": gen.get_state()},
            {
                "feature_key": key,
                "epochs_done": epoch,
                "history": history,
                "train_seconds": train_seconds,
                "version": __version__,
            },
        )

    w, thr, _ = learn_features(x_tr[:n_feat_imgs], cfg, gen, w, thr, start_epoch, save_features, log)
    log(f"features: {w.shape[1]} of {p.size_px}x{p.size_px}, trained in {train_seconds:.1f} s")
    figures = {"features": "features.png", "reconstructions": "reconstructions.png"}
    plot_weight_grid(
        w,
        out / "features.png",
        (p.size_px, p.size_px),
        cmap="gray",
        title=f"{w.shape[1]} event-STDP features ({p.size_px}x{p.size_px})",
    )
    if history:
        # spikes per patch over training, a point per CURVE_PATCHES patches (epochs end to end)
        xs, ys, offset = [], [], 0.0
        for h in history:
            for seen, rate in h.get("curve") or [[h["patches"], h["spikes_per_patch"]]]:
                xs.append(offset + seen)
                ys.append(rate)
            offset += h["patches"]
        plot_curves(
            {"spikes per patch": ys},
            out / "training.png",
            xlabel="training patches presented",
            ylabel="spikes per patch",
            title=f"feature training ({len(history)} epoch(s), a point per {CURVE_PATCHES} patches)",
            x=xs,
        )
        figures["training"] = "training.png"

    # ---- 2. activity, 3. reconstruction ----------------------------------------------------------
    # Test images are scored chunk by chunk as their activity is computed (bounded memory); only
    # the counts of the ``fit_images`` training images used to fit the scale are kept.
    def patches_of(x):
        return extract_patches(x, p.size_px, p.stride_px)

    norm = cfg.reconstruction.normalize
    k_show = min(cfg.reconstruction.n_show, x_te.shape[0])
    fit_n = min(cfg.reconstruction.fit_images, x_tr.shape[0])
    act_gen = torch_generator(cfg.seed + 1)

    def test_pass(w_, scale_):
        """Pooled test activity, reconstruction MSE, the first images' reconstructions, and the
        mean spike count per patch."""
        sums = {"sq": 0.0, "spikes": 0.0, "patches": 0}
        shown = torch.zeros((k_show, *image_hw))

        def score(lo, x, counts):
            rec = reconstruct_images(counts, w_, scale_, image_hw, p.size_px, p.stride_px, norm)
            sums["sq"] += float(((rec - x) ** 2).sum())
            sums["spikes"] += float(counts.sum())
            sums["patches"] += counts.shape[0] * counts.shape[1]
            if lo < k_show:
                hi = min(k_show, lo + x.shape[0])
                shown[lo:hi] = rec[: hi - lo]

        pooled, _ = feature_activity(x_te, w_, thr, cfg, act_gen, on_chunk=score)
        return pooled, sums["sq"] / x_te.numel(), shown, sums["spikes"] / max(sums["patches"], 1)

    t0 = time.perf_counter()
    a_tr, c_fit = feature_activity(x_tr, w, thr, cfg, act_gen, keep_counts=fit_n)
    scale = fit_reconstruction_scale(c_fit, w, patches_of(x_tr[:fit_n]), norm)
    a_te, mse, rec, spikes_per_patch = test_pass(w, scale)
    extract_seconds = time.perf_counter() - t0
    n_patches = (x_tr.shape[0] + x_te.shape[0]) * c_fit.shape[1]
    log(f"activity of {n_patches} patches in {extract_seconds:.1f} s")

    w_rand = random_features_like(w, torch_generator(cfg.seed + 2))
    _, c_fit_r = feature_activity(x_tr[:fit_n], w_rand, thr, cfg, act_gen, keep_counts=fit_n)
    scale_rand = fit_reconstruction_scale(c_fit_r, w_rand, patches_of(x_tr[:fit_n]), norm)
    _, mse_rand, rec_rand, _ = test_pass(w_rand, scale_rand)
    del c_fit, c_fit_r
    mse_zero = float((x_te**2).mean())
    log(f"reconstruction MSE: learned {mse:.5f}, random {mse_rand:.5f} (all-zero image {mse_zero:.5f})")
    plot_reconstructions(
        x_te[:k_show],
        [("learned", rec), ("random", rec_rand)],
        out / "reconstructions.png",
        title=f"test images; MSE learned {mse:.4f}, random {mse_rand:.4f}",
    )

    # ---- 4. readout ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    weight, bias, mean, std, loss_hist = train_readout(a_tr, y_tr, cfg.readout, cfg.seed)
    readout_seconds = time.perf_counter() - t0
    acc_te = float((readout_predict(a_te, weight, bias, mean, std) == y_te).float().mean())
    acc_tr = float((readout_predict(a_tr, weight, bias, mean, std) == y_tr).float().mean())
    log(
        f"linear readout on {a_tr.shape[1]} pooled features: train {acc_tr:.4f}, "
        f"test {acc_te:.4f} ({readout_seconds:.1f} s)"
    )
    plot_curves(
        {"cross-entropy": loss_hist},
        out / "readout.png",
        xlabel="epoch",
        ylabel="training loss",
        title="linear readout",
    )
    figures["readout"] = "readout.png"

    rd.save_checkpoint(
        "checkpoint",
        {
            "weights": w,
            "thresholds": thr,
            "readout_weight": weight,
            "readout_bias": bias,
            "readout_mean": mean,
            "readout_std": std,
        },
        {"config": cfg.to_dict(), "version": __version__},
    )
    results = {
        "experiment": "event-stdp",
        "version": __version__,
        "data": source,
        "n_train": int(x_tr.shape[0]),
        "n_test": int(x_te.shape[0]),
        "feature_images": n_feat_imgs,
        "features": int(w.shape[1]),
        "patch_size": p.size_px,
        "stride": p.stride_px,
        "inhibition": cfg.layer.inhibition,
        "train_seconds": train_seconds,
        "feature_training": history,
        "activity_seconds": extract_seconds,
        "readout_seconds": readout_seconds,
        "total_seconds": time.perf_counter() - t_start,
        "reconstruction_mse": mse,
        "reconstruction_mse_random": mse_rand,
        "reconstruction_mse_zero_image": mse_zero,
        "reconstruction_scale": scale,
        "reconstruction_scale_random": scale_rand,
        "readout_dim": int(a_tr.shape[1]),
        "accuracy": acc_te,
        "train_accuracy": acc_tr,
        "mean_spikes_per_test_patch": spikes_per_patch,
        "threads": torch.get_num_threads(),
        "seed": cfg.seed,
        "figures": figures,
        "checkpoint": "checkpoint.safetensors",
    }
    results = rd.write_results(results, engine=cfg.inference.engine)
    atomic_write_text(out / "log.txt", "\n".join(log_lines) + "\n")
    return results
