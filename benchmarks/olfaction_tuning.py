"""Short proxy runs of the spiking olfaction network for comparing training settings in minutes.

    python benchmarks/olfaction_tuning.py --epochs 4 [--kc 500] [--mode decolle] \
        [--set '{"model": {"readout_ampl": 4.0}, "run": {"lr": 1e-4}}']

Trains ``spikeforge olfaction run``'s network (the same config, data split and ``Trainer``) on the
``small`` preset for ``--epochs`` epochs (the cosine schedule spans those epochs) and prints, per
epoch, the mean loss and online training accuracy, the validation accuracy (validation tenth of
the training set) and the spikes per step of every layer on the validation set (input, ORN, PN,
KC): dead (near 0) or saturated (near 1) layers are visible there. ``--set`` takes a JSON object
with ``run`` and ``model`` overrides (``model`` keys nest like configs/olfaction.toml).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spikeforge.experiments.olfaction import OlfactionConfig, Trainer, split_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--kc", type=int, default=500)
    ap.add_argument("--mode", default="decolle", choices=("decolle", "hybrid"))
    ap.add_argument("--set", default="{}", help="JSON overrides: {'run': {...}, 'model': {...}}")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ov = json.loads(a.set)
    cfg = OlfactionConfig()
    run = cfg.run.replace(preset="small", kc=a.kc, mode=a.mode, epochs=a.epochs, **ov.get("run", {}))
    cfg = cfg.replace(run=run, model=cfg.model.replace(**ov.get("model", {}))).resolved()
    data = split_data(cfg)
    trainer = Trainer(cfg)
    xv = torch.from_numpy(data["x_val"])
    print(f"kc {a.kc}, mode {a.mode}, overrides {ov}", flush=True)
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        loss, acc = trainer.train_epoch(data["x_train"], data["y_train"], epoch)
        res = trainer.net.run_batch(xv, generator=torch.Generator().manual_seed(1))
        val = float((res["logits"].argmax(1).numpy() == data["y_val"]).mean())
        rates = ", ".join(f"{r:.3f}" for r in res["rates"])
        print(
            f"epoch {epoch + 1}: loss {loss:.3f} train {acc:.3f} val {val:.3f} rates [{rates}] "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
