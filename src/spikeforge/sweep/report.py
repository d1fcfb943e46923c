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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    keys = sorted({k for r in rs for k in r["params"]})
    done = [r for r in rs if r["mean"] is not None]
    for key in keys:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        xs = [r["params"].get(key) for r in done]
        numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
        cats = sorted({str(x) for x in xs}) if not numeric else None
        for r in done:
            x = r["params"].get(key)
            xpos = cats.index(str(x)) if cats else x
            seeds = list(r["values"].values())
            ax.scatter([xpos] * len(seeds), seeds, s=12, color="0.6", zorder=2)
            ax.errorbar([xpos], [r["mean"]], yerr=[r["std"] or 0.0], fmt="o", color="C0", capsize=3, zorder=3)
        if cats:
            ax.set_xticks(range(len(cats)), cats, rotation=30 if len(cats) > 4 else 0)
        elif xs and min(xs) > 0 and max(xs) / min(xs) > 50:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.set_title(
            f"{study.study_name}: {metric} against {key}\n(mean ± std over seeds; grey: each seed)", fontsize=9
        )
        fig.tight_layout()
        p = out / f"{study.study_name}_{key.replace('.', '_')}.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
    # optimisation history
    finished = sorted(
        (t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"), key=lambda t: t.number
    )
    if finished:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        nums, vals = [t.number for t in finished], [t.value for t in finished]
        best, sign = [], 1 if study.direction.name == "MAXIMIZE" else -1
        for v in vals:
            best.append(v if not best else (max if sign > 0 else min)(best[-1], v))
        ax.plot(nums, vals, "o", ms=4, label="trial")
        ax.step(nums, best, where="post", color="C1", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
        ax.set_title(f"{study.study_name}: optimisation history", fontsize=9)
        fig.tight_layout()
        p = out / f"{study.study_name}_history.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
    # importances
    imp = importances(study)
    if imp:
        fig, ax = plt.subplots(figsize=(5, 0.5 + 0.4 * len(imp)))
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names])
        ax.set_xlabel("importance (fANOVA, normalised)")
        ax.set_title(f"{study.study_name}: parameter importances", fontsize=9)
        fig.tight_layout()
        p = out / f"{study.study_name}_importance.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
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
