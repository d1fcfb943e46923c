"""The THA MNIST network through NIR: the exact export is refused (reset by subtraction); the
reset-to-zero approximation is exported, loaded by spikeforge, snnTorch and Norse, and their output
spike counts are compared on the first N test images; accuracy of the exact network (spikeforge,
subtractive reset) and of the approximation, on the test images of the run's config.

    python benchmarks/nir_tha_mnist.py RUN_OR_CHECKPOINT [--compare 100] [--accuracy-limit N] [--data-dir DIR]

Prints one JSON record (written to --json too, if given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch


def _clients():
    out = {}
    try:
        import snntorch.import_nir
        import snntorch.utils

        out["snntorch"] = snntorch
    except ImportError as err:
        print(f"snnTorch not available: {err}", file=sys.stderr)
    try:
        import norse.torch

        out["norse"] = norse.torch
    except ImportError as err:
        print(f"Norse not available: {err}", file=sys.stderr)
    return out


def _per_step(module, x, stateful_arg: bool, reset=None) -> torch.Tensor:
    """Output spike counts [B, classes] of an imported module run one image and one step at a time
    (both importers map NIR Flatten(start_dim=0) to torch Flatten(0), which also flattens the batch)."""
    counts = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            if reset is not None:
                reset(module)
            state, total = None, 0
            for t in range(x.shape[1]):
                if stateful_arg:
                    o, state = module(x[b : b + 1, t], state)
                else:
                    o, _ = module(x[b : b + 1, t])
                total = total + o.reshape(-1)
            counts.append(total)
    return torch.stack(counts)


def _load_test(cfg, limit: int | None):
    from spikeforge.data import load_dataset

    te_x, te_y = load_dataset(cfg.data.data_dir, "test", limit)
    x = torch.from_numpy(np.asarray(te_x, dtype=np.float32) / 255.0).unsqueeze(1)
    if cfg.data.normalize:
        x = (x - 0.1307) / 0.3081
    return x, torch.from_numpy(np.asarray(te_y, dtype=np.int64))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="`spikeforge tha mnist` run directory or checkpoint prefix")
    ap.add_argument("--compare", type=int, default=100, help="test images for the spike-count comparison")
    ap.add_argument("--accuracy-limit", type=int, default=None, help="test images for the accuracies (default: config)")
    ap.add_argument("--data-dir", default=None, help="MNIST IDX directory (default: the run's config)")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the record here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(a.threads))

    from spikeforge.evaluation.spike_losses import spike_count_predictions
    from spikeforge.experiments.tha.config import MnistConfig
    from spikeforge.experiments.tha.mnist import evaluate, load_tensors
    from spikeforge.interchange.nir import NIRError, from_nir, to_nir
    from spikeforge.interchange.sources import load_model, resolve_checkpoint

    net, where = load_model(a.source)
    cfg = MnistConfig.from_dict(load_tensors(resolve_checkpoint(a.source))[1]["config"])
    if a.data_dir is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"data_dir": a.data_dir})})
    T = net.params.num_steps
    rec: dict = {"checkpoint": where, "num_steps": T, "data_dir": cfg.data.data_dir or "embedded subset"}
    try:
        to_nir(net)
        rec["exact_export"] = "accepted"
    except NIRError as err:
        rec["exact_export_refused"] = str(err)
    g_snn = to_nir(net, approximate=["reset-to-zero"])  # snnTorch convention, AvgPool2d
    g_norse = to_nir(net, approximate=["reset-to-zero"], r_convention="unit", pooling="sum")
    ours = from_nir(g_snn)

    X, Y = _load_test(cfg, a.accuracy_limit if a.accuracy_limit is not None else cfg.data.test_limit)
    t0 = time.time()
    rec["accuracy_exact_spikeforge"] = evaluate(net, X, Y, a.batch)
    correct, counts_ours = 0, []
    with torch.no_grad():
        for i in range(0, X.shape[0], a.batch):
            xb = X[i : i + a.batch].unsqueeze(1).expand(-1, T, -1, -1, -1)
            s = ours(xb)
            correct += int((spike_count_predictions(s) == Y[i : i + a.batch]).sum())
            counts_ours.append(s.sum(1))
    rec["accuracy_reset_to_zero_nir"] = correct / X.shape[0]
    rec["accuracy_images"] = int(X.shape[0])
    rec["accuracy_wall_s"] = round(time.time() - t0, 1)

    n = min(a.compare, X.shape[0])
    xc = X[:n].unsqueeze(1).expand(-1, T, -1, -1, -1)
    ref = torch.cat(counts_ours)[:n]
    with torch.no_grad():
        exact_counts = net(X[:n])[0].sum(1)
    rec["compare_images"] = n
    rec["spikes_per_image_ours_approx"] = float(ref.sum() / n)
    rec["spikes_per_image_exact"] = float(exact_counts.sum() / n)
    rec["count_mismatches_exact_vs_approx"] = int((exact_counts != ref).sum())
    for name, lib in _clients().items():
        t0 = time.time()
        if name == "snntorch":
            m = lib.import_nir.import_from_nir(g_snn)
            counts = _per_step(m, xc, False, reset=lib.utils.reset)
        else:
            m = lib.from_nir(g_norse, dt=g_norse.metadata["dt_s"])
            counts = _per_step(m, xc, True)
        rec[f"{name}_counts_equal_ours"] = bool(torch.equal(counts, ref))
        rec[f"{name}_count_mismatches"] = int((counts != ref).sum())
        rec[f"{name}_max_abs_count_diff"] = float((counts - ref).abs().max())
        rec[f"{name}_wall_s"] = round(time.time() - t0, 1)
    text = json.dumps(rec, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
