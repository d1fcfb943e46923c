#!/usr/bin/env python3
"""Build the MNIST subset shipped in the package (src/spikeforge/data/embedded/mnist_subset.npz).

It holds the first 3,000 training and the first 1,000 test examples of the official MNIST files,
in file order, so that every spikeforge command runs offline out of the box. The source files are
checked against the official MD5s before anything is written.

    python scripts/make_embedded_mnist.py [--source DIR] [--out FILE] [--n-train 3000] [--n-test 1000]

Keys in the .npz: train_images uint8 [n,28,28], train_labels uint8 [n], test_images, test_labels,
and `source` (a text note naming the files and their MD5s). Load it with
`spikeforge.data.load_embedded(split)`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from spikeforge.data import MNIST_FILES, MNIST_MD5, check_mnist, load_mnist  # noqa: E402
from spikeforge.io.checkpoint import atomic_writer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO.parent / "shared" / "data" / "mnist",
        help="directory with the four MNIST files (default: ../shared/data/mnist)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "src" / "spikeforge" / "data" / "embedded" / "mnist_subset.npz"
    )
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=1000)
    args = parser.parse_args(argv)

    bad = [c for c in check_mnist(args.source) if not c.ok]
    if bad:
        for c in bad:
            print(f"{c.name}: {c.problem}", file=sys.stderr)
        return 1
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", args.n_train), ("test", args.n_test)):
        images, labels = load_mnist(args.source, split, limit=n)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
    note = "; ".join(f"{name} md5 {MNIST_MD5[name]}" for pair in MNIST_FILES.values() for name in pair)
    arrays["source"] = np.array(
        f"first {args.n_train} train / {args.n_test} test examples of MNIST "
        f"(LeCun, Cortes, Burges; CC BY-SA 3.0) from {note}"
    )
    with atomic_writer(args.out, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
