"""``spikeforge diehl-cook run --seeds 0-4 --jobs 2 --out OUT``: one run per seed, each its own
process and run directory ``OUT/seed-K``, then ``OUT/summary.json`` and ``OUT/summary.md``
(:mod:`spikeforge.experiments.multiseed`)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..config import ConfigError
from ..experiments.diehl_cook_config import SPEC, DiehlCookExperimentConfig
from ..experiments.multiseed import SeedJob, check_out, run_seeds, seed_dir, summary_markdown, write_summary
from ..experiments.scaffold import RunDir, flag_values, resolve_config
from ..sweep.targets import TARGETS

#: results of each seed listed in the summary beside the accuracy
SUMMARY_KEYS = ("train_mean_attempts", "train_seconds")


def child_args(args: argparse.Namespace, flags) -> list[str]:
    """The command-line arguments of one seed's run: every setting given, but ``--out``,
    ``--seed(s)`` and ``--jobs`` (the sweep's target adds ``--out``, ``--seed`` and ``--quiet``)."""
    argv: list[str] = []
    for f in flags:
        value = getattr(args, f.dest, None)
        if value is not None:
            argv += [f.flag, str(value)]
    if args.config:
        argv += ["--config", args.config]
    for text in args.set or []:
        argv += ["--set", text]
    for name in ("threads", "device"):
        if getattr(args, name, None) is not None:
            argv += [f"--{name}", str(getattr(args, name))]
    if args.fresh:
        argv.append("--fresh")
    if not getattr(args, "plot", True):
        argv.append("--no-plot")
    return argv


def _finished(run_dir: Path, cfg) -> bool:
    """Whether ``run_dir`` holds a tested run of exactly ``cfg``."""
    try:
        res = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(res, dict) and res.get("accuracy") is not None and res.get("config") == cfg.to_dict()


def run_seeds_command(args: argparse.Namespace, flags) -> int:
    if args.seed is not None:
        raise ConfigError(
            f"--seed {args.seed} and --seeds {','.join(map(str, args.seeds))} both given: use --seed for one "
            "run, --seeds for one run per seed"
        )
    if args.show_config:
        raise ConfigError("--show-config shows one run's config: give --seed K instead of --seeds")
    out = Path(args.out)
    check_out(out)
    passthrough = child_args(args, flags)
    jobs: list[SeedJob] = []
    cfg: DiehlCookExperimentConfig | None = None
    for seed in args.seeds:
        run_dir = seed_dir(out, seed)
        saved = None if args.fresh else RunDir(run_dir, SPEC).saved()
        values = flag_values(SPEC, args, flags) | {"run.seed": seed}
        # resolved here as the seed's run will resolve it: a bad setting fails before any seed runs
        resolved = resolve_config(SPEC, saved=saved, config_file=args.config, sets=args.set or [], values=values)
        assert isinstance(resolved, DiehlCookExperimentConfig)
        cfg = resolved
        command = TARGETS["diehl-cook"].command(run_dir, seed, {}, passthrough)
        jobs.append(SeedJob(seed, run_dir, command, finished=not args.fresh and _finished(run_dir, cfg)))
    assert cfg is not None
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"spikeforge: {msg}", file=sys.stderr, flush=True))
    outcomes = run_seeds(jobs, args.jobs, say)
    info = {
        "experiment": SPEC.name,
        "neurons": cfg.model.network.n_neurons,
        "profile": cfg.run.profile,
        "command": shlex.join(["spikeforge", "diehl-cook", "run", "--out", str(out), *passthrough])
        + f" --seeds {','.join(map(str, args.seeds))}",
    }
    summary = write_summary(out, outcomes, "accuracy", SUMMARY_KEYS, info)
    print(summary_markdown(summary, SUMMARY_KEYS), end="")
    print(f"summary: {out / 'summary.json'}, {out / 'summary.md'}")
    return 1 if summary["failed"] else 0
