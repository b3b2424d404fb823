"""The pure fusion core, against real SQLite (in memory, or a file where restarts matter)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import Reason, Rejected
from schemas.messages import Alert, Feedback
from services.aggregator.core import NODE_OFFLINE, NODE_ONLINE
from services.aggregator.policy import load_policy
from tests.aggregator.factories import T0, event, make_aggregator, status

# The core on both store backends: SQLite (a home) and PostgreSQL (hosted).
pytestmark = pytest.mark.usefixtures("store_backend")

NOW = T0.timestamp() + 5.0  # wall clock a few seconds after the sound, as live


def _sample(agg: object, name: str, **labels: str) -> float:
    registry = agg.metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else float(value)


def _canonical(alert: Alert) -> dict[str, object]:
    return alert.model_dump(exclude={"alert_id", "published_at", "state", "repeat"})


def test_confirms_after_k_windows_not_before() -> None:
    agg = make_aggregator()
    assert agg.handle_event(event(0), NOW) == []
    assert agg.handle_event(event(1), NOW) == []
    [alert] = agg.handle_event(event(2), NOW)
    assert (alert.state, alert.category, alert.priority) == ("raised", "smoke_alarm", "critical")
    assert alert.location == "kitchen"
    assert alert.first_evidence_at == T0
    assert alert.raised_at == event(2).window_end
    assert alert.evidence == [event(i).event_id for i in range(3)]
    assert _sample(agg, "soundalert_alerts_total", category="smoke_alarm", priority="critical") == 1
    assert _sample(agg, "soundalert_detection_latency_seconds_count", category="smoke_alarm") == 1


def test_below_threshold_and_disabled_categories_never_alert() -> None:
    agg = make_aggregator()
    for i in range(20):
        assert agg.handle_event(event(i, score=0.1), NOW) == []
        assert agg.handle_event(event(i, label="Speech", score=0.99, node="hall"), NOW) == []


def test_one_pattern_detection_confirms_on_its_own() -> None:
    agg = make_aggregator(policy=load_policy())  # the shipped weights
    [alert] = agg.handle_event(event(0, kind="pattern", label="t3", score=0.9), NOW)
    assert alert.category == "smoke_alarm"
    [co] = agg.handle_event(event(0, kind="pattern", label="t4", score=0.9, node="hall"), NOW)
    assert co.category == "co_alarm"


def test_shipped_doorbell_needs_two_windows() -> None:
    agg = make_aggregator(policy=load_policy())
    assert agg.handle_event(event(0, label="Doorbell"), NOW) == []
    [alert] = agg.handle_event(event(2, label="Ding-dong"), NOW)
    assert alert.category == "doorbell"


def test_short_sounds_confirm_on_one_window() -> None:
    agg = make_aggregator()
    [alert] = agg.handle_event(event(0, label="Glass", score=0.8), NOW)
    assert alert.category == "glass_break"
    assert alert.priority == "high"


def _final_alerts(order: list[int], duplicates: list[int]) -> list[Alert]:
    agg = make_aggregator()
    out: list[Alert] = []
    for i in order:
        out += agg.handle_event(event(i), NOW)
    for i in duplicates:
        out += agg.handle_event(event(i), NOW)
    return out


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(list(range(8))),
    duplicates=st.lists(st.integers(0, 7), max_size=8),
)
def test_any_order_with_redeliveries_gives_the_same_single_alert(
    order: list[int], duplicates: list[int]
) -> None:
    reference = _final_alerts(list(range(8)), [])
    got = _final_alerts(order, duplicates)
    assert len({a.alert_id for a in got}) == 1, "one sound, one alert"
    assert [a.state for a in got].count("raised") == 1
    assert _canonical(got[-1]) == _canonical(reference[-1])


@settings(max_examples=40, deadline=None)
@given(order=st.permutations([(n, i) for n in ("kitchen", "hall") for i in range(5)]))
def test_fusion_is_order_independent_across_nodes(order: list[tuple[str, int]]) -> None:
    def run(seq: list[tuple[str, int]]) -> list[Alert]:
        agg = make_aggregator()
        out: list[Alert] = []
        for node, i in seq:
            score = 0.9 if node == "hall" else 0.6
            out += agg.handle_event(event(i, node=node, score=score), NOW)
        return out

    reference = run(sorted(order))
    got = run(order)
    assert len({a.alert_id for a in got}) == 1
    assert _canonical(got[-1]) == _canonical(reference[-1])
    assert got[-1].location == "hall"
    assert {n.node for n in got[-1].nodes} == {"kitchen", "hall"}


def test_duplicate_is_counted_and_ignored() -> None:
    agg = make_aggregator()
    for i in range(3):
        agg.handle_event(event(i), NOW)
    assert agg.handle_event(event(1), NOW) == []
    assert _sample(agg, "soundalert_events_duplicate_total") == 1


def test_late_event_is_stored_and_counted_but_raises_nothing() -> None:
    agg = make_aggregator()
    agg.handle_event(event(100, score=0.0), NOW)  # watermark at ~48 s of event time
    for i in range(5):  # ~48 s behind: far beyond the 10 s reorder bound
        assert agg.handle_event(event(i), NOW) == []
    assert _sample(agg, "soundalert_events_late_total") == 5
    assert agg.store.is_known_event(event(0).event_id)


def test_reordered_within_bound_still_alerts() -> None:
    agg = make_aggregator()
    agg.handle_event(event(12, score=0.0), NOW)  # ~5.8 s ahead, within the bound
    out: list[Alert] = []
    for i in range(3):
        out += agg.handle_event(event(i), NOW)
    assert [a.state for a in out] == ["raised"]


def test_alert_from_a_drained_backlog_says_when_it_happened() -> None:
    agg = make_aggregator()
    later = T0.timestamp() + 600  # an outbox drained ten minutes after the sound
    out: list[Alert] = []
    for i in range(3):
        out += agg.handle_event(event(i), later)
    [alert] = out
    assert alert.delay_s is not None
    assert alert.delay_s == pytest.approx(600 - 1.935, abs=0.2)
    assert alert.raised_at == event(2).window_end


def _sound_alerts(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.category not in {NODE_OFFLINE, NODE_ONLINE}]


def test_critical_alert_repeats_until_acknowledged_then_resolves() -> None:
    agg = make_aggregator()
    for i in range(3):
        agg.handle_event(event(i), NOW)
    # No evidence for hold + reorder bound of wall time: the sound ended, the alert stays.
    [ended] = _sound_alerts(agg.tick(NOW + 30))
    assert (ended.state, ended.repeat) == ("updated", 0)
    assert ended.ended_at == event(2).window_end
    [reminder] = _sound_alerts(agg.tick(NOW + 91))
    assert (reminder.state, reminder.repeat) == ("updated", 1)
    assert _sound_alerts(agg.tick(NOW + 120)) == []
    [reminder2] = _sound_alerts(agg.tick(NOW + 152))
    assert reminder2.repeat == 2
    feedback = Feedback(alert_id=reminder.alert_id, verdict="acknowledged", by="anna", at=T0)
    states = [a.state for a in agg.handle_feedback(feedback, "home", NOW + 130)]
    assert states == ["acknowledged", "resolved"]
    assert _sound_alerts(agg.tick(NOW + 400)) == []


def test_critical_alert_ends_by_event_time_but_waits_for_acknowledgement() -> None:
    agg = make_aggregator()
    for i in range(3):
        agg.handle_event(event(i), NOW)
    ended: list[Alert] = []
    for i in range(3, 40):  # quiet windows move event time past the hold period
        ended += agg.handle_event(event(i, score=0.01), NOW + 1)
    assert [a.state for a in ended] == ["updated"]
    assert ended[0].ended_at == event(2).window_end
    [episode] = agg.active_episodes()
    # The alarm sounds again: same alert, no longer ended.
    resumed = agg.handle_event(event(40), NOW + 2)
    assert [(a.alert_id, a.ended_at) for a in resumed] == [(episode.alert_id, None)]


def test_acknowledged_critical_alert_does_not_repeat() -> None:
    agg = make_aggregator()
    out: list[Alert] = []
    for i in range(3):
        out += agg.handle_event(event(i), NOW)
    feedback = Feedback(alert_id=out[0].alert_id, verdict="acknowledged", by="anna", at=T0)
    assert [a.state for a in agg.handle_feedback(feedback, "home", NOW + 1)] == ["acknowledged"]
    assert [a.state for a in _sound_alerts(agg.tick(NOW + 200))] == ["resolved"]


def test_non_critical_alert_resolves_when_the_sound_stops_and_cools_down() -> None:
    agg = make_aggregator()
    [raised] = agg.handle_event(event(0, label="Knock", score=0.8), NOW) or agg.handle_event(
        event(1, label="Knock", score=0.8), NOW
    )
    assert raised.category == "knock"
    out: list[Alert] = []
    for i in range(2, 20):
        out += agg.handle_event(event(i, label="Knock", score=0.0), NOW)
    assert [a.state for a in out] == ["resolved"]
    # Within the cooldown (10 s after the last knock): ignored, and counted.
    assert agg.handle_event(event(20, label="Knock", score=0.9), NOW) == []
    assert agg.handle_event(event(21, label="Knock", score=0.9), NOW) == []
    assert _sample(agg, "soundalert_hits_suppressed_total", category="knock") == 2
    # After the cooldown: a new alert.
    new = agg.handle_event(event(60, label="Knock", score=0.9), NOW)
    new += agg.handle_event(event(61, label="Knock", score=0.9), NOW)
    assert [a.state for a in new] == ["raised"]
    assert new[0].alert_id != raised.alert_id


def test_wall_clock_ends_an_alert_whose_nodes_went_quiet() -> None:
    agg = make_aggregator()
    agg.handle_event(event(0, label="Glass", score=0.9), NOW)
    assert [a.state for a in agg.tick(NOW + 2 + 10 + 0.5)] == ["resolved"]


def test_false_alarm_feedback_closes_and_counts() -> None:
    agg = make_aggregator()
    [alert] = agg.handle_event(event(0, label="Glass", score=0.9), NOW)
    feedback = Feedback(alert_id=alert.alert_id, verdict="false_alarm", by="anna", at=T0)
    [closed] = agg.handle_feedback(feedback, "home", NOW + 1)
    assert closed.state == "false_alarm"
    assert agg.handle_feedback(feedback, "home", NOW + 2) == []  # the same feedback again
    labels = {"category": "glass_break", "verdict": "false_alarm"}
    assert _sample(agg, "soundalert_alert_feedback_total", **labels) == 1
    with pytest.raises(Rejected) as caught:
        agg.handle_feedback(feedback.model_copy(update={"alert_id": "nope"}), "home", NOW)
    assert caught.value.reason is Reason.UNKNOWN_ALERT


def test_missed_heartbeats_raise_node_offline_and_return_raises_node_online() -> None:
    agg = make_aggregator()
    agg.handle_status(status(at=NOW, heartbeat_s=15), NOW)
    assert agg.tick(NOW + 44) == []
    [offline] = agg.tick(NOW + 46)
    assert (offline.category, offline.location, offline.priority) == (NODE_OFFLINE, "kitchen",
                                                                       "high")  # fmt: skip
    assert offline.reason is not None
    assert "heartbeat" in offline.reason
    assert agg.tick(NOW + 100) == []  # raised once
    assert _sample(agg, "soundalert_node_up", site="home", node="kitchen") == 0
    back = agg.handle_status(status(at=NOW + 120), NOW + 120)
    assert [(a.category, a.state) for a in back] == [(NODE_OFFLINE, "resolved"),
                                                     (NODE_ONLINE, "raised")]  # fmt: skip
    assert _sample(agg, "soundalert_node_up", site="home", node="kitchen") == 1


def test_last_will_raises_node_offline_at_once() -> None:
    agg = make_aggregator()
    agg.handle_status(status(at=NOW), NOW)
    [offline] = agg.handle_status(status("offline", at=NOW), NOW + 1)
    assert offline.category == NODE_OFFLINE
    assert offline.reason is not None
    assert "last will" in offline.reason


def test_stale_retained_online_status_is_not_proof_of_life() -> None:
    agg = make_aggregator()
    agg.handle_status(status("offline", at=NOW), NOW)
    assert agg.handle_status(status(at=NOW - 3600), NOW + 1, retained=True) == []
    back = agg.handle_status(status(at=NOW + 2), NOW + 2, retained=True)
    assert [a.category for a in back] == [NODE_OFFLINE, NODE_ONLINE]


def test_restart_resumes_open_alerts_without_resending(tmp_path: Path) -> None:
    db = tmp_path / "aggregator.sqlite3"
    agg = make_aggregator(db)
    for i in range(3):
        agg.handle_event(event(i), NOW)
    agg.flush()
    agg.store.commit()
    agg.store.close()

    again = make_aggregator(db)
    [episode] = again.active_episodes()
    assert episode.category == "smoke_alarm"
    for i in range(4):  # redelivered after the crash, plus one new window
        assert all(a.state != "raised" for a in again.handle_event(event(i), NOW + 1))
    assert _sample(again, "soundalert_events_duplicate_total") == 3
    [ended] = _sound_alerts(again.tick(NOW + 30))
    assert (ended.alert_id, ended.state, ended.repeat) == (episode.alert_id, "updated", 0)
    [reminder] = _sound_alerts(again.tick(NOW + 91))
    assert (reminder.alert_id, reminder.repeat) == (episode.alert_id, 1)


def test_pending_evidence_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "aggregator.sqlite3"
    agg = make_aggregator(db)
    agg.handle_event(event(0), NOW)
    agg.handle_event(event(1), NOW)
    agg.flush()
    agg.store.commit()
    agg.store.close()
    again = make_aggregator(db)
    [alert] = again.handle_event(event(2), NOW)
    assert alert.evidence == [event(i).event_id for i in range(3)]


def test_category_state_tracks_activity() -> None:
    agg = make_aggregator()
    [alert] = agg.handle_event(event(0, label="Glass", score=0.9), NOW)
    state = agg.category_state("home", "glass_break", alert, NOW)
    assert state.active
    assert state.active_alerts == [alert.alert_id]
    [resolved] = agg.tick(NOW + 30)
    assert not agg.category_state("home", "glass_break", resolved, NOW).active


def test_timestamps_in_alerts_are_utc() -> None:
    agg = make_aggregator()
    [alert] = agg.handle_event(event(0, label="Glass", score=0.9), NOW)
    assert alert.published_at == datetime.fromtimestamp(NOW, UTC)


def test_a_smoke_alarm_supersedes_an_alarm_beep_alert() -> None:
    agg = make_aggregator()
    beep: list[Alert] = []
    for i in range(2):
        beep += agg.handle_event(event(i, label="Alarm", score=0.9), NOW)
    assert [a.category for a in beep] == ["alarm_beep"]
    out = agg.handle_event(event(2, kind="pattern", label="t3", score=0.9), NOW)
    assert [(a.category, a.state) for a in out] == [("smoke_alarm", "raised"),
                                                    ("alarm_beep", "resolved")]  # fmt: skip
    assert out[1].reason == "superseded by smoke alarm"
    # While the smoke alarm is active, beeps raise nothing.
    for i in range(3, 12):
        assert agg.handle_event(event(i, label="Alarm", score=0.9), NOW) == []


def test_pending_smoke_evidence_holds_an_alarm_beep() -> None:
    agg = make_aggregator()
    out: list[Alert] = []
    for i in range(3):
        out += agg.handle_event(event(i, label="Alarm", score=0.9, node="hall"), NOW)
        out += agg.handle_event(event(i, score=0.5), NOW)  # smoke evidence, kitchen
    assert [a.category for a in out] == ["smoke_alarm"]


def test_a_held_alarm_beep_is_raised_when_the_smoke_evidence_ages_out() -> None:
    """Held, not lost: once the lone smoke window is older than smoke's window, the beeps that
    confirmed meanwhile are raised, without waiting for another beep."""
    agg = make_aggregator()
    assert agg.handle_event(event(0, score=0.5), NOW) == []  # one smoke window: 1 of 3
    for i in range(1, 3):
        assert agg.handle_event(event(i, label="Alarm", score=0.9), NOW) == []  # held
    out: list[Alert] = []
    i = 3
    while not out and i < 40:  # the room goes on, beeps stop: only event time moves
        out = agg.handle_event(event(i, label="Speech", score=0.9), NOW)
        i += 1
    [beep] = out
    assert beep.category == "alarm_beep"
    assert beep.evidence == [event(1).event_id, event(2).event_id]
    assert event(i - 1).window_end.timestamp() >= event(0).window_end.timestamp() + 5  # aged out
