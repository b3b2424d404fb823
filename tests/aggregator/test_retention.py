"""Retention: old events, closed alerts and their evidence go; open alerts stay, however old."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.messages import Feedback
from tests.aggregator.factories import T0, event, make_aggregator

# The core on both store backends: SQLite (a home) and PostgreSQL (hosted).
pytestmark = pytest.mark.usefixtures("store_backend")

NOW = T0.timestamp() + 5.0
DAY = 86400.0


def test_old_closed_alerts_and_events_are_pruned_open_alerts_kept() -> None:
    agg = make_aggregator()
    [smoke] = agg.handle_event(event(0, kind="pattern", label="t3", score=0.95), NOW)
    [door] = agg.handle_event(event(1, node="hall", label="Doorbell", score=0.9), NOW)
    agg.handle_feedback(Feedback(alert_id=door.alert_id, verdict="false_alarm", by="a",
                                 at=datetime.fromtimestamp(NOW, UTC)), "home", NOW)  # fmt: skip
    for i in range(2, 6):
        agg.handle_event(event(i, score=0.0), NOW)
    agg.flush()
    agg.store.commit()
    before = agg.store.row_counts()
    assert before["events"] == 6

    deleted = agg.store.prune(NOW + 90 * DAY, limit=1000)
    agg.store.commit()
    after = agg.store.row_counts()
    assert deleted["events"] == 6
    assert after["events"] == 0
    assert deleted["alerts"] == 1  # the doorbell, closed by its false alarm
    assert agg.store.alert(door.alert_id) is None
    kept = agg.store.alert(smoke.alert_id)  # a smoke alarm nobody acknowledged stays
    assert kept is not None
    assert kept.active
    assert [h.event_id for h, _ in agg.store.hits(alert_id=smoke.alert_id)] == smoke.evidence
    assert agg.store.history(door.alert_id) == []
    assert after["feedback"] == 0


def test_pruning_works_in_chunks() -> None:
    agg = make_aggregator()
    for i in range(50):
        agg.handle_event(event(i, score=0.0), NOW)
    agg.store.commit()
    assert agg.store.prune(NOW + DAY, limit=20)["events"] == 20
    assert agg.store.prune(NOW + DAY, limit=20)["events"] == 20
    assert agg.store.prune(NOW + DAY, limit=20)["events"] == 10
