"""The detection benchmark's figure: recall against false alerts per hour, per category and model.

Each panel shows, for one category with targets in the half and for each agent model run, the
curve its rule draws as its threshold sweeps (the rule's ``k`` and ``W`` fixed, replayed offline
on the cached windows of the same half by :mod:`bench.model_compare`), the operating point the
whole pipeline reached in the run (agent -> Mosquitto -> aggregator), and the naive app (one
window >= 0.5 on a category label) in the same run. False alerts are per hour of the stream, as
the pipeline's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from bench.model_compare import EqualFalse

__all__ = ["draw"]

COLOURS = {"yamnet": "#1f4e9c", "mn04": "#d00000", "both": "#2e8b2e"}


def draw(path: Path, half: str, figures: dict[str, dict[str, Any]],
         policies: dict[str, Path | None], equal: dict[str, dict[str, EqualFalse]],
         ) -> None:  # fmt: skip
    """``figures``: each model's report; ``equal``: each model's swept curves."""
    models = list(figures)
    first = figures[models[0]]
    hours = float(first["hours"])
    shown = sorted({c for f in figures.values() for c, row in f["categories"].items()
                    if row["targets"]})  # fmt: skip
    columns = min(3, len(shown)) or 1
    rows = (len(shown) + columns - 1) // columns or 1
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.7 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, category in zip(axes.flat, shown, strict=False):
        targets = 0
        for model in models:
            colour = COLOURS.get(model, "#555555")
            row = figures[model]["categories"].get(category)
            if row is None:
                continue
            targets = row["targets"]
            swept = equal.get(model, {}).get(category)
            if swept is not None:
                ax.plot([o.false / hours for _, o in swept.curve],
                        [o.recall or 0.0 for _, o in swept.curve], "-", color=colour, lw=1.1,
                        alpha=0.6, label=f"{model}: threshold swept (k={swept.rule.k}, "
                        f"W={swept.rule.within_s:g} s)")  # fmt: skip
            ax.plot([row["false_per_hour"]], [row["recall"] or 0.0], "o", color=colour, ms=8,
                    label=f"{model} pipeline: {row['recall'] or 0:.0%}, "
                    f"{row['false_per_hour']:.1f}/h")  # fmt: skip
            ax.plot([row["baseline_false_per_hour"]], [row["baseline_recall"] or 0.0], "s",
                    color=colour, ms=6, mfc="none",
                    label=f"{model} naive app: {row['baseline_recall'] or 0:.0%}, "
                    f"{row['baseline_false_per_hour']:.1f}/h")  # fmt: skip
        ax.set_title(f"{category} ({targets} events)", fontsize=10)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("false alerts per hour of stream", fontsize=8)
        ax.set_ylabel("recall", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=5.5, loc="lower right")
    summary = ", ".join(f"{m} {figures[m]['false_per_hour_all']:.1f} false/h" for m in models)
    fixed = {str(p) for p in policies.values() if p is not None}
    fig.suptitle(f"Detection on the corpus's {half} half ({hours:.2f} h of stream), "
                 f"pipeline: {summary}" + (" (one policy)" if len(fixed) == 1 and
                                           len(models) > 1 and None not in policies.values()
                                           else ""), fontsize=10)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
