"""What counts as a correct alert on a corpus clip, shared by the fit and the benchmark."""

from __future__ import annotations

from typing import Final

from bench.corpus.manifest import NEGATIVE, Clip, Event

__all__ = ["CREDITED", "EXCUSED", "credited", "excused"]

CREDITED: Final[dict[str, frozenset[str]]] = {
    # The alarm recordings are phone alarm ringtones and alarm clocks: either name is right.
    "alarm_beep": frozenset({"alarm_beep", "phone_ring"}),
    "phone_ring": frozenset({"phone_ring", "alarm_beep"}),
    # A smoke alarm with another rhythm than T3 is what YAMNet alone must name; a smoke alarm
    # alert for it (the upgrade, or a pattern) is right too.
    "possible_smoke_alarm": frozenset({"possible_smoke_alarm", "smoke_alarm"}),
}
"""Clip category -> alert categories that find it (default: its own category only)."""

EXCUSED: Final[dict[str, frozenset[str]]] = {
    "smoke_alarm": frozenset({"possible_smoke_alarm"}),
    "co_alarm": frozenset({"possible_smoke_alarm"}),
    "alarm_beep": frozenset({"possible_smoke_alarm"}),
}
"""Alerts that are neither a hit nor false on a clip, counted and printed on their own: a real
T3 alarm called a possible smoke alarm (it should be a smoke alarm, first and only), and an
alarm clock that YAMNet hears as a smoke detector (a piezo beeper scores 0.93 "Smoke detector":
no YAMNet threshold tells it from a smoke alarm of another rhythm, so the high-priority
possible smoke alarm is what the system can honestly say; it does not count as found)."""


def credited(clip: Clip | Event) -> frozenset[str]:
    if clip.category == NEGATIVE:
        return frozenset()
    return CREDITED.get(clip.category, frozenset({clip.category}))


def excused(clip: Clip | Event) -> frozenset[str]:
    return EXCUSED.get(clip.category, frozenset())
