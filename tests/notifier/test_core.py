"""The notifier's pure core: routing, snoozes, quiet hours and escalation, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.notifier.config import NotifierSettings, QuietHours
from services.notifier.core import NotifierCore, Track, in_quiet_hours
from tests.notifier.support import alert

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Berlin
NOW = T0.timestamp()


def settings(**site: Any) -> NotifierSettings:
    base: dict[str, Any] = {
        "timezone": "Europe/Berlin",
        "channels": {
            "phone": {"type": "apprise", "urls": ["json://127.0.0.1:9/phone"]},
            "lamp": {"type": "mqtt", "actions": [{"topic": "z/lamp/set", "payload": "on"}]},
            "carer": {"type": "apprise", "urls": ["json://127.0.0.1:9/carer"]},
        },
        "routes": [
            {"channels": ["phone"]},
            {
                "channels": ["lamp"],
                "categories": ["smoke_alarm", "doorbell"],
                "kinds": ["raise", "reminder", "clear"],
            },
        ],
        "escalation": {"after_s": 120, "repeat_s": 60, "channels": ["carer"]},
    }
    base.update(site)
    return NotifierSettings.model_validate({"sites": {"home": base}})


def smoke(**kw: Any) -> Any:
    return alert(**{"raised_at": T0, "published_at": T0, **kw})


def at(seconds: float, **kw: Any) -> Any:
    """The smoke alarm, published ``seconds`` after T0."""
    return smoke(published_at=T0 + timedelta(seconds=seconds), **kw)


def dog(**kw: Any) -> Any:
    return alert(
        **{
            "alert_id": "dog-1",
            "category": "dog",
            "priority": "normal",
            "title": "Dog barking",
            "raised_at": T0,
            "published_at": T0,
            **kw,
        }
    )


def channels(decision: Any) -> list[tuple[str, str]]:
    return [(d.channel, d.kind) for d in decision.deliveries]


def test_raise_routes_by_category_and_priority() -> None:
    core = NotifierCore(settings())
    decision = core.on_alert(smoke(), None, {}, NOW)
    assert decision.kind == "raise"
    assert channels(decision) == [("phone", "raise"), ("lamp", "raise")]
    decision = core.on_alert(dog(), None, {}, NOW)
    assert channels(decision) == [("phone", "raise")]


def test_min_priority_and_exclusions() -> None:
    core = NotifierCore(settings(routes=[
        {"channels": ["phone"], "min_priority": "high", "exclude_categories": ["doorbell"]}
    ]))  # fmt: skip
    assert channels(core.on_alert(dog(), None, {}, NOW)) == []
    door = alert(alert_id="d-1", category="doorbell", priority="high")
    assert channels(core.on_alert(door, None, {}, NOW)) == []
    assert channels(core.on_alert(smoke(), None, {}, NOW)) == [("phone", "raise")]


def test_life_cycle_kinds() -> None:
    core = NotifierCore(settings())
    first = core.on_alert(smoke(), None, {}, NOW)
    track = first.track
    moved = core.on_alert(at(1, state="updated", location="hall"), track, {}, NOW + 1)
    assert moved.kind == "update"
    assert channels(moved) == []  # no route asks for plain updates
    reminder = core.on_alert(at(60, state="updated", repeat=1), track, {}, NOW + 60)
    assert reminder.kind == "reminder"
    assert channels(reminder) == [("phone", "reminder"), ("lamp", "reminder")]
    acked = core.on_alert(at(61, state="acknowledged", repeat=1, by="ana"), track, {}, NOW + 61)
    assert acked.kind == "clear"
    assert channels(acked) == [("lamp", "clear")]  # the lamp stops; the phone is not told
    resolved = core.on_alert(at(62, state="resolved", repeat=1), track, {}, NOW + 62)
    assert resolved.kind == "update"
    assert channels(resolved) == []


def test_an_older_state_arriving_late_changes_nothing() -> None:
    core = NotifierCore(settings())
    track = core.on_alert(smoke(state="acknowledged", published_at=T0), None, {}, NOW).track
    late = core.on_alert(smoke(state="raised", published_at=T0 - timedelta(seconds=5)), track,
                         {}, NOW)  # fmt: skip
    assert late.stale
    assert channels(late) == []
    assert track.state == "acknowledged"


def test_first_sight_of_a_running_alert_notifies_and_of_a_finished_one_does_not() -> None:
    core = NotifierCore(settings())
    assert core.on_alert(smoke(state="updated", repeat=3), None, {}, NOW).kind == "raise"
    finished = core.on_alert(smoke(alert_id="x-2", state="resolved"), None, {}, NOW)
    assert finished.kind is None
    assert channels(finished) == []


def test_snooze_holds_back_dog_but_never_a_smoke_alarm() -> None:
    core = NotifierCore(settings())
    snoozes = {"dog": NOW + 3600, "smoke_alarm": NOW + 3600}
    held = core.on_alert(dog(), None, snoozes, NOW)
    assert channels(held) == []
    assert [(h.channel, h.reason) for h in held.held] == [("phone", "snoozed")]
    assert channels(core.on_alert(smoke(), None, snoozes, NOW)) == [
        ("phone", "raise"), ("lamp", "raise")
    ]  # fmt: skip
    after = core.on_alert(dog(alert_id="dog-2"), None, snoozes, NOW + 3601)
    assert channels(after) == [("phone", "raise")]


def test_quiet_hours_hold_back_non_critical_on_listed_channels_only() -> None:
    core = NotifierCore(settings(quiet_hours=[
        {"start": "12:30", "end": "14:00", "channels": ["phone"]}
    ]))  # fmt: skip
    door = alert(alert_id="d-1", category="doorbell", priority="high", raised_at=T0)
    decision = core.on_alert(door, None, {}, NOW)
    assert channels(decision) == [("lamp", "raise")]
    assert [(h.channel, h.reason) for h in decision.held] == [("phone", "quiet_hours")]
    assert channels(core.on_alert(smoke(), None, {}, NOW)) == [
        ("phone", "raise"), ("lamp", "raise")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-03-02T22:30", True),  # Monday night, window starts Monday
        ("2026-03-03T06:59", True),  # Tuesday early: still Monday's window
        ("2026-03-03T07:00", False),
        ("2026-03-02T21:59", False),
        ("2026-03-07T23:00", False),  # Saturday night: no window starts on Saturday
        ("2026-03-08T03:00", False),  # Sunday early: Saturday's window, none
        ("2026-03-06T23:30", True),  # Friday night
        ("2026-03-07T02:00", True),  # Saturday early: Friday's window
    ],
)
def test_quiet_hours_across_midnight_by_start_day(local: str, expected: bool) -> None:
    window = QuietHours.model_validate(
        {"start": "22:00", "end": "07:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
    )
    when = datetime.fromisoformat(local)
    assert in_quiet_hours([window], "phone", "dog", when) is expected


def test_quiet_hours_follow_the_site_timezone() -> None:
    # 21:30 UTC in winter is 22:30 in Berlin (quiet) and 16:30 in New York (not quiet).
    night = datetime(2026, 1, 5, 21, 30, tzinfo=UTC)
    window = [{"start": "22:00", "end": "07:00"}]
    for zone, held in (("Europe/Berlin", True), ("America/New_York", False)):
        core = NotifierCore(settings(timezone=zone, quiet_hours=window))
        decision = core.on_alert(dog(raised_at=night, published_at=night), None, {},
                                 night.timestamp())  # fmt: skip
        assert bool(decision.held) is held, zone


def test_escalation_timer_repeats_and_stops_on_acknowledge() -> None:
    core = NotifierCore(settings())
    track = core.on_alert(smoke(), None, {}, NOW).track
    assert track.escalate_at == NOW + 120
    assert core.due([track], {}, NOW + 119) == []
    first = core.due([track], {}, NOW + 120)
    assert [(d.channel, d.kind, d.escalation) for d in first[0].deliveries] == [
        ("carer", "escalation", 1)
    ]
    assert core.due([track], {}, NOW + 150) == []  # no double escalation within the interval
    second = core.due([track], {}, NOW + 181)
    assert second[0].deliveries[0].escalation == 2
    acked = core.on_alert(at(200, state="acknowledged", by="ana"), track, {}, NOW + 200)
    assert ("carer", "clear") in channels(acked)  # the caregiver learns it was handled
    assert track.escalate_at is None
    assert core.due([track], {}, NOW + 10_000) == []


def test_reminders_do_not_move_or_double_the_escalation_timer() -> None:
    core = NotifierCore(settings())
    track = core.on_alert(smoke(), None, {}, NOW).track
    for n in range(1, 4):  # the aggregator's reminders every 30 s
        at = T0 + timedelta(seconds=30 * n)
        decision = core.on_alert(smoke(state="updated", repeat=n, published_at=at), track, {},
                                 at.timestamp())  # fmt: skip
        assert decision.kind == "reminder"
        assert track.escalate_at == NOW + 120
    escalated = [d for t in range(0, 300, 5) for d in core.due([track], {}, NOW + t)]
    assert [d.deliveries[0].escalation for d in escalated] == [1, 2, 3]  # at 120, 180, 240


def test_a_late_first_sight_escalates_from_the_alert_time() -> None:
    core = NotifierCore(settings())
    track = core.on_alert(smoke(), None, {}, NOW + 500).track  # notifier was down
    assert track.escalate_at == NOW + 120
    assert len(core.due([track], {}, NOW + 500)) == 1


def test_non_critical_alerts_do_not_escalate_unless_configured() -> None:
    core = NotifierCore(settings())
    assert core.on_alert(dog(), None, {}, NOW).track.escalate_at is None
    core = NotifierCore(settings(escalation={"after_s": 60, "channels": ["carer"],
                                             "priorities": ["critical", "normal"]}))  # fmt: skip
    assert core.on_alert(dog(), None, {}, NOW).track.escalate_at == NOW + 60


def test_escalation_without_config_is_dropped() -> None:
    core = NotifierCore(settings())
    track = Track("a", "elsewhere", "smoke_alarm", "critical", "raised", 0, NOW,
                  escalate_at=NOW, alert=smoke(site="elsewhere"))  # fmt: skip
    assert core.due([track], {}, NOW)[0].deliveries == []
    assert track.escalate_at is None


def test_config_rejects_unknown_channels_and_zones() -> None:
    with pytest.raises(ValidationError, match="unknown channel"):
        settings(routes=[{"channels": ["pager"]}])
    with pytest.raises(ValidationError, match="unknown timezone"):
        settings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="Extra inputs"):
        settings(colour="red")
