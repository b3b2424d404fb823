"""Class map and the top-k rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.agent.labels import LabelMap, top_labels
from edge.agent.model import DEFAULT_CLASS_MAP


def test_shipped_class_map_has_the_521_audioset_names() -> None:
    names = LabelMap.from_csv(DEFAULT_CLASS_MAP)
    assert len(names) == 521
    assert names.names[393] == "Smoke detector, smoke alarm"
    assert names.index("Knock") == 353


def test_top_k_is_best_first_ties_by_index_and_floored() -> None:
    names = LabelMap(("a", "b", "c", "d"))
    scores = np.array([0.2, 0.9, 0.2, 0.01], dtype=np.float32)
    assert top_labels(scores, names, 3, 0.05) == [("b", 0.9), ("a", 0.2), ("c", 0.2)]
    assert top_labels(scores, names, 10, 0.05) == [("b", 0.9), ("a", 0.2), ("c", 0.2)]
    assert top_labels(scores, names, 1, 0.95) == []


def test_scores_outside_0_1_are_clipped_and_nan_is_zero() -> None:
    names = LabelMap(("a", "b"))
    scores = np.array([1.5, np.nan], dtype=np.float32)
    assert top_labels(scores, names, 2, 0.0) == [("a", 1.0), ("b", 0.0)]


def test_wrong_score_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected 2 scores"):
        top_labels(np.zeros(3, dtype=np.float32), LabelMap(("a", "b")), 1, 0.0)


def test_a_bad_class_map_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "map.csv"
    bad.write_text("index,name\n0,a\n")
    with pytest.raises(ValueError, match="display_name"):
        LabelMap.from_csv(bad)
