"""Clocks: every event is judged against the aggregator's clock, never the node's alone.

A node whose clock is wrong (a Pi that booted an hour ahead, then corrected by NTP) once made
its own later smoke alarms "late": they were stored and counted but raised nothing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas import Reason, Rejected
from schemas.messages import ClassificationEvent
from tests.aggregator.factories import HOP, T0, event, make_aggregator, status

NOW = T0.timestamp() + 5.0


def _t3(i: int, *, node: str = "kitchen", shift_s: float = 0.0) -> ClassificationEvent:
    """A T3 pattern detection at window ``i``, its timestamps moved by ``shift_s``."""
    e = event(i, node=node, kind="pattern", label="t3", score=0.95)
    return e.model_copy(update={
        "event_id": f"{e.event_id}-s{int(shift_s) + 100000}",
        "window_start": e.window_start + timedelta(seconds=shift_s),
        "window_end": e.window_end + timedelta(seconds=shift_s),
    })  # fmt: skip


def _sample(agg: object, name: str, **labels: str) -> float:
    value = agg.metrics.registry.get_sample_value(name, labels or None)  # type: ignore[attr-defined]
    return 0.0 if value is None else float(value)


def test_an_event_from_the_future_is_rejected_and_does_not_silence_its_node() -> None:
    agg = make_aggregator()
    agg.handle_event(event(0, score=0.0), NOW)
    with pytest.raises(Rejected) as caught:
        agg.handle_event(_t3(1, shift_s=3600), NOW)
    assert caught.value.reason is Reason.CLOCK_SKEW
    assert "kitchen" in caught.value.detail
    [node] = agg.nodes()
    assert node.watermark == event(0).window_end.timestamp()  # not moved an hour ahead
    assert node.clock_offset_s == pytest.approx(3600 + event(1).window_end.timestamp() - NOW)
    assert _sample(agg, "soundalert_node_clock_offset_seconds", site="home", node="kitchen") > 3000
    [alert] = agg.handle_event(_t3(2), NOW)  # the node's next real smoke alarm
    assert (alert.category, alert.state) == ("smoke_alarm", "raised")


def test_a_small_lead_within_the_bound_is_accepted() -> None:
    agg = make_aggregator()
    [alert] = agg.handle_event(_t3(0, shift_s=60), NOW)  # 60 s ahead: within 120 s
    assert alert.category == "smoke_alarm"


def test_a_watermark_saved_in_the_future_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "agg.sqlite3"
    agg = make_aggregator(path)
    agg.handle_event(event(0, score=0.0), NOW)
    [node] = agg.nodes()
    node.watermark = NOW + 3600  # what older code persisted after one future-dated event
    agg.store.save_nodes([node])
    agg.store.commit()
    agg.store.close()
    again = make_aggregator(path)
    [alert] = again.handle_event(_t3(1), NOW)
    assert alert.category == "smoke_alarm"


def test_a_clock_set_back_is_followed_not_treated_as_late() -> None:
    agg = make_aggregator()
    for i in range(5):
        agg.handle_event(event(i, score=0.0), NOW)
    # NTP sets the node's clock back an hour; its seq goes on increasing.
    later = NOW + 10 * HOP
    [alert] = agg.handle_event(_t3(5, shift_s=-3600), later)
    assert (alert.category, alert.state) == ("smoke_alarm", "raised")
    assert _sample(agg, "soundalert_events_late_total") == 0
    assert _sample(agg, "soundalert_node_clock_jumps_total") == 1


def test_late_smoke_evidence_still_raises_marked_with_its_delay() -> None:
    agg = make_aggregator()
    agg.handle_event(event(200, score=0.0), NOW + 200 * HOP)  # watermark ~96 s in
    # A T3 detection from before (lower seq: sent again after an outage) lands 90 s behind.
    [alert] = agg.handle_event(_t3(10), NOW + 200 * HOP)
    assert (alert.category, alert.state) == ("smoke_alarm", "raised")
    assert (alert.delay_s or 0) > 60
    assert _sample(agg, "soundalert_events_late_total") == 1


def test_late_non_critical_evidence_still_raises_nothing() -> None:
    agg = make_aggregator()
    agg.handle_event(event(200, score=0.0), NOW + 200 * HOP)
    assert agg.handle_event(event(10, label="Doorbell", score=0.9), NOW + 200 * HOP) == []


def test_a_node_whose_clock_is_behind_does_not_make_live_alerts_look_delayed() -> None:
    agg = make_aggregator()
    agg.handle_status(status(at=NOW - 3600), NOW, retained=False)  # its clock: an hour behind
    [alert] = agg.handle_event(_t3(0, shift_s=-3600), NOW)
    assert alert.delay_s is None
