"""``spikeforge data download`` and ``spikeforge data check``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..data import download, mnist


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    default_dir = "$SPIKEFORGE_DATA, else ~/.cache/spikeforge/mnist"
    parser = subparsers.add_parser(
        "data",
        help="download and check the MNIST files",
        description="Download and check MNIST. Without --data-dir, experiments use a small subset "
        "shipped with spikeforge (3000 train / 1000 test examples); download the full "
        "set and pass --data-dir DIR (or set SPIKEFORGE_DATA=DIR) to use all of it.",
    )
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")

    dl = sub.add_parser(
        "download",
        help="download the four MNIST files and verify their md5",
        description="Download the four MNIST files (gzipped) from the first mirror that works, "
        "verify the md5 of each decompressed file, and skip files already present "
        "and valid.",
    )
    dl.add_argument(
        "--dir", dest="dir", default=None, metavar="DIR", help=f"destination directory (default: {default_dir})"
    )
    dl.add_argument(
        "--mirror",
        action="append",
        default=None,
        metavar="URL",
        help="base URL serving <URL>/<name>.gz; repeat to try several in order "
        f"(default: {', '.join(download.DEFAULT_MIRRORS)})",
    )
    dl.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="network timeout per request (default: 60)"
    )
    dl.set_defaults(func=run_download)

    ck = sub.add_parser(
        "check",
        help="read the four MNIST files, verify their md5 and print the counts",
        description="Read the four MNIST files, verify the md5 of each decompressed file and print "
        "the number of images and labels per split.",
    )
    ck.add_argument(
        "--data-dir", default=None, metavar="DIR", help=f"directory with the files (default: {default_dir})"
    )
    ck.set_defaults(func=run_check)


def run_download(args: argparse.Namespace) -> int:
    directory = Path(args.dir).expanduser() if args.dir else mnist.default_data_dir()
    paths = download.download_mnist(directory, args.mirror, timeout_s=args.timeout, log=print)
    print(f"MNIST is ready in {directory} ({len(paths)} files).")
    if not (os.environ.get(mnist.ENV_VAR) and mnist.default_data_dir() == directory):
        print(f"Use it with --data-dir {directory}, or export {mnist.ENV_VAR}={directory}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    directory = Path(args.data_dir).expanduser() if args.data_dir else mnist.default_data_dir()
    checks = download.check_mnist(directory)
    if all(c.path is None for c in checks):
        raise mnist._missing_files_error(
            directory, [c.name for c in checks], "from --data-dir" if args.data_dir else "default; see --help"
        )
    for c in checks:
        if c.ok:
            shape = " x ".join(map(str, c.shape or ()))
            print(f"ok       {c.name:26s} md5 {c.md5}  shape {shape}  ({c.path})")
        else:
            print(f"PROBLEM  {c.name:26s} {c.problem}" + (f"  ({c.path})" if c.path else ""))
    bad = [c for c in checks if not c.ok]
    if bad:
        print(
            f"{len(bad)} of {len(checks)} files have problems; fix them with "
            f"`spikeforge data download --dir {directory}`"
        )
        return 1
    for split in mnist.SPLITS:
        images, labels = mnist.load_mnist(directory, split)
        print(f"{split}: {images.shape[0]} images of {images.shape[1]}x{images.shape[2]}, {labels.shape[0]} labels")
    print(f"MNIST in {directory} is complete and valid.")
    return 0
