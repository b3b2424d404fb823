"""The display core: MQTT messages in, history rows and live updates out (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.decode import Reason, Rejected
from schemas.messages import Feedback
from schemas.topics import Topics
from services.web.core import WebCore, node_record, storage_trouble
from services.web.store import WebStore
from tests.web.conftest import SITE, alert, category_state, node_status

T = Topics("test/core/v1")
NOW = datetime(2026, 11, 21, 12, 0, 5, tzinfo=UTC).timestamp()


@pytest.fixture
def core() -> WebCore:
    return WebCore(WebStore(":memory:"), T)


def test_an_alert_is_stored_active_and_streamed(core: WebCore) -> None:
    updates = core.handle(T.alerts(SITE), alert().to_json(), retained=False, now=NOW)
    assert [u.kind for u in updates] == ["alert"]
    record = updates[0].record
    assert record["active"] is True
    assert record["handled"] is False
    assert record["alert"]["location"] == "kitchen"
    assert core.store.alerts()[0].alert.alert_id == "smoke_alarm-000001-abc"


def test_the_category_state_decides_what_is_active(core: WebCore) -> None:
    first = alert("dog-1", category="dog", location="hall", priority="normal")
    core.handle(T.alerts(SITE), first.to_json(), retained=False, now=NOW)
    # The aggregator says nothing of this category is active any more.
    state = category_state(SITE, "dog", [], first)
    updates = core.handle(T.alert_state(SITE, "dog"), state.to_json(), retained=True, now=NOW)
    assert [u.record["active"] for u in updates] == [False]
    # Unchanged state again: nothing to stream.
    assert core.handle(T.alert_state(SITE, "dog"), state.to_json(), retained=True, now=NOW) == []


def test_a_retained_category_state_restores_an_alert_missed_while_down(core: WebCore) -> None:
    latest = alert("smoke-9")
    state = category_state(SITE, "smoke_alarm", ["smoke-9"], latest)
    core.handle(T.alert_state(SITE, "smoke_alarm"), state.to_json(), retained=True, now=NOW)
    entry = core.store.alert("smoke-9")
    assert entry is not None
    assert entry.active


def test_older_publications_never_overwrite_newer_ones(core: WebCore) -> None:
    t0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    newer = alert("a1", state="false_alarm", published=t0 + timedelta(seconds=5))
    older = alert("a1", state="raised", published=t0)
    core.handle(T.alerts(SITE), newer.to_json(), retained=False, now=NOW)
    assert core.handle(T.alerts(SITE), older.to_json(), retained=False, now=NOW) == []
    entry = core.store.alert("a1")
    assert entry is not None
    assert entry.alert.state == "false_alarm"
    assert not entry.active


def test_sensor_back_notices_are_never_active(core: WebCore) -> None:
    notice = alert("node_online-1", category="node_online", priority="normal")
    updates = core.handle(T.alerts(SITE), notice.to_json(), retained=False, now=NOW)
    assert updates[0].record["active"] is False


def test_feedback_marks_an_alert_handled(core: WebCore) -> None:
    core.handle(T.alerts(SITE), alert().to_json(), retained=False, now=NOW)
    fb = Feedback(alert_id="smoke_alarm-000001-abc", verdict="acknowledged", by="Sam",
                  at=datetime.now(UTC))  # fmt: skip
    updates = core.handle(T.feedback(SITE), fb.to_json(), retained=False, now=NOW)
    assert updates[0].record["handled"] is True
    assert updates[0].record["feedback"][0]["by"] == "Sam"
    assert core.handle(T.feedback(SITE), fb.to_json(), retained=False, now=NOW) == []


def test_node_status_and_mic_level(core: WebCore) -> None:
    status = node_status("kitchen", mic=-40.5, at=datetime.fromtimestamp(NOW, UTC))
    updates = core.handle(T.status(SITE, "kitchen"), status.to_json(), retained=False, now=NOW)
    record = updates[0].record
    assert record["mic_dbfs"] == -40.5
    assert record["online"] is True
    # Three heartbeats missed: shown offline even before the last will arrives.
    entry = core.store.nodes()[0]
    assert node_record(entry, NOW + 46)["online"] is False
    assert record["problems"] == []


def test_a_node_that_cannot_keep_its_events_says_so() -> None:
    assert storage_trouble({"outbox_depth": 3, "outbox_dropped": 0}) is None
    assert storage_trouble({"outbox_in_memory": 12, "outbox_problem": "database or disk is full",
                            "outbox_dropped_disk_full": 30}) == (
        "cannot save events (12 waiting in memory); 30 events dropped: storage full")  # fmt: skip
    assert storage_trouble({"outbox_dropped_outbox_full": 4}) == "4 events dropped: queue full"
    assert storage_trouble({"outbox_dropped_disk_full": "x"}) is None, "only numbers count"


def test_a_wrong_clock_and_dropped_events_are_named(core: WebCore) -> None:
    ahead = node_status("kitchen", at=datetime.fromtimestamp(NOW + 3600, UTC))
    stats = {"outbox_in_memory": 2, "outbox_problem": "database or disk is full",
             "outbox_dropped_outbox_full": 3}  # fmt: skip
    ahead = ahead.model_copy(update={"stats": stats})
    [update] = core.handle(T.status(SITE, "kitchen"), ahead.to_json(), retained=False, now=NOW)
    assert update.record["clock_offset_s"] == 3600
    assert update.record["problems"] == [
        "clock 1 h ahead",
        "cannot save events (2 waiting in memory); 3 events dropped: queue full",
    ]
    behind = node_status("hall", at=datetime.fromtimestamp(NOW - 300, UTC))
    [update] = core.handle(T.status(SITE, "hall"), behind.to_json(), retained=False, now=NOW)
    assert update.record["problems"] == ["clock 5 min behind"]
    fine = node_status("bedroom", at=datetime.fromtimestamp(NOW - 0.2, UTC))
    [update] = core.handle(T.status(SITE, "bedroom"), fine.to_json(), retained=False, now=NOW)
    assert update.record["problems"] == []


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (T.alerts(SITE), b"{not json", Reason.MALFORMED_JSON),
        (T.alerts(SITE), b'{"schema": "soundalert.alert/9"}', Reason.UNKNOWN_SCHEMA_VERSION),
        (T.alerts("elsewhere"), alert().to_json(), Reason.TOPIC_MISMATCH),
        (T.alert_state(SITE, "dog"),
         category_state(SITE, "smoke_alarm", [], None).to_json(), Reason.TOPIC_MISMATCH),
        (T.status(SITE, "hall"), node_status("kitchen").to_json(), Reason.TOPIC_MISMATCH),
        ("other/root/home/alerts", alert().to_json(), Reason.UNKNOWN_TOPIC),
        (T.events(SITE, "kitchen"), b"{}", Reason.UNKNOWN_TOPIC),
        (T.alerts(SITE), b"x" * (70 * 1024), Reason.PAYLOAD_TOO_LARGE),
    ],
)  # fmt: skip
def test_bad_messages_are_rejected_with_a_reason(
    core: WebCore, topic: str, payload: bytes, reason: Reason
) -> None:
    with pytest.raises(Rejected) as caught:
        core.handle(topic, payload, retained=False, now=NOW)
    assert caught.value.reason == reason
    assert core.store.alerts() == []


def test_a_bad_message_does_not_lose_the_next_good_one(core: WebCore) -> None:
    with pytest.raises(Rejected):
        core.handle(T.alerts(SITE), b"\xff\xfe", retained=False, now=NOW)
    assert core.handle(T.alerts(SITE), alert().to_json(), retained=False, now=NOW)
