"""The Python detectors on synthetic alarms mixed into dev-audio background, and on every
dev-audio recording as a negative (including the alarm-clock ringtones: the detectors are
specific to NFPA 72 patterns)."""

from __future__ import annotations

import logging
import time
from collections import Counter

import pytest

from edge.dsp.patterns import DetectorKind, PatternDetector
from tests.dsp.devaudio import (
    CATEGORY,
    KINDS,
    MIN_SNR_DB_BY_KIND,
    SNRS_DB,
    dev_audio_clips,
    mixtures,
    read_wav,
)

LOG = logging.getLogger(__name__)
MIN_RATE = 0.95
MIN_SNR_DB = MIN_SNR_DB_BY_KIND
MAX_REALTIME_FRACTION = 0.01


def test_detection_rates_by_snr() -> None:
    hits: Counter[tuple[DetectorKind, float]] = Counter()
    cycles: Counter[tuple[DetectorKind, float]] = Counter()
    wrong: Counter[tuple[DetectorKind, float]] = Counter()
    trials: Counter[tuple[DetectorKind, float]] = Counter()
    for m in mixtures():
        found = PatternDetector().feed(m.audio)
        key = (m.kind, m.snr_db)
        trials[key] += 1
        own = [d for d in found if d.kind == m.kind]
        hits[key] += bool(own)
        cycles[key] += min(len(own), m.cycles)
        wrong[key] += sum(CATEGORY[d.kind] != CATEGORY[m.kind] for d in found)
    report = []
    for kind in KINDS:
        for snr in SNRS_DB:
            k = (kind, snr)
            report.append(
                f"python {kind:5s} {snr:4.0f} dB: alarms {hits[k] / trials[k]:.3f}, "
                f"cycles {cycles[k] / (2 * trials[k]):.3f}, other-alarm detections {wrong[k]}"
            )
    LOG.warning("detection rates:\n%s", "\n".join(report))
    for key, n in trials.items():
        assert wrong[key] == 0, report
        if key[1] >= MIN_SNR_DB[key[0]]:
            assert hits[key] / n >= MIN_RATE, report


def test_no_detections_on_any_dev_audio_recording() -> None:
    triggered: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for clip in dev_audio_clips():
        total[clip.category] += 1
        if PatternDetector().feed(read_wav(clip.path)):
            triggered[clip.category] += 1
    LOG.warning("python false detections by category: %s of %s", dict(triggered), dict(total))
    assert sum(triggered.values()) == 0, dict(triggered)


def test_faster_than_one_percent_of_real_time() -> None:
    audio = [m.audio for m in mixtures()[:40]]
    seconds = sum(a.size for a in audio) / 16000
    start = time.process_time()
    for a in audio:
        detector = PatternDetector()
        for i in range(0, a.size, 1600):  # 100 ms blocks, as the Pi agent feeds them
            detector.feed(a[i : i + 1600])
    used = time.process_time() - start
    LOG.warning("python detector: %.3f ms CPU per second of audio", 1000 * used / seconds)
    assert used / seconds < MAX_REALTIME_FRACTION


@pytest.fixture(autouse=True)
def _needs_dev_audio() -> None:
    dev_audio_clips()
