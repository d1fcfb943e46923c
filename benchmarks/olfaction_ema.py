"""Several weight-average decays (``run.ema_decay``) of one spiking olfaction run, side by side.

    python benchmarks/olfaction_ema.py --epochs 8 --kc 2500 --mode decolle --decays 0.6,0.8,0.9 \
        [--set '{"run": {"lr": 5e-5}}']

Trains the experiment's network once (``small`` preset, the cosine schedule over ``--epochs``)
and keeps one average per decay, each updated after every training batch exactly as the trainer
does; after each epoch it prints validation/test accuracy of the weights themselves and of every
average (docs/olfaction.md, "Averaging the weights over the batches").
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spikeforge.experiments.olfaction import OlfactionConfig, Trainer, blend_average, split_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--kc", type=int, default=2500)
    ap.add_argument("--mode", default="decolle", choices=("decolle", "hybrid"))
    ap.add_argument("--decays", default="0.6,0.8,0.9")
    ap.add_argument("--set", default="{}", help="JSON overrides: {'run': {...}, 'model': {...}}")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ov = json.loads(a.set)
    decays = [float(d) for d in a.decays.split(",")]
    cfg = OlfactionConfig()
    run = cfg.run.replace(preset="small", kc=a.kc, mode=a.mode, epochs=a.epochs, ema_decay=0.5, **ov.get("run", {}))
    cfg = cfg.replace(run=run, model=cfg.model.replace(**ov.get("model", {}))).resolved()
    data = split_data(cfg)
    tr = Trainer(cfg)
    averages = {d: {k: v.clone() for k, v in tr.ema.items()} for d in decays}

    def update() -> None:  # every average, as Trainer._update_average does for one
        live = tr.net.tensors()
        for d, avg in averages.items():
            blend_average(avg, live, d)

    tr._update_average = update  # type: ignore[method-assign]

    def score(raw: bool = False) -> str:
        val = (tr.predict(data["x_val"], 0, raw=raw) == data["y_val"]).mean()
        test = (tr.predict(data["x_test"], 1, raw=raw) == data["y_test"]).mean()
        return f"{val:.3f}/{test:.3f}"

    print(f"kc {a.kc}, mode {a.mode}, overrides {ov}, averaged {sorted(tr.ema)}; validation/test", flush=True)
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        _, acc = tr.train_epoch(data["x_train"], data["y_train"], epoch)
        row = [f"weights {score(raw=True)}"]
        for d, avg in averages.items():
            tr.ema = avg
            row.append(f"d={d} {score()}")
        print(
            f"epoch {epoch + 1}: train {acc:.3f} " + "  ".join(row) + f" ({time.perf_counter() - t0:.0f} s)", flush=True
        )


if __name__ == "__main__":
    main()
