"""Metrics that the Prometheus rules in ``deploy/prometheus/`` are built on (issue 6).

Ratios of rates need every verdict's series to exist (at zero) before the first review; a
noisy node's false-alarm ratio comes from the aggregator itself; alert rates per site need the
site.
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


def test_feedback_counts_start_at_zero_and_noisy_nodes_get_a_ratio() -> None:
    agg = make_aggregator()
    agg.handle_status(status(at=NOW, node="hall"), NOW)
    for verdict in ("acknowledged", "confirmed", "false_alarm"):
        assert (
            _sample(agg, "soundalert_alert_feedback_total", category="glass_break", verdict=verdict)
            == 0
        )
    ratio = "soundalert_node_false_alarm_ratio"
    # Five doorbells located at the hall, three of them false alarms; two at the kitchen.
    for i, (node, verdict) in enumerate([("hall", "false_alarm"), ("hall", "false_alarm"),
                                         ("hall", "acknowledged"), ("hall", "false_alarm"),
                                         ("hall", "acknowledged"), ("kitchen", "false_alarm"),
                                         ("kitchen", "false_alarm")]):  # fmt: skip
        glass = event(i * 300, label="Doorbell", score=0.9, node=node)
        at = glass.window_end.timestamp() + 1
        [alert] = [
            a
            for a in agg.handle_event(glass, at)
            if a.state == "raised" and a.category == "doorbell"
        ]
        assert alert.location == node
        feedback = Feedback(alert_id=alert.alert_id, verdict=verdict, by="anna", at=T0)
        agg.handle_feedback(feedback, "home", at + 1)
        agg.handle_feedback(feedback, "home", at + 2)  # the same feedback again: not counted
        agg.tick(at + 60)  # the sound is over: the alert ends
    agg.review_false_alarms(NOW + 3000)
    assert _sample(agg, ratio, site="home", node="hall") == 3 / 5
    assert _sample(agg, ratio, site="home", node="kitchen") is None  # two reviews: no series
    agg.review_false_alarms(NOW + 2 * 86400)  # a day later, nothing reviewed lately
    assert _sample(agg, ratio, site="home", node="hall") is None


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
