"""Label handling: the class map and the top-k rule. Pure; easy to mirror in a browser agent.

Labels travel under the model's own names (AudioSet display names for YAMNet); mapping them to
categories is the aggregator's policy, never the node's. A window reports its ``top_k`` labels
scoring at least ``min_score``, highest first (ties by class index), with scores rounded to
:data:`SCORE_DECIMALS` decimals.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["SCORE_DECIMALS", "LabelMap", "top_labels"]

SCORE_DECIMALS: Final = 4


@dataclass(frozen=True)
class LabelMap:
    """Class index -> display name, from a ``index,mid,display_name`` CSV."""

    names: tuple[str, ...]

    @classmethod
    def from_csv(cls, path: Path) -> LabelMap:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "display_name" not in rows[0]:
            raise ValueError(f"{path}: expected a CSV with columns index,mid,display_name")
        names = [""] * len(rows)
        for row in rows:
            index = int(row["index"])
            if not 0 <= index < len(rows):
                raise ValueError(f"{path}: class index {index} out of range")
            names[index] = row["display_name"].strip()
        if any(not name for name in names):
            raise ValueError(f"{path}: missing or empty class names")
        return cls(tuple(names))

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)


def top_labels(
    scores: npt.NDArray[np.float32], names: LabelMap, k: int, min_score: float
) -> list[tuple[str, float]]:
    """The ``k`` best ``(label, score)`` pairs with ``score >= min_score``, best first."""
    if scores.shape != (len(names),):
        raise ValueError(f"expected {len(names)} scores, got shape {scores.shape}")
    clipped = np.clip(np.nan_to_num(scores.astype(np.float64), nan=0.0), 0.0, 1.0)
    order = np.lexsort((np.arange(clipped.size), -clipped))[:k]
    out: list[tuple[str, float]] = []
    for i in order.tolist():
        score = round(float(clipped[i]), SCORE_DECIMALS)
        if score < min_score:
            break
        out.append((names.names[i], score))
    return out
