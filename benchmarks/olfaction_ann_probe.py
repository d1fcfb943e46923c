"""How fast Wang's ANN forms glomeruli on the wang2021 preset: GloScore and K per training sample.

    python benchmarks/olfaction_ann_probe.py --lr 1e-3 [--pn2kc-lr 3e-4] [--or2orn-lr R] [--orn2pn-lr R] \
        [--batch-size 256] [--samples 400000] [--every 100000] [--kc 2500] [--seed 0] \
        [--ann receptor_layer=false] [--ann orn_noise_std=0.0] [--start RUN/checkpoint.safetensors]

Trains the ``mode = ann`` network of ``spikeforge olfaction run --preset wang2021`` (the same data,
validation split and model; Adam, cross-entropy, constant learning rate) for ``--samples`` training
odors and prints one JSON line every ``--every`` odors: validation accuracy on the first 8,192
odors of the validation split, the last batch's loss, both GloScores, the ORN score and K at 0.02
(``olfaction_report.epoch_connectivity``). Single torch thread. Used to pick the learning rate and
batch size of the long wang2021 run (docs/olfaction.md). ``--start`` loads the weights of a
``--mode ann`` run (not its Adam state) to ask whether a trained state still moves.
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib

import torch
from safetensors.torch import load_file

from spikeforge.experiments.olfaction import split_data
from spikeforge.experiments.olfaction_config import OlfactionConfig
from spikeforge.experiments.olfaction_report import epoch_connectivity
from spikeforge.models.olfaction_ann import WangANN


def block_groups(model: WangANN, args) -> list[dict]:
    """Adam groups: OR->ORN, ORN->PN and PN->KC blocks at their own rates (default --lr), the rest at --lr."""
    rates = [args.or2orn_lr, args.orn2pn_lr, args.pn2kc_lr]
    groups, taken = [], set()
    for block, rate in zip(model.blocks, rates):
        ps = list(block.parameters())
        taken |= {id(q) for q in ps}
        groups.append({"params": ps, "lr": args.lr if rate is None else rate})
    groups.append({"params": [q for q in model.parameters() if id(q) not in taken], "lr": args.lr})
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--pn2kc-lr", type=float, default=None, help="PN->KC block's rate (default: --lr)")
    ap.add_argument("--or2orn-lr", type=float, default=None, help="OR->ORN block's rate (default: --lr)")
    ap.add_argument("--orn2pn-lr", type=float, default=None, help="ORN->PN block's rate (default: --lr)")
    ap.add_argument("--start", default=None, help="checkpoint.safetensors of a --mode ann run to start from")
    ap.add_argument("--ann", action="append", default=[], metavar="KEY=VALUE", help="an [ann] setting (TOML value)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=400_000)
    ap.add_argument("--every", type=int, default=100_000)
    ap.add_argument("--kc", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ann = {k: tomllib.loads(f"v = {v}")["v"] for k, v in (a.split("=", 1) for a in args.ann)}
    run = {"preset": "wang2021", "kc": args.kc, "mode": "ann", "seed": args.seed}
    cfg = OlfactionConfig.from_dict({"run": run, "ann": ann})
    cfg = cfg.resolved()
    d = split_data(cfg)
    model = WangANN(cfg.ann, torch.Generator().manual_seed(args.seed))
    noise = torch.Generator().manual_seed(args.seed + 1)
    if args.start:  # the weights only; Adam starts afresh
        sd = load_file(args.start)
        model.load_state_dict({k: v for k, v in sd.items() if not k.startswith("opt.")})
    opt = torch.optim.Adam(block_groups(model, args), lr=args.lr)
    x, y = torch.from_numpy(d["x_train"]), torch.from_numpy(d["y_train"])
    xv, yv = torch.from_numpy(d["x_val"][:8192]), d["y_val"][:8192]
    seen, report_at, t0, epoch = 0, args.every, time.time(), 0
    name = f"lr {args.lr:g}" + "".join(
        f", {k} {getattr(args, k + '_lr'):g}"
        for k in ("or2orn", "orn2pn", "pn2kc")
        if getattr(args, k + "_lr") is not None
    )
    name += "".join(f", {a}" for a in args.ann) + f", batch {args.batch_size}"
    name += ", from checkpoint" if args.start else ""
    while seen < args.samples:
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        epoch += 1
        for start in range(0, len(x), args.batch_size):
            model.train()
            idx = perm[start : start + args.batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx], noise), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
            if seen >= report_at:
                report_at += args.every
                model.eval()
                with torch.no_grad():
                    pred = model(xv, torch.Generator().manual_seed(5)).argmax(1).numpy()
                conn = epoch_connectivity([w.numpy() for w in model.connectivity()])
                row = {"run": name, "seen": seen, "val": round(float((pred == yv).mean()), 4)}
                row.update(loss=round(loss.item(), 3), **conn, seconds=round(time.time() - t0))
                print(json.dumps(row), flush=True)
            if seen >= args.samples:
                break


if __name__ == "__main__":
    main()
