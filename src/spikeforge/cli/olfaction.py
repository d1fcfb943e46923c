"""``spikeforge olfaction {run,table}``: hybrid DECOLLE + STDP SNNs and Wang's ANN on the synthetic
odor task (Wang et al. 2021; vgp23/olfactory_network).

A thin command layer over :mod:`spikeforge.experiments.olfaction`: defaults from
``configs/olfaction.toml``, then ``--config FILE`` (merged section by section), then ``--set
section.key=value``, then the flags. It uses only ``spikeforge.config`` (``load_toml``,
``apply_overrides``) and ``io.checkpoint`` so it can move onto the shared experiment scaffold.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from ..config import apply_overrides, load_toml
from .argtypes import positive_int as _positive_int
from .argtypes import whole as _int


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(args, **run_fields):
    from ..experiments.olfaction import OlfactionConfig

    with resources.as_file(resources.files("spikeforge.configs") / "olfaction.toml") as path:
        data = load_toml(path)
    if getattr(args, "config", None):
        data = _merge(data, load_toml(args.config))
    data = apply_overrides(data, list(getattr(args, "set", []) or []))
    run = data.setdefault("run", {})
    for flag in ("preset", "kc", "mode", "epochs", "ann_epochs", "seed", "threads", "train_limit"):
        value = run_fields.get(flag, getattr(args, flag, None))
        if value is not None:
            run[flag] = value
    return OlfactionConfig.from_dict(data)


def _common(p) -> None:
    p.add_argument("--preset", choices=("small", "medium", "wang2021"), help="data preset (default small)")
    p.add_argument("--config", help="TOML file merged over configs/olfaction.toml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set model.stdp.a_plus=1e-4 (repeatable)",
    )
    p.add_argument("--epochs", type=_positive_int, help="epochs of the spiking modes (default 30)")
    p.add_argument("--ann-epochs", type=_positive_int, help="epochs of mode ann (default 100)")
    p.add_argument("--train-limit", type=_int, help="use the first N training samples (0 = all)")
    p.add_argument("--seed", type=_int)
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads (default 1)")
    p.add_argument("--fresh", action="store_true", help="delete an existing run directory first")
    p.add_argument("--no-plot", action="store_true")


def add_parser(subparsers) -> None:
    top = subparsers.add_parser(
        "olfaction",
        help="DECOLLE / hybrid STDP SNNs and Wang's ANN on the synthetic olfaction task",
        description="Hybrid spiking networks (DECOLLE local learning, STDP blocks at any index) on the "
        "odor-classification task of Wang et al. (2021).",
    )
    sub = top.add_subparsers(dest="olfaction_command", metavar="STAGE")
    p = sub.add_parser("run", help="train one network; writes results.json, a checkpoint and plots")
    _common(p)
    p.add_argument("--kc", type=_positive_int, help="KC (expansion) layer size (default 2500)")
    p.add_argument("--mode", choices=("decolle", "hybrid", "ann"))
    p.add_argument("--out", help="run directory (default runs/olfaction-PRESET-kcN-MODE)")
    p.set_defaults(func=_run)
    t = sub.add_parser("table", help="the four KC sizes x three modes; writes table.md/json and a bar chart")
    _common(t)
    t.add_argument("--kc", type=_positive_int, nargs="+", help="KC sizes (default 50 500 2500 5000)")
    t.add_argument("--modes", nargs="+", choices=("decolle", "hybrid", "ann"), help="default: all three")
    t.add_argument("--out", help="directory of the runs and the table (default runs/olfaction-table-PRESET)")
    t.add_argument("--reuse", action="store_true", help="use finished runs in --out whatever their epoch count")
    t.set_defaults(func=_table)
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])


def _prepare(out: Path, fresh: bool) -> None:
    if fresh and out.exists():
        shutil.rmtree(out)


def _run(args) -> int:
    from ..experiments.olfaction import run_experiment

    cfg = build_config(args)
    r = cfg.run
    out = Path(args.out or f"runs/olfaction-{r.preset}-kc{r.kc}-{r.mode}")
    _prepare(out, args.fresh)
    res = run_experiment(cfg, out, plots=not args.no_plot, log=lambda s: print(s, flush=True))
    c = res["connectivity"]
    print(
        json.dumps(
            {
                "test_accuracy": res["test_accuracy"],
                "best_epoch": res["best_epoch"],
                "glo_score_orn": c.get("glo_score_orn"),
                "K_0.02": c.get("K_0.02"),
                "out": str(out),
            }
        )
    )
    return 0


def _table(args) -> int:
    from ..experiments.olfaction import KC_SIZES, MODES, run_experiment
    from ..experiments.olfaction_report import write_table

    preset = args.preset or "small"
    out = Path(args.out or f"runs/olfaction-table-{preset}")
    _prepare(out, args.fresh)
    rows = []
    for kc in args.kc or KC_SIZES:
        for mode in args.modes or MODES:
            cfg = build_config(args, preset=preset, kc=kc, mode=mode)
            run_dir = out / f"kc{kc}-{mode}"
            done = run_dir / "results.json"
            want = cfg.run.ann_epochs if mode == "ann" else cfg.run.epochs
            if done.is_file() and (args.reuse or json.loads(done.read_text()).get("epochs") == want):
                res = json.loads(done.read_text())
            else:
                print(f"--- {preset} KC = {kc} {mode} ---", flush=True)
                res = run_experiment(cfg, run_dir, plots=not args.no_plot, log=lambda s: print(s, flush=True))
            rows.append(res)
    print(write_table(rows, out, preset))
    return 0
