"""``spikeforge sweep report``: the table and figures of a study.

One row per configuration (the latest finished trial of it): the swept values, the mean and
standard deviation of the metric over seeds, each seed's value, and the run directories. Written
as CSV and Markdown, with figures: the metric against each swept parameter, parameter importances
(optuna's fANOVA, when there are enough finished trials) and the optimisation history.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .study import _optuna


def rows(study) -> list[dict[str, Any]]:
    latest: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.name not in ("COMPLETE", "PRUNED") or "duplicate_of" in t.user_attrs:
            continue
        cid = t.user_attrs.get("config_id")
        prev = latest.get(cid)
        if prev is None or (t.state.name == "COMPLETE" and (prev.state.name != "COMPLETE" or t.number > prev.number)):
            latest[cid] = t
    out = []
    for cid, t in latest.items():
        values = t.user_attrs.get("values", {})
        out.append(
            {
                "config_id": cid,
                "trial": t.number,
                "state": t.state.name.lower(),
                "params": t.user_attrs.get("params", t.params),
                "mean": t.value if t.state.name == "COMPLETE" else None,
                "std": t.user_attrs.get("std") if t.state.name == "COMPLETE" else None,
                "values": values,
                "run_dirs": t.user_attrs.get("run_dirs", {}),
            }
        )
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        text = f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text
    return str(v)


def table(study, metric: str) -> tuple[str, str, list[dict[str, Any]]]:
    """(csv text, markdown text, rows) for ``study``; rows sorted by the swept values."""
    rs = rows(study)
    if not rs:
        raise ConfigError(f"study '{study.study_name}' has no finished trials yet; run the sweep first")
    keys = sorted({k for r in rs for k in r["params"]})
    seeds = sorted({s for r in rs for s in r["values"]}, key=lambda s: (len(s), s))
    rs.sort(key=lambda r: tuple(str(r["params"].get(k)) for k in keys))
    header = keys + [f"{metric} mean", f"{metric} std", "seeds"] + [f"seed {s}" for s in seeds] + ["state", "run dirs"]
    lines = []
    for r in rs:
        dirs = sorted(set(Path(d).parent.as_posix() for d in r["run_dirs"].values()))
        lines.append(
            [_fmt(r["params"].get(k)) for k in keys]
            + [_fmt(r["mean"]), _fmt(r["std"]), str(len(r["values"]))]
            + [_fmt(r["values"].get(s)) for s in seeds]
            + [r["state"], " ".join(dirs)]
        )
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(lines)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines]
    return buf.getvalue(), "\n".join(md) + "\n", rs


def figures(study, rs: list[dict[str, Any]], metric: str, out: Path) -> list[Path]:
    from ..plotting.sweep import plot_history, plot_importances, plot_metric_vs_param

    name = study.study_name
    done = [r for r in rs if r["mean"] is not None]
    paths = [
        plot_metric_vs_param(
            done,
            key,
            metric,
            f"{name}: {metric} against {key}\n(mean ± std over seeds; grey: each seed)",
            out / f"{name}_{key.replace('.', '_')}.png",
        )
        for key in sorted({k for r in rs for k in r["params"]})
    ]
    finished = sorted(
        (t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"), key=lambda t: t.number
    )
    if finished:
        paths.append(
            plot_history(
                [t.number for t in finished],
                [t.value for t in finished],
                study.direction.name == "MAXIMIZE",
                metric,
                f"{name}: optimisation history",
                out / f"{name}_history.png",
            )
        )
    imp = importances(study)
    if imp:
        paths.append(plot_importances(imp, f"{name}: parameter importances", out / f"{name}_importance.png"))
    return paths


def importances(study) -> dict[str, float]:
    optuna = _optuna()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.params]
    varying = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
    if len(complete) < 3 or not varying:
        return {}
    try:
        imp = optuna.importance.get_param_importances(study, params=sorted(varying))
    except Exception:  # too few or degenerate trials: the table still stands
        return {}
    return {k: float(v) for k, v in imp.items() if not math.isnan(v)}


def write_report(study, metric: str, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    csv_text, md_text, rs = table(study, metric)
    from ..io import atomic_write_text

    csv_path, md_path = out / f"{study.study_name}.csv", out / f"{study.study_name}.md"
    atomic_write_text(csv_path, csv_text)
    atomic_write_text(md_path, md_text)
    figs = figures(study, rs, metric, out)
    return {"csv": csv_path, "markdown": md_path, "figures": figs, "rows": rs, "table": md_text}
