"""Issue 14: supervision worth reading. A node that never announced a status is not
supervised; a deliberate stop is a normal-priority notice; a file replay that ends raises
nothing; evidence left from before a restart does not raise a stale lesser alert; an alarm
that repeats after it was acknowledged keeps its name."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas.messages import TRANSIENT, Alert, Feedback
from services.aggregator.core import NODE_OFFLINE, NODE_ONLINE, NODE_STOPPED
from services.aggregator.policy import load_policy
from tests.aggregator.factories import HOP, T0, WINDOW, event, make_aggregator, status

# The core on both store backends: SQLite (a home) and PostgreSQL (hosted).
pytestmark = pytest.mark.usefixtures("store_backend")

NOW = T0.timestamp() + 5.0


def test_a_node_that_only_sent_events_is_never_reported_offline() -> None:
    agg = make_aggregator()
    agg.handle_event(event(0, label="Speech"), NOW)  # a one-off mosquitto_pub
    assert agg.tick(NOW + 3600) == []
    # Its first status makes it a supervised sensor.
    agg.handle_status(status(at=NOW + 3600, heartbeat_s=15), NOW + 3600)
    [offline] = agg.tick(NOW + 3600 + 46)
    assert (offline.category, offline.priority) == (NODE_OFFLINE, "high")
    assert offline.title == "Kitchen sensor stopped listening"


def test_a_deliberate_stop_is_a_normal_notice_and_its_return_another() -> None:
    agg = make_aggregator()
    agg.handle_status(status(at=NOW), NOW)
    [stopped] = agg.handle_status(status("stopped", at=NOW + 1), NOW + 1)
    assert (stopped.category, stopped.priority, stopped.state) == (NODE_STOPPED, "normal",
                                                                    "raised")  # fmt: skip
    assert stopped.title == "Kitchen sensor was stopped"
    assert not agg.category_state("home", NODE_STOPPED, stopped, NOW + 1).active
    assert agg.tick(NOW + 3600) == []  # a stopped node sends no heartbeats: no news
    [back] = agg.handle_status(status(at=NOW + 3601), NOW + 3601)
    assert (back.category, back.priority) == (NODE_ONLINE, "normal")


def test_a_file_replay_announces_itself_transient_and_its_end_is_no_news() -> None:
    agg = make_aggregator()
    replay = status(at=NOW).model_copy(update={"capabilities": ["yamnet", TRANSIENT]})
    assert agg.handle_status(replay, NOW) == []
    stopped = replay.model_copy(update={"state": "stopped"})
    assert agg.handle_status(stopped, NOW + 30) == []
    assert agg.handle_status(replay.model_copy(update={"state": "offline"}), NOW + 31) == []
    assert agg.tick(NOW + 3600) == []
    # A replay killed without a clean stop misses its heartbeats: not news either.
    agg.handle_status(replay, NOW + 3600)
    assert agg.tick(NOW + 7200) == []


def test_the_last_will_of_a_sensor_is_still_high() -> None:
    agg = make_aggregator()
    agg.handle_status(status(at=NOW), NOW)
    [offline] = agg.handle_status(status("offline", at=NOW), NOW + 1)
    assert (offline.category, offline.priority) == (NODE_OFFLINE, "high")


def _possible(agg_path: Path) -> None:
    agg = make_aggregator(agg_path, policy=load_policy())
    # 4 "Smoke detector" windows confirm a possible smoke alarm, which waits 6 s for a T3.
    for i in range(4):
        assert agg.handle_event(event(i), NOW) == []
    agg.flush()
    agg.store.commit()
    agg.store.close()


def test_a_restart_long_after_does_not_raise_a_stale_possible_smoke_alarm(
    tmp_path: Path,
) -> None:
    db = tmp_path / "aggregator.sqlite3"
    _possible(db)
    later = make_aggregator(db, policy=load_policy())
    assert [a for a in later.tick(NOW + 389) if a.category == "possible_smoke_alarm"] == []
    assert later.tick(NOW + 400) == []


def test_a_quick_restart_still_raises_what_was_confirmed(tmp_path: Path) -> None:
    db = tmp_path / "aggregator.sqlite3"
    _possible(db)
    again = make_aggregator(db, policy=load_policy())
    raised = [a for a in again.tick(NOW + 6) if a.category == "possible_smoke_alarm"]
    assert [a.state for a in raised] == ["raised"]


def _t3(i: int, offset: float) -> object:
    return event(i, kind="pattern", label="t3", score=0.95, offset=offset)


def test_an_acknowledged_alarm_sounding_again_is_not_first_a_possible_one() -> None:
    agg = make_aggregator(policy=load_policy())
    out: list[Alert] = []
    for i in range(4):
        out += agg.handle_event(event(i), NOW)
    out += agg.handle_event(_t3(4, 0.0), NOW)  # type: ignore[arg-type]
    [smoke] = [a for a in out if a.state == "raised"]
    assert smoke.category == "smoke_alarm"
    ack = Feedback(alert_id=smoke.alert_id, verdict="acknowledged", by="Sam", at=T0)
    agg.handle_feedback(ack, "home", NOW)
    # The sound stops; the alert ends; the same alarm sounds again within its cooldown.
    quiet = [event(i, label="Speech") for i in range(5, 40)]
    for e in quiet:
        agg.handle_event(e, NOW)
    again = 40 * HOP + WINDOW
    later: list[Alert] = []
    for i in range(40, 80):
        later += agg.handle_event(event(i), NOW + again)
        if i % 8 == 0:
            later += agg.handle_event(_t3(i, 0.01), NOW + again)  # type: ignore[arg-type]
    names = [a.category for a in later if a.state == "raised"]
    assert "possible_smoke_alarm" not in names, names
    assert T0 + timedelta(seconds=again) > smoke.raised_at
