"""What Home Assistant's entities show, from the retained messages the notifier reads."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.messages import CategoryState, DeliveryAck, NodeStatus
from services.homeassistant.state import ACK_BY, HaState
from tests.notifier.support import alert

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _state(**latest: object) -> CategoryState:
    raised = alert(**latest)
    return CategoryState(site="home", category="smoke_alarm", active=True,
                         active_alerts=[raised.alert_id], latest=raised, at=NOW)  # fmt: skip


def test_a_category_is_off_until_active_and_off_again_once_acknowledged() -> None:
    ha = HaState()
    assert ha.category_payload("home", "smoke_alarm")["value"] == "OFF"
    ha.category_state(_state())
    assert ha.category_payload("home", "smoke_alarm")["value"] == "ON"
    [feedback] = ha.acknowledge("home", NOW)
    assert (feedback.verdict, feedback.by, feedback.site) == ("acknowledged", ACK_BY, "home")
    ha.category_state(_state(state="acknowledged", by=ACK_BY))  # still sounding, acknowledged
    payload = ha.category_payload("home", "smoke_alarm")
    assert payload["value"] == "OFF"
    assert payload["attributes"] == {
        "alert_id": "smoke_alarm-000001-abcd", "alert_state": "acknowledged",
        "location": "kitchen", "priority": "critical", "acknowledged_by": ACK_BY,
        "active_alerts": ["smoke_alarm-000001-abcd"],
    }  # fmt: skip
    assert ha.acknowledge("home", NOW) == []  # nothing left that needs it


def test_a_node_listens_while_its_heartbeats_come() -> None:
    ha = HaState()
    t = NOW.timestamp()
    status = NodeStatus(site="home", node="hall", state="online", at=NOW, heartbeat_s=15,
                        stats={"mic_dbfs": -40.0, "state": "x"})  # fmt: skip
    ha.node_status(status, t, retained=False)
    listening = ha.node_payload("home", "hall", t + 44)
    assert listening["value"] == "ON"
    assert "state" not in listening["attributes"]  # type: ignore[operator]
    assert ha.node_payload("home", "hall", t + 46)["value"] == "OFF"  # silent, no last will
    ha.node_ack(DeliveryAck(site="home", node="porch", seq=3, at=NOW))
    assert ha.node_payload("home", "porch", t + 60)["value"] == "ON"
    assert ha.node_payload("home", "porch", t + 3600)["value"] == "OFF"
