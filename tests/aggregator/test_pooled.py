"""Pooled confirmation (the fitted rule) and the operating points file the policy names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.messages import Alert
from services.aggregator.confirm import pooled_score
from services.aggregator.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from tests.aggregator.factories import T0, event, make_aggregator
from tests.support.policy import quick_policy

NOW = T0.timestamp() + 5.0
SCORES = [0.2, 0.9, 0.1, 0.7, 0.3, 0.8, 0.05, 0.6]


def _pooled_policy() -> Policy:
    raw = quick_policy().model_dump()
    raw["categories"]["doorbell"]["labels"]["yamnet"]["Doorbell"]["threshold"] = 0.1
    raw["categories"]["doorbell"]["confirm"] = {"windows": 3, "within_s": 2.0, "mean_score": 0.7}
    return Policy.model_validate(raw)


def _alerts(order: list[int], duplicates: list[int]) -> list[Alert]:
    agg = make_aggregator(policy=_pooled_policy())
    out: list[Alert] = []
    for i in [*order, *duplicates]:
        out += agg.handle_event(event(i, label="Doorbell", score=SCORES[i]), NOW)
    return [a for a in out if a.category == "doorbell"]


def test_pooled_score_is_the_mean_of_the_best_k_missing_ones_zero() -> None:
    assert pooled_score([0.2, 0.9, 0.7], 2) == pytest.approx(0.8)
    assert pooled_score([0.9], 3) == pytest.approx(0.3)


def test_the_best_three_windows_within_two_seconds_confirm() -> None:
    """0.9, 0.7 and 0.8 (windows 1, 3, 5, within 2 s of event time) average 0.8: confirmed on
    window 5, not earlier (windows 1 and 3 alone average 0.53 over three)."""
    [alert] = [a for a in _alerts(list(range(8)), []) if a.state == "raised"]
    assert alert.evidence == [event(i).event_id for i in range(1, 6)]


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(list(range(8))), duplicates=st.lists(st.integers(0, 7), max_size=8))
def test_pooled_confirmation_is_order_independent_and_idempotent(
    order: list[int], duplicates: list[int]
) -> None:
    reference = _alerts(list(range(8)), [])
    got = _alerts(order, duplicates)
    assert len({a.alert_id for a in got}) == 1, "one sound, one alert"
    assert [a.state for a in got].count("raised") == 1
    last, ref = got[-1], reference[-1]
    assert (last.first_evidence_at, last.raised_at, last.evidence, last.confidence) == (
        ref.first_evidence_at, ref.raised_at, ref.evidence, ref.confidence)  # fmt: skip


def _write(tmp_path: Path, points: dict[str, Any]) -> Path:
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw["operating_points"] = "points.yaml"
    (tmp_path / "points.yaml").write_text(yaml.safe_dump(points), encoding="utf-8")
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return policy


def _points(category: str, label: str) -> dict[str, Any]:
    return {"version": 1, "fitted_by": "test", "categories": {category: {
        "labels": {"yamnet": {label: 0.2}},
        "confirm": {"windows": 2, "within_s": 2.0, "mean_score": 0.4}}}}  # fmt: skip


def test_operating_points_replace_thresholds_and_rules_and_keep_the_wait(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, _points("alarm_beep", "Alarm clock")))
    cat = policy.categories["alarm_beep"]
    assert cat.labels["yamnet"]["Alarm clock"].threshold == 0.2
    assert cat.labels["yamnet"]["Alarm"].threshold == 0.6  # not fitted: as written
    assert (cat.confirm.windows, cat.confirm.within_s, cat.confirm.mean_score) == (2, 2.0, 0.4)
    written = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    # the policy's own wait for a pattern detector, kept
    assert cat.confirm.defer_s == written["categories"]["alarm_beep"]["confirm"]["defer_s"]


@pytest.mark.parametrize(
    ("category", "label", "message"),
    [("lawnmower", "Lawn mower", "category 'lawnmower' is not in the policy"),
     ("doorbell", "Music", "doorbell has no yamnet label 'Music' in the policy")],
)  # fmt: skip
def test_operating_points_only_fit_what_the_policy_names(
    tmp_path: Path, category: str, label: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_policy(_write(tmp_path, _points(category, label)))


def test_the_shipped_policy_carries_its_fitted_points() -> None:
    """Fitted where the tuning half has targets; patterns and categories without tuning
    targets keep their written rules."""
    policy = load_policy()
    fitted = {n for n, c in policy.categories.items() if c.confirm.mean_score is not None}
    points = yaml.safe_load((DEFAULT_POLICY_PATH.parent / "operating_points.yaml").read_text())
    assert "glass_break" in fitted  # the one category with >= 10 tuning targets today
    assert fitted == set(points["categories"])
    assert not fitted & set(points["procedure"]["not_fitted"])
    assert not fitted & {"smoke_alarm", "co_alarm", "possible_smoke_alarm", "doorbell"}
