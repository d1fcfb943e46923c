"""results.json and figures of an olfaction run (helpers of :mod:`.olfaction`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..evaluation.olfaction_metrics import glo_score_effective, glo_score_orn, k_all, kc_input_degree, orn_score
from ..plotting import olfaction as oplot


def connectivity_metrics(blocks: list[np.ndarray]) -> dict:
    """GloScore (both definitions) of blocks 0-1 and K of the last block."""
    out: dict = {}
    if len(blocks) >= 2:
        out["glo_score_orn"] = round(glo_score_orn(blocks[0], blocks[1]), 4)
        out["glo_score_effective"] = round(glo_score_effective(blocks[0], blocks[1]), 4)
        out["orn_score"] = round(orn_score(blocks[0]), 4)
    out.update(k_all(blocks[-1]))
    return out


def epoch_connectivity(blocks: list[np.ndarray]) -> dict[str, float]:
    """The cheap per-epoch subset (no mixture fit): both GloScores and K at Wang's 0.02."""
    out: dict[str, float] = {}
    if len(blocks) >= 2:
        out["glo_score_orn"] = round(glo_score_orn(blocks[0], blocks[1]), 4)
        out["glo_score_effective"] = round(glo_score_effective(blocks[0], blocks[1]), 4)
        out["orn_score"] = round(orn_score(blocks[0]), 4)
    out["K_0.02"] = round(kc_input_degree(blocks[-1], 0.02)[0], 3)
    return out


def summarise(cfg, trainer, hist: dict, n_train: int) -> dict:
    best = int(np.argmax(hist["val_acc"]))
    seconds = float(np.sum(hist["seconds"]))
    return {
        "preset": cfg.run.preset,
        "mode": cfg.run.mode,
        "kc": cfg.run.kc,
        "layer_sizes": cfg.model.layer_sizes,
        "stdp_block_idx": cfg.model.stdp_block_idx if cfg.run.mode != "ann" else None,
        "test_accuracy": hist["test_acc"][best],
        "best_epoch": best + 1,
        "val_accuracy": hist["val_acc"][best],
        "final_test_accuracy": hist["test_acc"][-1],
        "epochs": len(hist["epoch"]),
        "train_samples": n_train,
        "samples_per_second": n_train * len(hist["epoch"]) / seconds if seconds > 0 else None,
        "train_seconds": seconds,
        "connectivity": connectivity_metrics(trainer.connectivity()),
        "connectivity_note": "measured on the weights after the last epoch",
        "history": hist,
        "seed": cfg.run.seed,
        "resolved_model": cfg.model.to_dict() if cfg.run.mode != "ann" else cfg.ann.to_dict(),
    }


def make_plots(cfg, trainer, hist: dict, data: dict, out: Path, results: dict) -> None:
    tag = f"{cfg.run.preset}, KC = {cfg.run.kc}, {cfg.run.mode}"
    from ..plotting.figures import plot_curves

    plot_curves(
        {"train": hist["train_acc"], "validation": hist["val_acc"], "test": hist["test_acc"]},
        out / "accuracy.png",
        "epoch",
        "accuracy",
        title=f"accuracy ({tag})",
        x=hist["epoch"],
    )
    blocks = trainer.connectivity()
    if len(blocks) >= 2:
        oplot.plot_glomeruli(
            blocks[0],
            blocks[1],
            out / "glomeruli.png",
            f"ORN -> PN, sorted by receptor type ({tag}); GloScore {results['connectivity'].get('glo_score_orn')}",
        )
    c = results["connectivity"]
    oplot.plot_kc_histogram(
        blocks[-1],
        {"1/N_KC": 1.0 / cfg.run.kc, "0.02": 0.02, "inferred": c.get("K_inferred_threshold")},
        out / "kc_weights.png",
        f"PN -> KC weights ({tag}); K = {c['K_0.02']:.2f} at 0.02",
    )
    if cfg.run.mode != "ann":
        g = torch.Generator().manual_seed(cfg.run.seed)
        res = trainer.net.run_batch(torch.from_numpy(data["x_test"][:2]), generator=g, record=True)
        rec = [[s.cpu().numpy() for s in step] for step in res["record"]]
        names = (
            ["OR", "ORN", "PN", "KC"]
            if len(cfg.model.layer_sizes) == 4
            else [f"layer {k}" for k in range(len(cfg.model.layer_sizes))]
        )
        oplot.plot_layer_raster(rec, names, out / "raster.png", cfg.model.burn_in)


ORIGINAL = {
    "decolle": {50: 0.48, 500: 0.58, 2500: 0.51, 5000: 0.54},
    "hybrid": {50: 0.30, 500: 0.40, 2500: 0.48, 5000: 0.54},
}


def write_table(rows: list[dict], out: Path, preset: str) -> str:
    """``table.md``, ``table.json`` and ``table.png`` (test accuracy by KC size and mode)."""
    from ..io.atomic import atomic_write_json, atomic_write_text

    lines = [
        "| KC | mode | test accuracy | original report | best epoch | GloScore (ORN) | K (0.02) | K (1/N_KC) "
        "| samples/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    slim = []
    for r in rows:
        c = r["connectivity"]
        orig = ORIGINAL.get(r["mode"], {}).get(r["kc"]) if preset == "small" else None
        sps = r.get("samples_per_second")
        lines.append(
            f"| {r['kc']} | {r['mode']} | {r['test_accuracy']:.3f} | {orig if orig is not None else '-'} | "
            f"{r['best_epoch']} | {c.get('glo_score_orn')} | {c['K_0.02']:.2f} | {c['K_1_over_nkc']:.2f} | "
            f"{f'{sps:.0f}' if sps else '-'} |"
        )
        slim.append({k: r[k] for k in ("kc", "mode", "test_accuracy", "best_epoch", "epochs", "connectivity")})
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "table.md", text)
    atomic_write_json(out / "table.json", slim)
    kcs = sorted({r["kc"] for r in rows})
    series: dict[str, list[float | None]] = {}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        acc = {r["kc"]: r["test_accuracy"] for r in rows if r["mode"] == mode}
        series[mode] = [acc.get(k) for k in kcs]
    oplot.plot_bars([str(k) for k in kcs], series, out / "table.png", "test accuracy", f"olfaction, {preset} preset")
    return text
