"""A plain ReLU MLP of the olfaction network's shape, trained by the protocol of ``--mode ann``.

    python benchmarks/olfaction_mlp_baseline.py [--preset small] [--kc 2500] [--epochs 100] [--lr 1e-3] [--seed 0]

``nn.Linear`` layers 50-500-50-KC-classes with PyTorch's default initialisation, ReLU, no sign
constraint, no noise, no normalisation; Adam, cross-entropy, batch 256; the same data, validation
split (the last 10 % of the training set) and best-validation-epoch test accuracy as
``spikeforge olfaction run --mode ann``. The comparison row for Wang's ANN (docs/olfaction.md).
Single torch thread.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch import nn

from spikeforge.experiments.olfaction import split_data
from spikeforge.experiments.olfaction_config import OlfactionConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--kc", type=int, default=2500)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    cfg = OlfactionConfig.from_dict({"run": {"preset": args.preset, "kc": args.kc, "mode": "ann"}}).resolved()
    d = split_data(cfg)
    sizes = [*cfg.ann.layer_sizes, cfg.ann.n_class]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    x, y = torch.from_numpy(d["x_train"]), torch.from_numpy(d["y_train"])
    xv, xt = torch.from_numpy(d["x_val"]), torch.from_numpy(d["x_test"])
    val, test = [], []
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed * 100003 + epoch))
        for start in range(0, len(x), args.batch_size):
            idx = perm[start : start + args.batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val.append(float((model(xv).argmax(1).numpy() == d["y_val"]).mean()))
            test.append(float((model(xt).argmax(1).numpy() == d["y_test"]).mean()))
    best = int(np.argmax(val))
    out = {"preset": args.preset, "kc": args.kc, "test_accuracy": test[best], "best_epoch": best + 1}
    out.update(val_accuracy=val[best], final_test_accuracy=test[-1], train_samples=len(x), seed=args.seed)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
