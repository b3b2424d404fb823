"""The lines ``soundalert up`` prints for alert state changes."""

from __future__ import annotations

from datetime import timedelta

from soundalert.cli import describe_alert
from tests.notifier.support import alert


def test_an_update_shows_when_it_happened_and_an_acknowledgement_is_no_reminder() -> None:
    raised = alert(state="raised", confidence=0.95)
    later = raised.published_at + timedelta(minutes=3)
    line = describe_alert(raised)
    assert f"[{raised.raised_at.astimezone():%H:%M:%S}] RAISED" in line
    assert "confidence" not in line
    update = raised.model_copy(update={"state": "updated", "repeat": 3, "published_at": later})
    line = describe_alert(update)
    assert line.startswith(f"[{later.astimezone():%H:%M:%S}] UPDATED")
    assert "reminder 3, not yet acknowledged" in line
    acked = update.model_copy(update={"state": "acknowledged", "by": "Sam"})
    line = describe_alert(acked)
    assert line.startswith(f"[{later.astimezone():%H:%M:%S}] ACKNOWLEDGED")
    assert "by Sam" in line
    assert "not yet acknowledged" not in line


def test_a_sensor_alert_names_its_room_once() -> None:
    offline = alert(category="node_offline", priority="high", title="Kitchen sensor stopped "
                    "listening", reason="last will: connection lost")  # fmt: skip
    line = describe_alert(offline)
    assert "Kitchen sensor stopped listening (high) site home - last will" in line
