"""Streaming NFPA 72 temporal-pattern detectors: T3 smoke, T4 CO and the 520 Hz low-frequency T3.

The same algorithm runs on the RP2040 (firmware/rp2040/core/sa_pattern.c, fixed point) and here
(floating point, for the Pi agent). It is pure: feed 16 kHz mono blocks of any size, get back
:class:`Detection` objects.

Per 16 ms frame (see :mod:`edge.dsp.reference`) a tone is *on* when the power around the
strongest bin of its search band is at least ``ON_MIN_DB`` dBFS, at least ``ON_MARGIN_DB`` above
the band's tracked noise floor, and a large enough share of a wider context band (a tonality
test that broadband sounds fail). Runs of *on* frames become pulses: gaps of up to ``MERGE_GAP``
frames are bridged, runs shorter than ``MIN_PULSE`` frames are dropped. A pattern is confirmed
when the silence after its last pulse reaches the pattern's long-gap length:

* ``t3``: three 0.5 s pulses 0.5 s apart in 2.5-4 kHz, then >= 1.1 s of silence;
* ``t4``: four 0.1 s chirps 0.1 s apart in 2.5-4 kHz, then >= 3 s of silence;
* ``lf520``: the T3 pattern on a 437-625 Hz tone (the 520 Hz square-wave sounder).

Each pattern only sees pulses whose length fits it (a knock in a gap does not break the rhythm).
A pattern is rejected when the pulse before its first one continues the same rhythm on the same
tone (a longer beep train) or, for T4, came less than 2 s before it (alarm clocks beep in
fours); every pulse's peak bin must lie within ``MAX_BIN_SPREAD`` bins of the others. A tonal
frame also has to be within ``REL_DB`` of the loudest recent tonal frame, so quieter tonal
background between an alarm's pulses does not fill its gaps. The confidence
(per mille, like the firmware) is ``400 + 0.3 * timing fit + 0.3 * strength``, where strength
grows from 0 at 6 dB to 1000 at 20 dB above the noise floor, plus 100 per back-to-back cycle.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from edge.dsp.reference import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    FrameFeatures,
    analyse_frames,
    to_float,
)

__all__ = [
    "FRAME_MS",
    "HIGH_RATIO",
    "LOW_RATIO",
    "MAX_BIN_SPREAD",
    "MERGE_GAP",
    "MIN_PULSE",
    "ON_MARGIN_DB",
    "ON_MIN_DB",
    "PATTERNS",
    "REF_DECAY_DB",
    "REL_DB",
    "Detection",
    "DetectorKind",
    "Pattern",
    "PatternDetector",
]

DetectorKind = Literal["t3", "t4", "lf520"]

FRAME_MS: Final = FRAME_SAMPLES * 1000 // SAMPLE_RATE  # 16
ON_MIN_DB: Final = -70.0
ON_MARGIN_DB: Final = 6.0
HIGH_RATIO: Final = 0.5
LOW_RATIO: Final = 0.6
FLOOR_RISE_DB: Final = 0.05
"""Per frame: the noise floor starts at ``ON_MIN_DB``, follows a falling level at once and a
rising one at 3.1 dB/s."""
REL_DB: Final = 12.0
"""A tonal frame counts only within this many dB of the loudest recent tonal frame..."""
REF_DECAY_DB: Final = 0.02
"""...whose level decays by this much per frame (1.25 dB/s)."""
MERGE_GAP: Final = 2
MIN_PULSE: Final = 3
MAX_BIN_SPREAD: Final = 2
_SNR_FRAMES_MAX: Final = 1024
_SNR_FULL_DB: Final = 20.0


@dataclass(frozen=True, slots=True)
class Pattern:
    """Timing of one temporal pattern, in frames of 16 ms."""

    kind: DetectorKind
    pulses: int
    on_min: int
    on_max: int
    on_nominal_ms: int
    gap_min: int
    gap_max: int
    gap_nominal_ms: int
    long_gap: int
    """Silence after the last pulse that confirms the pattern, and the least before the first."""
    cycle_gap_max: int
    """A pattern starting at most this long after the previous one of its kind is its next cycle."""
    quiet_before: int
    """Least silence (of this pattern's pulses) before the first pulse, unless none came before."""


T3_TIMING: Final = Pattern("t3", 3, 22, 44, 500, 19, 44, 500, 69, 156, 0)
T4_TIMING: Final = Pattern("t4", 4, 3, 12, 100, 3, 12, 100, 188, 500, 125)
LF520_TIMING: Final = Pattern("lf520", 3, 22, 44, 500, 19, 44, 500, 69, 156, 0)
PATTERNS: Final = (T3_TIMING, T4_TIMING, LF520_TIMING)


@dataclass(frozen=True, slots=True)
class Detection:
    """One confirmed alarm cycle."""

    kind: DetectorKind
    confidence: float
    """In [0, 1], three decimals (the serial protocol's precision)."""
    onset_sample: int
    """Sample index (from the detector's start) where the cycle's first pulse began."""
    confirmed_sample: int
    """Sample index at the end of the frame that confirmed the cycle."""
    tone_hz: int
    """Centre frequency of the first pulse's peak bin."""
    cycle: int
    """1 for the first cycle of an alarm, then 2, 3, ... for back-to-back cycles."""

    @property
    def onset_seconds(self) -> float:
        return self.onset_sample / SAMPLE_RATE

    @property
    def confirmed_seconds(self) -> float:
        return self.confirmed_sample / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class _Pulse:
    start: int
    end: int
    peak_bin: int
    snr_db: float
    gap_before: int | None = None
    """Frames since the previous pulse of the same pattern ended; None if there was none."""


@dataclass(slots=True)
class _Matcher:
    """One pattern's view of a tone: the recent pulses whose length fits the pattern."""

    pattern: Pattern
    ring: deque[_Pulse]
    prev_end: int | None = None
    checked: bool = True
    last_end: int | None = None
    """End frame of the last pulse of the previous detection."""
    last_cycle: int = 0


class _ToneTrack:
    """Turns one tone's per-frame on/off flags into pulses and matches patterns against them.

    Each pattern only sees pulses whose length fits it; pulses that do not fit are ignored (a
    cough in a gap does not break a smoke alarm's rhythm).
    """

    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        self._matchers = [_Matcher(p, deque(maxlen=p.pulses + 1)) for p in patterns]
        self._open_start = -1
        self._open_bin = 0
        self._last_on = -1
        self._snr_sum = 0.0
        self._snr_frames = 0

    def step(self, frame: int, on: bool, peak_bin: int, snr_db: float) -> list[Detection]:
        found: list[Detection] = []
        if on:
            if self._open_start < 0:
                self._open_start, self._open_bin = frame, peak_bin
                self._snr_sum, self._snr_frames = 0.0, 0
            self._last_on = frame
            if self._snr_frames < _SNR_FRAMES_MAX:
                self._snr_sum += snr_db
                self._snr_frames += 1
        elif self._open_start >= 0 and frame - self._last_on > MERGE_GAP:
            self._finalise()
        for m in self._matchers:
            if m.checked or m.prev_end is None or frame + 1 - m.prev_end < m.pattern.long_gap:
                continue
            if 0 <= self._open_start < m.prev_end + m.pattern.long_gap:
                continue  # a pulse inside the long gap is still open: wait for its length
            m.checked = True
            detection = _match(m, frame)
            if detection is not None:
                found.append(detection)
        return found

    def _finalise(self) -> None:
        start, end = self._open_start, self._last_on + 1
        self._open_start = -1
        if end - start < MIN_PULSE:
            return
        snr = self._snr_sum / self._snr_frames
        for m in self._matchers:
            if m.pattern.on_min <= end - start <= m.pattern.on_max:
                gap = None if m.prev_end is None else start - m.prev_end
                m.ring.append(_Pulse(start, end, self._open_bin, snr, gap))
                m.prev_end = end
                m.checked = False


def _match(m: _Matcher, frame: int) -> Detection | None:
    p = m.pattern
    if len(m.ring) < p.pulses:
        return None
    pulses = list(m.ring)[-p.pulses :]
    first = pulses[0]
    bins = [q.peak_bin for q in pulses]
    if max(bins) - min(bins) > MAX_BIN_SPREAD:
        return None
    if first.gap_before is not None and first.gap_before < p.quiet_before:
        return None  # T4 follows ~5 s of silence; four beeps every second is an alarm clock
    if len(m.ring) > p.pulses and first.gap_before is not None:
        before = m.ring[0]
        if (
            p.gap_min <= first.gap_before <= p.gap_max
            and abs(before.peak_bin - first.peak_bin) <= MAX_BIN_SPREAD
        ):
            return None  # the rhythm started earlier: a longer beep train, not this pattern
    errors: list[int] = []
    for j, q in enumerate(pulses):
        errors.append(_error_pm(q.end - q.start, p.on_nominal_ms))
        if j > 0:
            if q.gap_before is None or not p.gap_min <= q.gap_before <= p.gap_max:
                return None
            errors.append(_error_pm(q.gap_before, p.gap_nominal_ms))
    timing_pm = 1000 - sum(errors) // len(errors)
    snr = sum(q.snr_db for q in pulses) / len(pulses)
    strength = min(max((snr - ON_MARGIN_DB) / (_SNR_FULL_DB - ON_MARGIN_DB), 0.0), 1.0)
    strength_pm = int(strength * 1000)
    cycle = 1
    if m.last_end is not None and first.start - m.last_end <= p.cycle_gap_max:
        cycle = m.last_cycle + 1
    m.last_end, m.last_cycle = pulses[-1].end, cycle
    conf_pm = min(1000, 400 + (300 * timing_pm + 300 * strength_pm) // 1000 + 100 * (cycle - 1))
    return Detection(
        kind=p.kind,
        confidence=conf_pm / 1000,
        onset_sample=first.start * FRAME_SAMPLES,
        confirmed_sample=(frame + 1) * FRAME_SAMPLES,
        tone_hz=first.peak_bin * 125 // 2,
        cycle=cycle,
    )


def _error_pm(frames: int, nominal_ms: int) -> int:
    """Timing error in per mille of half the nominal duration, capped at 1000."""
    return min(1000, abs(frames * FRAME_MS - nominal_ms) * 2000 // nominal_ms)


class _ToneGate:
    """Per-frame on/off decision for one tone: level, noise floor, tonality, recent loudness."""

    def __init__(self, min_ratio: float) -> None:
        self._min_ratio = min_ratio
        self._floor = ON_MIN_DB
        self._ref = ON_MIN_DB

    def step(self, tone_db: float, band_db: float, ratio: float) -> tuple[bool, float]:
        """Whether the tone is on in this frame, and its height above the noise floor (dB)."""
        floor = self._floor
        snr = tone_db - floor
        candidate = tone_db >= ON_MIN_DB and snr >= ON_MARGIN_DB and ratio >= self._min_ratio
        on = candidate and tone_db >= self._ref - REL_DB
        self._ref = max(self._ref - REF_DECAY_DB, ON_MIN_DB)
        if candidate:
            self._ref = max(self._ref, tone_db)
        self._floor = min(floor + FLOOR_RISE_DB, band_db)
        return on, snr


class PatternDetector:
    """Streaming T3/T4/520 Hz detector; one instance per audio stream.

    ``feed`` takes 16 kHz mono blocks of any length: int16 samples, or float samples in
    full-scale units (-1.0..1.0). Samples that do not fill a frame are kept for the next call.
    """

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float64)
        self._frame = 0
        self._high_gate = _ToneGate(HIGH_RATIO)
        self._low_gate = _ToneGate(LOW_RATIO)
        self._high = _ToneTrack((T3_TIMING, T4_TIMING))
        self._low = _ToneTrack((LF520_TIMING,))

    @property
    def samples_seen(self) -> int:
        """Samples consumed by complete frames so far."""
        return self._frame * FRAME_SAMPLES

    def feed(self, block: npt.ArrayLike) -> list[Detection]:
        x = to_float(block)
        if self._pending.size:
            x = np.concatenate((self._pending, x))
        whole = x.size - x.size % FRAME_SAMPLES
        self._pending = x[whole:].copy()
        if whole == 0:
            return []
        return self._frames(analyse_frames(x[:whole]))

    def _frames(self, f: FrameFeatures) -> list[Detection]:
        found: list[Detection] = []
        rows = zip(
            f.high_db.tolist(),
            f.high_band_db.tolist(),
            f.high_ratio.tolist(),
            f.high_bin.tolist(),
            f.low_db.tolist(),
            f.low_band_db.tolist(),
            f.low_ratio.tolist(),
            f.low_bin.tolist(),
            strict=True,
        )
        for high_db, high_band, high_ratio, high_bin, low_db, low_band, low_ratio, low_bin in rows:
            on, snr = self._high_gate.step(high_db, high_band, high_ratio)
            found += self._high.step(self._frame, on, high_bin, snr)
            on, snr = self._low_gate.step(low_db, low_band, low_ratio)
            found += self._low.step(self._frame, on, low_bin, snr)
            self._frame += 1
        return found
