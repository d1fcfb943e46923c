"""Run every bad input of the reliability list and print what spikeforge answers, as the Markdown
table of docs/reliability.md (each case also has a test in tests/test_reliability.py,
tests/test_scaffold.py, tests/test_data.py or tests/test_checkpoint.py).

    python scripts/bad_inputs.py > /tmp/table.md
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

TINY = "--neurons 5 --train-examples 12 --label-examples 10 --test-examples 10 --quiet --checkpoint-every 5".split()
TINY += ["--set", "model.protocol.example_ms=60", "--set", "model.protocol.rest_ms=20"]


def answer(argv: list[str]) -> str:
    from spikeforge.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code
    lines = [line for line in err.getvalue().splitlines() if line.strip() and not line.startswith("usage")]
    text = " ".join(line.strip() for line in lines if not line.startswith(" " * 10)) or "(no message)"
    return f"exit {code}: {text}"


def main() -> int:
    from spikeforge.io import load_checkpoint, save_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="spikeforge-bad-"))
    run = tmp / "run"
    answer(["diehl-cook", "run", "--out", str(run), "--no-plot", *TINY])

    def fresh_copy(name: str) -> Path:
        d = tmp / name
        shutil.copytree(run, d)
        return d

    def edited(name: str, **changes) -> Path:
        d = fresh_copy(name)
        arrays, meta = load_checkpoint(d / "checkpoint")
        for k, v in changes.items():
            meta["progress"].pop(k) if v is None else meta["progress"].__setitem__(k, v)
        for p in d.glob("checkpoint*.safetensors"):
            p.unlink()
        save_checkpoint(d / "checkpoint", arrays, meta)
        return d

    a_file = tmp / "a_file"
    a_file.write_text("x")
    labels_dir = tmp / "mixed"
    labels_dir.mkdir()
    from spikeforge.data import load_embedded, write_idx

    images, _ = load_embedded("train", 12)
    _, test_labels = load_embedded("test", 7)
    write_idx(labels_dir / "train-images-idx3-ubyte", images)
    write_idx(labels_dir / "train-labels-idx1-ubyte", test_labels)
    cfg_model5 = tmp / "model5.toml"
    cfg_model5.write_text("model = 5\n")
    no_record = fresh_copy("no-record")
    (no_record / "config.json").write_text('{"experiment": "diehl-cook", "config": {')
    deleted = fresh_copy("deleted")
    for p in deleted.glob("checkpoint*.safetensors"):
        p.unlink()

    dc = ["diehl-cook", "train", "--out"]
    new = str(tmp / "new")
    cases = [
        ("a network too large for the memory", [*dc, new, "--neurons", "1000000000"]),
        ("`--device cuda` without a GPU", [*dc, new, *TINY, "--engine", "torch", "--device", "cuda"]),
        ("a nonsense device", [*dc, new, *TINY, "--engine", "torch", "--device", "banana"]),
        ("`--device` with the compiled engine", [*dc, new, *TINY, "--device", "cuda"]),
        ("`--batch-size` with the compiled engine", [*dc, new, *TINY, "--batch-size", "4"]),
        ("`--out` that is a file", [*dc, str(a_file), *TINY]),
        ("`--out` under a file", [*dc, str(a_file / "run"), *TINY]),
        ("a TOML `model = 5`", [*dc, new, "--config", str(cfg_model5)]),
        ("`--config DIR`", [*dc, new, "--config", str(tmp)]),
        ("`--set modle.exc.refractory_ms=50` (typo, first part)", [*dc, new, "--set", "modle.exc.refractory_ms=50"]),
        ("`--set model.exc.refractory=50` (typo in the last part)", [*dc, new, "--set", "model.exc.refractory=50"]),
        ("a threshold below rest", [*dc, new, *TINY, "--set", "model.exc.v_thresh_mv=-70"]),
        (
            "event-STDP threshold below rest",
            ["event-stdp", "run", "--out", new, "--set", "layer.excitatory.v_thresh_mv=-1"],
        ),
        ("`--train-examples 0`", [*dc, new, "--train-examples", "0"]),
        ("`--epochs 0`", [*dc, new, "--epochs", "0"]),
        ("`--data-dir FILE`", [*dc, new, *TINY, "--data-dir", str(a_file)]),
        ("test labels given as training labels", [*dc, new, *TINY, "--data-dir", str(labels_dir)]),
        ("`--seed 1` on a seed-0 run", [*dc, str(fresh_copy("seed")), "--seed", "1"]),
        ("more `--train-examples` on a trained run", [*dc, str(fresh_copy("more")), "--train-examples", "24"]),
        ("`--engine torch` on a compiled-engine run", [*dc, str(fresh_copy("engine")), "--engine", "torch"]),
        ("`--data-dir` other than the run's", [*dc, str(fresh_copy("data")), "--data-dir", "embedded"]),
        ("fewer `--epochs` than trained", ["diehl-cook", "test", "--out", str(fresh_copy("fewer")), "--epochs", "1"]),
        (
            "`test` with `--epochs` not yet trained",
            ["diehl-cook", "test", "--out", str(fresh_copy("untrained")), "--epochs", "2"],
        ),
        (
            "`test` with labels of another count",
            ["diehl-cook", "test", "--out", str(fresh_copy("labels")), "--label-examples", "8"],
        ),
        (
            "`test` with labels of an earlier network",
            ["diehl-cook", "test", "--out", str(fresh_copy("stale")), "--epochs", "2"],
        ),
        ("a deleted checkpoint", [*dc, str(deleted)]),
        ("checkpoint: index past the end", [*dc, str(edited("index", index=999)), "--epochs", "2"]),
        ("checkpoint: a missing field", [*dc, str(edited("missing", examples_seen=None)), "--epochs", "2"]),
        ("checkpoint: a non-numeric field", [*dc, str(edited("nonnum", epoch="one")), "--epochs", "2"]),
        ("a corrupted config.json", ["diehl-cook", "test", "--out", str(no_record)]),
        ("`tha evaluate` on a Diehl & Cook checkpoint", ["tha", "evaluate", str(run / "checkpoint")]),
    ]
    # "fewer --epochs": train a second epoch first
    fewer = tmp / "fewer"
    answer(["diehl-cook", "train", "--out", str(fewer), "--epochs", "2", "--quiet"])
    answer(["diehl-cook", "train", "--out", str(tmp / "stale"), "--epochs", "2", "--quiet"])  # labels now stale
    print("| bad input | answer |")
    print("|---|---|")
    for what, argv in cases:
        text = answer(argv).replace(str(tmp), "TMP").replace("|", "\\|")
        print(f"| {what} | {text} |")
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"cases": len(cases)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
