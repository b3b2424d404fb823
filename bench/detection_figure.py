"""The detection benchmark's figure: recall against false alerts per hour, per category.

Each panel shows, for one category with targets in the half, the curve the fitted rule draws as
its threshold sweeps (the rule's ``k`` and ``W`` fixed, replayed offline on the cached windows
of the same half with :func:`bench.fit_policy.evaluate`), the operating point the whole
pipeline reached in the run (agent -> Mosquitto -> aggregator), and the naive app (one YAMNet
window >= 0.5) in the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from bench.corpus.manifest import corpus_dir, events, read_manifest
from bench.corpus.windows import YamnetScorer, load_all
from bench.fit_policy import THRESHOLDS, Rule, evaluate, evidence
from services.aggregator.policy import load_policy

__all__ = ["draw"]


def draw(path: Path, half: str, figures: dict[str, Any], *, policy_file: Path | None = None
         ) -> None:  # fmt: skip
    corpus = corpus_dir()
    assert corpus is not None
    policy = load_policy(policy_file)
    clips = [e for e in events(read_manifest()) if e.half == half]
    items = evidence(clips, load_all(clips, corpus, YamnetScorer()), policy)
    hours = float(figures["hours"])
    table: dict[str, dict[str, Any]] = figures["categories"]
    shown = [c for c, row in table.items() if row["targets"]]
    columns = min(3, len(shown)) or 1
    rows = (len(shown) + columns - 1) // columns or 1
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, category in zip(axes.flat, shown, strict=False):
        row = table[category]
        cat = policy.categories[category]
        confirm = cat.confirm
        if confirm.mean_score is not None and category in items[0].scores:
            xs, ys = [], []
            for t in THRESHOLDS:
                outcome = evaluate(items, category, cat, Rule(confirm.windows, confirm.within_s, t))
                xs.append(outcome.false / hours)
                ys.append(outcome.recall or 0.0)
            ax.plot(xs, ys, "-", color="#888888", lw=1.2,
                    label=f"fitted rule, threshold swept (k={confirm.windows}, "
                    f"W={confirm.within_s:g} s)")  # fmt: skip
        ax.plot([row["false_per_hour"]], [row["recall"] or 0.0], "o", color="#d00000", ms=8,
                label=f"operating point: {row['recall'] or 0:.0%}, "
                f"{row['false_per_hour']:.1f}/h")  # fmt: skip
        ax.plot([row["baseline_false_per_hour"]], [row["baseline_recall"] or 0.0], "s",
                color="#1f4e9c", ms=7,
                label=f"naive app: {row['baseline_recall'] or 0:.0%}, "
                f"{row['baseline_false_per_hour']:.1f}/h")  # fmt: skip
        ax.set_title(f"{category} ({row['targets']} events)", fontsize=10)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("false alerts per hour", fontsize=8)
        ax.set_ylabel("recall", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right")
    fig.suptitle(f"Detection on the corpus's {half} half ({hours:.2f} h of stream): the pipeline "
                 f"{figures['false_per_hour_all']:.1f} false/h, the naive app "
                 f"{figures['baseline_false_per_hour_all']:.1f} false/h", fontsize=10)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
