"""Metrics that the Prometheus rules in ``deploy/prometheus/`` are built on (issue 6).

Per-node false-alarm ratios need feedback by the alert's location; ratios of rates need every
verdict's series to exist (at zero) before the first review; alert rates per site need the site.
"""

from __future__ import annotations

from schemas.messages import Feedback
from services.aggregator.core import Aggregator
from tests.aggregator.factories import T0, event, make_aggregator, status

NOW = T0.timestamp() + 5.0
GLASS = "Glass"  # glass_break confirms on one window in the shipped policy


def _sample(agg: Aggregator, name: str, **labels: str) -> float | None:
    return agg.metrics.registry.get_sample_value(name, labels)


def test_policy_categories_start_at_zero() -> None:
    agg = make_aggregator()
    assert _sample(agg, "soundalert_alerts_total", category="smoke_alarm", priority="critical") == 0
    assert _sample(agg, "soundalert_detection_latency_seconds_count", category="glass_break") == 0


def test_feedback_counts_by_the_alerts_location_and_series_start_at_zero() -> None:
    agg = make_aggregator()
    agg.handle_status(status(at=NOW, node="hall"), NOW)
    by_node = "soundalert_alert_feedback_by_node_total"
    for verdict in ("acknowledged", "confirmed", "false_alarm"):
        labels = {"site": "home", "node": "hall", "category": "glass_break", "verdict": verdict}
        assert _sample(agg, by_node, **labels) == 0, verdict
        assert (
            _sample(agg, "soundalert_alert_feedback_total", category="glass_break", verdict=verdict)
            == 0
        )

    [alert] = agg.handle_event(event(0, label=GLASS, score=0.9, node="hall"), NOW)
    assert alert.location == "hall"
    feedback = Feedback(alert_id=alert.alert_id, verdict="false_alarm", by="anna", at=T0)
    agg.handle_feedback(feedback, "home", NOW + 1)
    agg.handle_feedback(feedback, "home", NOW + 2)  # the same feedback again: not counted
    false_alarm = {
        "site": "home",
        "node": "hall",
        "category": "glass_break",
        "verdict": "false_alarm",
    }
    assert _sample(agg, by_node, **false_alarm) == 1
    assert _sample(agg, by_node, **{**false_alarm, "node": "kitchen"}) is None


def test_state_changes_carry_the_site() -> None:
    agg = make_aggregator()
    agg.handle_event(event(0, label=GLASS, score=0.9, site="flat"), NOW)
    assert (
        _sample(
            agg,
            "soundalert_alert_state_changes_total",
            site="flat",
            category="glass_break",
            state="raised",
        )
        == 1
    )
