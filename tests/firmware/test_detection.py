"""The C detectors (through sa_core_wav) on the same mixtures and negatives as the Python ones,
and C/Python agreement on clean synthetic alarms."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edge.dsp import synth
from edge.dsp.patterns import DetectorKind, PatternDetector
from edge.dsp.protocol import Detection
from tests.dsp.devaudio import (
    CATEGORY,
    KINDS,
    MIN_SNR_DB_BY_KIND,
    SNRS_DB,
    Mixture,
    dev_audio_clips,
    mixtures,
    read_wav,
)
from tests.firmware.conftest import HostBuild, parse_all
from tests.support import alarms

LOG = logging.getLogger(__name__)
MIN_RATE = 0.95
MIN_SNR_DB = MIN_SNR_DB_BY_KIND


def _detections(
    build: HostBuild, audio: np.ndarray[tuple[int], np.dtype[np.int16]]
) -> list[Detection]:
    frames, rejections = parse_all(build.run(audio, "--heartbeat-ms", "0"))
    assert rejections == []
    return [f for f in frames if isinstance(f, Detection)]


def test_c_detection_rates_by_snr(host_build: HostBuild) -> None:
    mixes = mixtures()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda m: _detections(host_build, m.audio), mixes))
    hits: Counter[tuple[DetectorKind, float]] = Counter()
    cycles: Counter[tuple[DetectorKind, float]] = Counter()
    wrong: Counter[tuple[DetectorKind, float]] = Counter()
    trials: Counter[tuple[DetectorKind, float]] = Counter()
    m: Mixture
    for m, found in zip(mixes, results, strict=True):
        key = (m.kind, m.snr_db)
        trials[key] += 1
        own = [d for d in found if d.detector == m.kind]
        hits[key] += bool(own)
        cycles[key] += min(len(own), m.cycles)
        wrong[key] += sum(CATEGORY[d.detector] != CATEGORY[m.kind] for d in found)
    report = [
        f"c      {kind:5s} {snr:4.0f} dB: alarms {hits[(kind, snr)] / trials[(kind, snr)]:.3f}, "
        f"cycles {cycles[(kind, snr)] / (2 * trials[(kind, snr)]):.3f}, "
        f"other-alarm detections {wrong[(kind, snr)]}"
        for kind in KINDS
        for snr in SNRS_DB
    ]
    LOG.warning("detection rates:\n%s", "\n".join(report))
    for key, n in trials.items():
        assert wrong[key] == 0, report
        if key[1] >= MIN_SNR_DB[key[0]]:
            assert hits[key] / n >= MIN_RATE, report


def test_c_no_detections_on_any_dev_audio_recording(host_build: HostBuild) -> None:
    clips = dev_audio_clips()
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = list(pool.map(lambda c: _detections(host_build, read_wav(c.path)), clips))
    triggered = Counter(c.category for c, f in zip(clips, found, strict=True) if f)
    LOG.warning("c false detections by category: %s", dict(triggered))
    assert sum(triggered.values()) == 0, dict(triggered)


@pytest.mark.parametrize(
    "signal",
    [synth.t3(3), synth.t4(2, tone_hz=3500.0), synth.lf520(2), synth.t3(2, tone_hz=2600.0)],
    ids=["t3", "t4", "lf520", "t3-2600"],
)
def test_c_and_python_agree_on_clean_alarms(host_build: HostBuild, signal: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    audio = np.concatenate([np.zeros(5000), signal, np.zeros(8000)])
    audio = synth.to_int16(audio + 0.003 * rng.standard_normal(audio.size))
    python = PatternDetector().feed(audio)
    c = _detections(host_build, audio)
    assert python, "no detection at all: the comparison would be empty"
    assert [(d.kind, d.onset_sample // 16, d.cycle, d.tone_hz) for d in python] == [
        (d.detector, d.onset_ms, d.cycle, d.tone_hz) for d in c
    ]
    assert [d.confirmed_sample // 16 for d in python] == [d.uptime_ms for d in c]
    for p, q in zip(python, c, strict=True):
        assert abs(p.confidence - q.confidence) <= 0.02


def test_c_and_python_agree_on_realistic_alarms(host_build: HostBuild) -> None:
    """Golden vectors of the detectors: on realistic recordings (rooms, AGC, clipping,
    household sound, fragments, beepers), the board's C core finds exactly what Python finds:
    kind, onset, confirming frame, tone and cycle, confidence within 0.002."""
    dev_audio_clips()  # skips without the dev-audio set
    recordings = alarms.subset()
    with ThreadPoolExecutor(max_workers=2) as pool:
        c_found = list(pool.map(lambda r: _detections(host_build, r.audio), recordings))
    compared = 0
    for r, c in zip(recordings, c_found, strict=True):
        python = PatternDetector().feed(r.audio)
        assert [(d.kind, d.onset_sample // 16, d.confirmed_sample // 16, d.tone_hz, d.cycle)
                for d in python] == [(d.detector, d.onset_ms, d.uptime_ms, d.tone_hz, d.cycle)
                                     for d in c], r.describe()  # fmt: skip
        for p, q in zip(python, c, strict=True):
            assert abs(p.confidence - q.confidence) <= 0.002
        compared += len(python)
    assert compared >= 30, "too few detections to compare"
