"""Zero detections on every negative, as a negative sounds in a home: followed by quiet.

A detector that confirms a pattern only once a pause follows it (T4's quiet after four chirps,
T3's missing fourth beep) says nothing on a recording that ends mid-pattern; fed alone, a
clip can hide a false smoke or CO detection that a stream (the clip, then a quiet room)
shows. Every development recording is fed here with quiet before and after.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edge.dsp.patterns import PatternDetector
from tests.dsp.devaudio import DEV_AUDIO, read_wav

ALARMS = {"alarm"}  # alarm clocks may beep in any rhythm; the detectors' own tests cover them


def _clips() -> list[tuple[str, str]]:
    meta = DEV_AUDIO / "meta.csv"
    if not meta.is_file():
        pytest.skip(f"development audio not found at {DEV_AUDIO} (../shared/data/dev-audio)")
    with meta.open(newline="") as handle:
        return [(r["path"], r["category"]) for r in csv.DictReader(handle)
                if r["category"] not in ALARMS]  # fmt: skip


def test_no_negative_followed_by_quiet_is_a_smoke_or_co_alarm() -> None:
    room = np.random.default_rng(0).normal(0.0, 30.0, 11 * 16000).astype(np.int16)
    found = {}
    for path, category in _clips():
        audio = read_wav(DEV_AUDIO / path)
        stream = np.concatenate((room[: 3 * 16000], audio, room[3 * 16000 :]))
        detections = PatternDetector().feed(stream)
        if detections:
            found[f"{category}/{path}"] = [(d.kind, round(d.confirmed_seconds, 1))
                                           for d in detections]  # fmt: skip
    assert not found, found
