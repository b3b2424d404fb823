"""The Python detectors on a small fixed set of realistic alarm recordings (rooms, distance,
phone AGC and clipping, household sound: tests/support/alarms.py), the fast subset of
``bench/alarms.py``: four of each type at 0, 10 and 20 dB, T3 fragments and household
beepers. The floors are what this set gives today, so a change that loses alarms fails here;
the bench measures the rates on 240 recordings per type."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from edge.dsp.patterns import Detection, PatternDetector
from tests.dsp.devaudio import CATEGORY, require_dev_audio
from tests.support import alarms

LOG = logging.getLogger(__name__)
MIN_FOUND = {"t3": 12, "t4": 8, "lf520": 8}
"""Of 12 per type, by their own detector: what this set gives today (the bench: T4 and 520 Hz
fall short of 99 %, mostly in reverberant rooms through a phone's AGC)."""


@pytest.fixture(scope="module")
def found() -> list[tuple[alarms.Recording, list[Detection]]]:
    require_dev_audio()
    return [(r, PatternDetector().feed(r.audio)) for r in alarms.subset()]


def test_alarms_are_found_as_their_own_type(
    found: list[tuple[alarms.Recording, list[Detection]]],
) -> None:
    hits: Counter[str] = Counter()
    for r, ds in found:
        if r.kind in alarms.KINDS:
            hits[r.kind] += any(d.kind == r.kind for d in ds)
            assert all(CATEGORY[d.kind] == CATEGORY[r.kind] for d in ds), (r.describe(), ds)
    LOG.warning("realistic subset, found of 12: %s", dict(hits))
    for kind, floor in MIN_FOUND.items():
        assert hits[kind] >= floor, (kind, dict(hits))


def test_t3_speaks_about_three_seconds_after_the_first_beep(
    found: list[tuple[alarms.Recording, list[Detection]]],
) -> None:
    """The third onset plus one period: never before the third beep, never a whole cycle
    later when the first cycle was heard."""
    for r, ds in found:
        t3 = [d for d in ds if d.kind == "t3" and d.cycle == 1]
        if r.kind == "t3" and t3 and abs(t3[0].onset_seconds - r.first_beep_s) < 0.1:
            latency = t3[0].confirmed_seconds - r.first_beep_s
            assert 2.6 <= latency <= 3.4, (r.describe(), latency)


def test_fragments_are_never_co_and_smoke_only_when_they_hold_a_whole_cycle(
    found: list[tuple[alarms.Recording, list[Detection]]],
) -> None:
    fragments = [(r, ds) for r, ds in found if r.kind == "fragment"]
    assert len(fragments) == 5
    for r, ds in fragments:
        assert not [d for d in ds if d.kind == "t4"], r.describe()
        if not r.complete_cycles:
            assert ds == [], (len(r.beeps), r.describe(), ds)
    whole = [ds for r, ds in fragments if r.complete_cycles]
    assert whole
    assert all(any(d.kind == "t3" for d in ds) for ds in whole)


def test_household_beepers_are_not_alarms(
    found: list[tuple[alarms.Recording, list[Detection]]],
) -> None:
    lookalikes = [(r, ds) for r, ds in found if r.kind in alarms.LOOKALIKES]
    assert len(lookalikes) == len(alarms.LOOKALIKES)
    assert [(r.kind, ds) for r, ds in lookalikes if ds] == []
