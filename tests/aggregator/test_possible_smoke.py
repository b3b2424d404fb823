"""The shipped smoke tiers: a T3/520 Hz pattern is a smoke alarm; YAMNet alone is a possible
smoke alarm, deferred so a pattern can name it first, and raised as a smoke alarm when it keeps
sounding with nobody acknowledging it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas.messages import Alert, Feedback
from services.aggregator.core import Aggregator
from services.aggregator.policy import Policy, load_policy
from tests.aggregator.factories import HOP, T0, WINDOW, event, make_aggregator

# The core on both store backends: SQLite (a home) and PostgreSQL (hosted).
pytestmark = pytest.mark.usefixtures("store_backend")

NOW = T0.timestamp() + 5.0
POSSIBLE = "possible_smoke_alarm"


def _shipped(path: Path | str = ":memory:") -> Aggregator:
    return make_aggregator(path, policy=load_policy())


def _feed(agg: Aggregator, indices: range | list[int], **kw: object) -> list[Alert]:
    out: list[Alert] = []
    for i in indices:
        out += agg.handle_event(event(i, **kw), NOW)  # type: ignore[arg-type]
    return [a for a in out if a.category not in ("node_offline", "node_online")]


def _end(i: int) -> float:
    return (T0 + timedelta(seconds=HOP * i + WINDOW)).timestamp()


def _first_index_ending_after(t: float) -> int:
    i = 0
    while _end(i) < t:
        i += 1
    return i


def test_yamnet_alone_is_a_possible_smoke_alarm_after_its_wait() -> None:
    """A short burst scores a few windows and ages out; 4 windows within 6 s (flicker allowed)
    confirm; the alert waits 6 s more of event time for a pattern detector, then is raised at
    high priority with raised_at = confirmation + 6 s."""
    agg = _shipped()
    assert _feed(agg, range(3)) == []  # 1.4 s: a CO alarm's four chirps, an appliance beep
    assert _feed(agg, range(3, 20), label="Speech") == []  # quiet: the burst ages out
    assert _feed(agg, range(30, 38, 2)) == []  # a flickering score: every other window
    due = _end(36) + 6.0
    due_index = _first_index_ending_after(due)
    assert _feed(agg, range(37, due_index), label="Speech") == []  # still waiting
    [alert] = _feed(agg, [due_index], label="Speech")  # any window moves event time on
    assert (alert.category, alert.priority, alert.state) == (POSSIBLE, "high", "raised")
    assert alert.raised_at.timestamp() == pytest.approx(due)
    assert alert.first_evidence_at == event(30).window_start
    assert alert.title == "Possible smoke alarm"


def test_a_t3_pattern_within_the_wait_names_it_a_smoke_alarm_once() -> None:
    agg = _shipped()
    assert _feed(agg, range(8)) == []  # confirmed as possible, waiting
    [alert] = _feed(agg, [8], kind="pattern", label="t3", score=0.9)
    assert (alert.category, alert.priority) == ("smoke_alarm", "critical")
    # YAMNet windows go on: evidence that the same smoke alarm still sounds, no other alert.
    assert _feed(agg, range(9, 60)) == []
    [episode] = agg.active_episodes()
    assert episode.category == "smoke_alarm"
    assert episode.hits.last_end == _end(59)


def test_a_late_t3_pattern_supersedes_the_possible_alert() -> None:
    agg = _shipped()
    [possible] = _feed(agg, range(_first_index_ending_after(_end(5) + 6.0) + 1))
    assert possible.category == POSSIBLE
    out = _feed(agg, [30], kind="pattern", label="t3", score=0.9)
    assert [(a.category, a.state) for a in out] == [("smoke_alarm", "raised"),
                                                    (POSSIBLE, "resolved")]  # fmt: skip
    assert out[1].reason == "superseded by smoke alarm"


def test_unanswered_possible_smoke_alarm_becomes_a_smoke_alarm_after_30_s() -> None:
    agg = _shipped()
    out = _feed(agg, range(100))  # 48 s of windows that all score
    raised = [a for a in out if a.state == "raised"]
    assert [a.category for a in raised] == [POSSIBLE, "smoke_alarm"]
    possible, smoke = raised
    assert possible.first_evidence_at is not None
    sustained = possible.first_evidence_at.timestamp() + 30.0
    assert smoke.priority == "critical"
    assert smoke.first_evidence_at == possible.first_evidence_at
    assert smoke.raised_at.timestamp() == pytest.approx(_end(_first_index_ending_after(sustained)))
    assert smoke.reason == (
        "possible smoke alarm still sounding 30 s after it began, and nobody acknowledged it"
    )
    closed = [a for a in out if a.alert_id == possible.alert_id and a.state != "raised"]
    assert [(a.state, a.reason) for a in closed] == [("resolved", "superseded by smoke alarm")]
    assert [e.category for e in agg.active_episodes()] == ["smoke_alarm"]
    # The upgraded alert is critical: it repeats until someone acknowledges it.
    [ended] = agg.tick(NOW + 30)  # the kitchen's windows stopped
    assert (ended.alert_id, ended.state, ended.ended_at) == (smoke.alert_id, "updated",
                                                             event(99).window_end)  # fmt: skip
    [reminder] = [a for a in agg.tick(NOW + 95) if a.category == "smoke_alarm"]
    assert (reminder.alert_id, reminder.repeat) == (smoke.alert_id, 1)


@pytest.mark.parametrize("verdict", ["acknowledged", "false_alarm"])
def test_an_answered_possible_smoke_alarm_is_not_upgraded(verdict: str) -> None:
    """Someone saw it: acknowledged (they are on it) or a false alarm (it is the alarm clock)."""
    agg = _shipped()
    [possible] = _feed(agg, range(_first_index_ending_after(_end(5) + 6.0) + 1))
    answer = Feedback.model_validate({"alert_id": possible.alert_id, "verdict": verdict,
                                      "by": "sam", "at": T0 + timedelta(seconds=10)})  # fmt: skip
    [answered] = agg.handle_feedback(answer, "home", NOW)
    assert answered.state == verdict
    out = _feed(agg, range(30, 120))  # 43 s more of the same sound
    assert "smoke_alarm" not in {a.category for a in out}
    if verdict == "acknowledged":
        assert out == []  # the open alert carries on, nothing new


def test_deferred_alert_is_raised_by_the_wall_clock_when_windows_stop() -> None:
    """A node that reports only loud windows sends nothing once the sound stops: the wait
    ends on the wall clock (reorder bound) instead of never."""
    agg = _shipped()
    assert _feed(agg, range(7)) == []
    assert agg.tick(NOW + 5) == []
    [alert] = [a for a in agg.tick(NOW + 11) if a.state == "raised"]
    assert alert.category == POSSIBLE


def test_the_upgrade_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "aggregator.sqlite3"
    agg = _shipped(db)
    [possible] = _feed(agg, range(30))
    agg.flush()
    agg.store.commit()
    agg.store.close()

    again = _shipped(db)
    [episode] = again.active_episodes()
    assert episode.alert_id == possible.alert_id
    out = _feed(again, range(20, 80))  # redelivered and new windows
    assert [(a.category, a.state) for a in out if a.state == "raised"] == [
        ("smoke_alarm", "raised")
    ]
    smoke = next(a for a in out if a.category == "smoke_alarm")
    again.flush()
    again.store.commit()
    again.store.close()

    third = _shipped(db)
    [episode] = third.active_episodes()
    assert (episode.alert_id, episode.upgraded_from) == (smoke.alert_id, POSSIBLE)
    canon = episode.hits.canon
    assert canon is not None
    assert smoke.first_evidence_at is not None
    assert (canon.first_evidence_at, canon.raised_at) == (
        smoke.first_evidence_at.timestamp(),
        smoke.raised_at.timestamp(),
    )
    assert _feed(third, range(80, 90)) == []  # same alert, same fields: nothing to say


def test_an_upgrade_must_close_what_it_replaces() -> None:
    raw = load_policy().model_dump()
    raw["categories"][POSSIBLE]["suppressed_by"] = ["co_alarm"]
    with pytest.raises(ValueError, match=r"upgrade\.to must be one of its suppressed_by"):
        Policy.model_validate(raw)


def test_an_alarm_clock_beeper_is_one_alert_not_two() -> None:
    """A piezo beeper that YAMNet scores both "Smoke detector" and "Alarm clock": the possible
    smoke alarm explains the alarm beep."""
    agg = _shipped()
    out: list[Alert] = []
    for i in range(40):
        both = event(i).model_copy(update={"labels": [
            *event(i).labels, *event(i, label="Alarm clock", score=0.8).labels]})  # fmt: skip
        out += agg.handle_event(both, NOW)
    assert [a.category for a in out if a.state == "raised"] == [POSSIBLE]


def test_a_quiet_node_with_held_evidence_still_raises_by_the_wall_clock() -> None:
    """A CO detection still pending (here CO needs two) holds a possible smoke alarm while
    event time moves on; if the node then sends nothing at all, the wall clock raises it."""
    raw = load_policy().model_dump()
    raw["categories"]["co_alarm"]["labels"]["pattern"]["t4"]["weight"] = 1
    agg = make_aggregator(policy=Policy.model_validate(raw))
    assert _feed(agg, [0], kind="pattern", label="t4", score=0.9) == []
    assert _feed(agg, range(1, 30)) == []  # due by event time, but held
    assert agg.tick(NOW + 5) == []
    [alert] = [a for a in agg.tick(NOW + 11) if a.state == "raised"]
    assert alert.category == POSSIBLE
