"""Streaming NFPA 72 temporal-pattern detectors: T3 smoke, T4 CO and the 520 Hz low-frequency T3.

The same algorithm runs on the RP2040 (firmware/rp2040/core/sa_pattern.c, fixed point) and, as
WebAssembly built from that C, on the phone agent page; here it runs in floating point for the
Pi agent. It is pure: feed 16 kHz mono blocks of any size, get back :class:`Detection` objects.
Real alarms in real rooms are not the textbook pattern: a tone anywhere from 2 to 4.5 kHz, with
partials; reverberation that fills gaps and makes a pure tone's level swing by 20 dB inside a
beep; a phone's gain control. What survives all of that is where a beep *starts*.

**Tonal frames.** Per 16 ms frame (:mod:`edge.dsp.reference`) each tone (smoke/CO: strongest
bin in 1.875-4.625 kHz; 520 Hz: in 437-625 Hz) is *tonal* when its power is at least
``ON_MIN_DB`` dBFS, ``ON_MARGIN_DB`` above its search band's tracked noise floor, and a large
enough share of a wider context band: with its two strongest partials for the smoke/CO tone
(``HIGH_RATIO``: a piezo's harmonics and a combination alarm's second tone count, broadband
sound does not), alone for the 520 Hz tone (``LOW_RATIO``: speech there has many harmonics).
A tone is one tone across frames when its peak or partial bin is within ``MAX_BIN_SPREAD`` (1 for
the 520 Hz tone, whose whole search band is 3 bins).

**Beeps (T3, 520 Hz).** A beep begins where a tonal frame's level rose ``ONSET_DB`` over two
frames; the next ``OFF_END`` frames decide whether it was one: tonal on its tone in
``ON_FRAMES`` of its first ``ON_WINDOW`` frames (0.43 s, the shortest beep NFPA 72 allows) and
still 0.3 s after it began (``LATE_FRAMES``), and its bins ``OFF_DB`` below their peak
``OFF_START``-``OFF_END`` frames after the onset (0.75-0.88 s: after the longest beep and its
reverberant tail, before the next beep). Three beeps on one tone whose onsets are 52-73 frames
apart (on + off, each 0.5 s +-10 %, plus up to 3 frames of onset jitter at low SNR) and within
5 frames of each other (one alarm, one clock) are a cycle, reported as soon as no fourth beep
came: at the third onset plus the longer period plus ``BEEP_WAIT`` frames, unless the tone rose
again there or the beeps' bins sound within ``TRAIN_DB`` of them. A cycle whose first beep
continues an earlier beep's rhythm is part of a longer beep train, and one whose last beep gives
way to a fuller one (``REFRACTORY``) is no cycle. Three smoke/CO-band beeps
that start with three 520 Hz beeps are that square wave's harmonics: they wait for the 520 Hz
verdict and are reported only if there is none.

**Chirps (T4).** In a room, reverberation fills T4's 0.1 s gaps, so chirps are peaks of the
tone's level (the search band's power on tonal frames): a rise of ``DIP_DB`` from the last
valley, then a fall of ``DIP_DB`` from the peak; a chirp's time is its steepest one-frame
rise, and a peak starting within ``CHIRP_MERGE`` frames of the last is the same chirp (split
by a notch of the room's interference). Four chirps on one tone, each ``CHIRP_MIN_WIDTH`` to
``CHIRP_MAX_WIDTH`` frames from rise to fall, on a regular grid (a least-squares period of 10-17
frames, each chirp within 2.5 frames of it: a reverberant room blurs single rises, not the
rhythm), their strongest bins within ``MAX_BIN_SPREAD`` of each other (one pitch) and their peaks
within ``CHIRP_LEVEL_SPREAD_DB`` of each other (one sounder in one place, not a
knock's decaying echoes or a crash's shards), make a T4 cycle when no peak on that tone within
``QUIET_DB`` of the quietest of them came in the 2 s before or comes in the 3 s after (the
pattern's 5 s pause; a ripple in the first ``TAIL`` frames after the last chirp is its tail;
laughter's "ha-ha-ha-ha" has T4's rhythm but goes on). A T3 beep is one long peak: neither a
chirp nor quiet, so T4 cannot be built from T3 beeps or pieces of them, and an alarm clock's
groups of four fail the pauses.

The confidence (per mille, like the firmware) is ``400 + 0.3 * timing fit + 0.3 * strength``,
where the timing fit is of the periods to nominal and strength grows from 0 at 6 dB to 1000 at
20 dB above the noise floor, plus 100 per back-to-back cycle.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from edge.dsp.reference import (
    FLOOR_DB,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    ToneFeatures,
    analyse_frames,
    to_float,
)

__all__ = [
    "BEEP_WAIT",
    "CHIRP_LEVEL_SPREAD_DB",
    "CHIRP_MAX_WIDTH",
    "CHIRP_MERGE",
    "CHIRP_MIN_WIDTH",
    "DIP_DB",
    "FRAME_MS",
    "HIGH_RATIO",
    "LF520_TIMING",
    "LOW_RATIO",
    "MAX_BIN_SPREAD",
    "OFF_DB",
    "ONSET_DB",
    "ON_MARGIN_DB",
    "ON_MIN_DB",
    "T3_TIMING",
    "T4_TIMING",
    "BeepTiming",
    "ChirpTiming",
    "Detection",
    "DetectorKind",
    "PatternDetector",
]

DetectorKind = Literal["t3", "t4", "lf520"]

FRAME_MS: Final = FRAME_SAMPLES * 1000 // SAMPLE_RATE  # 16
ON_MIN_DB: Final = -70.0
ON_MARGIN_DB: Final = 6.0
HIGH_RATIO: Final = 0.7
LOW_RATIO: Final = 0.6
FLOOR_RISE_DB: Final = 0.05
"""Per frame: the noise floor starts at ``ON_MIN_DB``, follows a falling search-band level at
once and a rising one at 3.1 dB/s."""
ONSET_DB: Final = 9.0
"""A beep starts where the tone's level rose this much over two frames."""
ON_WINDOW: Final = 27
ON_FRAMES: Final = 16
LATE_START: Final = 19
LATE_FRAMES: Final = 3
"""A beep is tonal, on its tone, in ``ON_FRAMES`` of the ``ON_WINDOW`` frames from its onset
(0.43 s, the shortest beep NFPA 72 allows), ``LATE_FRAMES`` of them from ``LATE_START`` on (it
still sounds 0.3 s after it began: a faster beeper's beep has ended)..."""
OFF_START: Final = 47
OFF_END: Final = 55
OFF_DB: Final = 10.0
"""...and its bins are this much below their peak from ``OFF_START`` to ``OFF_END`` frames
after it (0.75-0.88 s: after the longest beep and its tail, before the next beep)."""
MAX_ONSETS: Final = 6
ATTACK: Final = 6
"""A rise of the tone this soon after another one on the same tone is the same onset..."""
REFRACTORY: Final = 30
"""...and of two beeps this close on the same tone only the fuller one is a beep."""
FULLER_DB: Final = 1.0
MIN_PULSE: Final = 3
HARMONIC_SLACK: Final = 2
"""Frames between a smoke/CO-band beep's onset and a 520 Hz beep's that make it a harmonic."""
TRAIN_DB: Final = 6.0
"""The beeps' bins this close to their level where a fourth beep would start: a beep train."""
MAX_BIN_SPREAD: Final = 2
LOW_BIN_SPREAD: Final = 1
BEEP_WAIT: Final = 4
"""Frames past the expected onset of a fourth beep before a T3 cycle is reported."""
DIP_DB: Final = 6.0
FLAT_DB: Final = 1.5
"""A chirp's tone is that of its last rise of more than this."""
CHIRP_MIN_WIDTH: Final = 3
CHIRP_MAX_WIDTH: Final = 16
CHIRP_MERGE: Final = 8
"""A peak on the tone starting this soon after the last one's start is the same chirp."""
CHIRP_LEVEL_SPREAD_DB: Final = 12.0
"""The four chirps' peaks are this close to each other: one sounder, one place."""
QUIET_DB: Final = 5.0
"""A peak on the tone more than this below the quietest chirp is quiet (a tail's ripple)."""
TAIL: Final = 16
"""A peak this soon after the last chirp ended is its reverberant tail, not another sound."""
_SNR_FULL_DB: Final = 20.0
_RING: Final = 8
_CHIRP_RING: Final = 16


@dataclass(frozen=True, slots=True)
class BeepTiming:
    """A three-beep pattern (T3, 520 Hz), in frames of 16 ms."""

    kind: DetectorKind
    period_min: int
    period_max: int
    period_nominal_ms: int
    period_spread: int
    """Largest difference of the two periods."""
    cycle_gap_max: int
    """A cycle starting at most this long after the previous one ended is its next cycle."""


@dataclass(frozen=True, slots=True)
class ChirpTiming:
    """The four-chirp pattern (T4), in frames of 16 ms."""

    kind: DetectorKind
    chirps: int
    period_min: int
    period_max: int
    period_nominal_ms: int
    jitter: float
    """Frames a chirp's time may stray from its cycle's regular grid (a reverberant room blurs
    where a chirp rises)."""
    quiet_before: int
    quiet_after: int
    cycle_gap_max: int


T3_TIMING: Final = BeepTiming("t3", 52, 73, 1000, 5, 156)
LF520_TIMING: Final = BeepTiming("lf520", 52, 73, 1000, 5, 156)
T4_TIMING: Final = ChirpTiming("t4", 4, 10, 17, 200, 2.5, 125, 188, 375)


@dataclass(frozen=True, slots=True)
class Detection:
    """One confirmed alarm cycle."""

    kind: DetectorKind
    confidence: float
    """In [0, 1], three decimals (the serial protocol's precision)."""
    onset_sample: int
    """Sample index (from the detector's start) where the cycle's first beep or chirp began."""
    confirmed_sample: int
    """Sample index at the end of the frame that confirmed the cycle."""
    tone_hz: int
    """Centre frequency of the first beep's or chirp's peak bin."""
    cycle: int
    """1 for the first cycle of an alarm, then 2, 3, ... for back-to-back cycles."""

    @property
    def onset_seconds(self) -> float:
        return self.onset_sample / SAMPLE_RATE

    @property
    def confirmed_seconds(self) -> float:
        return self.confirmed_sample / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class _Tone:
    bin: int
    alt: int
    """A partial's bin, 0 if none."""

    spread: int = MAX_BIN_SPREAD
    """Bins apart that are still this tone."""

    def same(self, other: _Tone) -> bool:
        """Whether two beeps sound one tone: a peak or partial of one near one of the other."""
        return any(
            a > 0 and b > 0 and abs(a - b) <= min(self.spread, other.spread)
            for a in (self.bin, self.alt)
            for b in (other.bin, other.alt)
        )


_Row = tuple[float, float, float, _Tone]
"""A frame of one tone: its level, its search band's level, its share of the context, its bins."""


@dataclass(frozen=True, slots=True)
class _Pulse:
    """A beep (start, end: frames) or a chirp (start: its time, end: its fall)."""

    start: int
    end: int
    tone: _Tone
    snr_db: float
    peak_db: float = FLOOR_DB


@dataclass(slots=True)
class _Candidate:
    """A complete cycle waiting for the silence that confirms it."""

    pulses: list[_Pulse]
    deadline: int
    """First frame (exclusive end) at which it is confirmed."""


def _error_pm(frames: int, nominal_ms: int) -> int:
    """Timing error in per mille of half the nominal duration, capped at 1000."""
    return min(1000, abs(frames * FRAME_MS - nominal_ms) * 2000 // nominal_ms)


def _strength_pm(pulses: list[_Pulse]) -> int:
    snr = sum(q.snr_db for q in pulses) / len(pulses)
    strength = min(max((snr - ON_MARGIN_DB) / (_SNR_FULL_DB - ON_MARGIN_DB), 0.0), 1.0)
    return int(strength * 1000)


def _periods(pulses: list[_Pulse]) -> list[int]:
    return [b.start - a.start for a, b in pairwise(pulses)]


def _periods_fit(periods: list[int], lo: int, hi: int, spread: int) -> bool:
    return all(lo <= p <= hi for p in periods) and max(periods) - min(periods) <= spread


def _on_grid(pulses: list[_Pulse], lo: int, hi: int, jitter: float) -> bool:
    """Whether the pulses' times lie on a regular grid: the least-squares period within
    [``lo``, ``hi``] frames and every time within ``jitter`` frames of the fitted line (exact
    rationals, as the firmware's integers)."""
    n = len(pulses)
    times = [q.start for q in pulses]
    period = Fraction(6 * sum((2 * i - n + 1) * t for i, t in enumerate(times)), n * (n * n - 1))
    mean = Fraction(sum(times), n)
    return lo <= period <= hi and all(
        abs(t - mean - Fraction(2 * i - n + 1, 2) * period) <= Fraction(jitter)
        for i, t in enumerate(times)
    )


def _recent(ring: deque[_Pulse], tone: _Tone, n: int) -> list[_Pulse]:
    """The newest ``n`` pulses of ``ring`` on ``tone``, oldest first."""
    out = [q for q in reversed(ring) if q.tone.same(tone)][:n]
    return out[::-1]


class _Cycles:
    """Numbers back-to-back cycles of one pattern."""

    def __init__(self, gap_max: int) -> None:
        self._gap_max = gap_max
        self._last_end: int | None = None
        self._last = 0

    def next(self, first_start: int, last_end: int) -> int:
        cycle = 1
        if self._last_end is not None and first_start - self._last_end <= self._gap_max:
            cycle = self._last + 1
        self._last_end, self._last = last_end, cycle
        return cycle


def _detection(
    kind: DetectorKind, pulses: list[_Pulse], frame: int, timing_pm: int, cycle: int
) -> Detection:
    conf_pm = min(
        1000, 400 + (300 * timing_pm + 300 * _strength_pm(pulses)) // 1000 + 100 * (cycle - 1)
    )
    return Detection(
        kind=kind,
        confidence=conf_pm / 1000,
        onset_sample=pulses[0].start * FRAME_SAMPLES,
        confirmed_sample=(frame + 1) * FRAME_SAMPLES,
        tone_hz=pulses[0].tone.bin * 125 // 2,
        cycle=cycle,
    )


class _BeepMatcher:
    """Three beeps in T3 rhythm on one tone, reported once no fourth one follows."""

    def __init__(self, timing: BeepTiming, shadow: _BeepMatcher | None = None) -> None:
        self.t = timing
        self.shadow = shadow
        """The 520 Hz beeps, whose square wave's harmonics fall in the smoke/CO tone's band."""
        self.ring: deque[_Pulse] = deque(maxlen=_RING)
        self.reported: list[_Pulse] = []
        """The beeps of the latest reported cycle."""

        self.candidate: _Candidate | None = None
        self._cycles = _Cycles(timing.cycle_gap_max)

    def closed(self, pulse: _Pulse) -> None:
        """A beep was heard (``start``: its onset)."""
        t = self.t
        earlier = _recent(self.ring, pulse.tone, 3)
        if earlier and pulse.start - earlier[-1].start < REFRACTORY:
            # Two rises of one beep, or a beep and a sound just before it: keep the fuller.
            if not _fuller(pulse, earlier[-1]):
                return
            if self.candidate is not None and earlier[-1] in self.candidate.pulses:
                self.candidate = None  # its last beep was the lesser of two: not a beep
            self.ring.remove(earlier[-1])
            earlier = _recent(self.ring, pulse.tone, 3)
        self.ring.append(pulse)
        if len(earlier) < 2:
            return
        beeps = [*earlier[-2:], pulse]
        periods = _periods(beeps)
        if not _periods_fit(periods, t.period_min, t.period_max, t.period_spread):
            return
        if len(earlier) == 3 and t.period_min <= beeps[0].start - earlier[0].start <= t.period_max:
            return  # the rhythm started earlier: a longer beep train, not this pattern

        self.candidate = _Candidate(beeps, pulse.start + max(periods) + BEEP_WAIT)

    def step(
        self, frame: int, onsets: list[_Onset], tri_db: npt.NDArray[np.float64]
    ) -> Detection | None:
        """``onsets``: the rises of the tone being watched; ``tri_db``: the frame's bin levels."""
        c = self.candidate
        if c is None:
            return None
        last = c.pulses[-1]
        soonest = last.start + min(_periods(c.pulses)) - self.t.period_spread
        if soonest <= frame:
            quietest = min(q.peak_db for q in c.pulses)
            if float(tri_db[last.tone.bin]) >= quietest - TRAIN_DB:
                # The beeps' bins sound again where a fourth beep would: tonal or not (clipped,
                # or through a phone's gain control, a beep's first frames may not be), it is
                # not the pause a T3 cycle needs.
                self.candidate = None
                return None
        for o in onsets:
            if soonest <= o.start < c.deadline and o.tone.same(last.tone):
                if o.on_frames >= MIN_PULSE:
                    self.candidate = None  # a fourth beep: a beep train
                    return None
                if frame - o.start < MIN_PULSE:
                    return None  # wait: it may become one
        if frame + 1 < c.deadline:
            return None
        shadow = self.shadow
        if shadow is not None:
            # A 520 Hz square wave's harmonics also beep here: that alarm is reported as lf520,
            # once. Wait for the 520 Hz beeps' own verdict; report T3 only if they have none.
            if shadow.candidate is not None and _coincide(shadow.candidate.pulses, c.pulses):
                return None
            if _coincide(shadow.reported, c.pulses):
                self.candidate = None
                return None
        self.candidate = None
        errors = [_error_pm(p, self.t.period_nominal_ms) for p in _periods(c.pulses)]
        timing_pm = 1000 - sum(errors) // len(errors)
        cycle = self._cycles.next(c.pulses[0].start, c.pulses[-1].start)
        self.reported = c.pulses
        return _detection(self.t.kind, c.pulses, frame, timing_pm, cycle)


def _fuller(a: _Pulse, b: _Pulse) -> bool:
    """Whether beep ``a`` is fuller than ``b``: more tonal frames in its first 0.43 s, or as
    many and ``FULLER_DB`` louder (two rises of one beep, alike, keep the first)."""
    wa, wb = a.end - a.start, b.end - b.start
    return wa > wb if wa != wb else a.peak_db > b.peak_db + FULLER_DB


def _coincide(a: list[_Pulse], b: list[_Pulse]) -> bool:
    """Whether two beep triples start together (within ``HARMONIC_SLACK`` frames each)."""
    return len(a) == len(b) and all(
        abs(p.start - q.start) <= HARMONIC_SLACK for p, q in zip(a, b, strict=True)
    )


def _loud(peak: _Pulse, chirps: list[_Pulse]) -> bool:
    """Whether a peak on the chirps' tone is loud enough to be a sound like theirs: within
    ``QUIET_DB`` of the quietest of them (not a reverberant tail's ripple)."""
    return (
        peak.tone.same(chirps[0].tone) and peak.peak_db >= min(q.peak_db for q in chirps) - QUIET_DB
    )


class _ChirpMatcher:
    """Four chirps in T4 rhythm on one tone, with quiet before and after."""

    def __init__(self, timing: ChirpTiming) -> None:
        self.t = timing
        self._ring: deque[_Pulse] = deque(maxlen=_CHIRP_RING)
        self._candidate: _Candidate | None = None
        self._cycles = _Cycles(timing.cycle_gap_max)

    def peak(self, chirp: _Pulse) -> None:
        """A peak of the tone's level ended (any width: a beep is a peak too)."""
        t = self.t
        if self._ring and self._ring[-1].tone.same(chirp.tone):
            last = self._ring[-1]
            if chirp.start - last.start < CHIRP_MERGE:
                # One chirp, split by a notch of the room's interference: one peak.
                self._ring.pop()
                louder = chirp if chirp.peak_db > last.peak_db else last
                chirp = _Pulse(last.start, chirp.end, louder.tone, louder.snr_db, louder.peak_db)
        c = self._candidate
        if c is not None and chirp.start >= c.pulses[-1].end + TAIL and _loud(chirp, c.pulses):
            self._candidate = None  # no pause after the four chirps
        earlier = _recent(self._ring, chirp.tone, t.chirps - 1)
        self._ring.append(chirp)
        if len(earlier) < t.chirps - 1:
            return
        chirps = [*earlier, chirp]
        if any(not CHIRP_MIN_WIDTH <= q.end - q.start <= CHIRP_MAX_WIDTH for q in chirps):
            return
        if not _on_grid(chirps, t.period_min, t.period_max, t.jitter):
            return
        bins = [q.tone.bin for q in chirps]
        if max(bins) - min(bins) > MAX_BIN_SPREAD:
            return  # one piezo sounds one pitch; speech's formants wander from peak to peak
        levels = [q.peak_db for q in chirps]
        if max(levels) - min(levels) > CHIRP_LEVEL_SPREAD_DB:
            return  # one sounder's chirps, not a knock's decaying echoes or a crash's shards
        first = chirps[0].start
        if any(first - t.quiet_before < q.start < first and _loud(q, chirps) for q in self._ring):
            return
        self._candidate = _Candidate(chirps, chirp.start + t.quiet_after)

    def step(self, frame: int, rising: _Pulse | None) -> Detection | None:
        """``rising``: a peak of the tone in progress, if any."""
        c = self._candidate
        if c is None or frame + 1 < c.deadline:
            return None
        if rising is not None and _loud(rising, c.pulses):
            return None  # a peak on the tone is still rising: wait for it
        self._candidate = None
        errors = [_error_pm(p, self.t.period_nominal_ms) for p in _periods(c.pulses)]
        timing_pm = 1000 - sum(errors) // len(errors)
        cycle = self._cycles.next(c.pulses[0].start, c.pulses[-1].start)
        return _detection(self.t.kind, c.pulses, frame, timing_pm, cycle)


@dataclass(slots=True)
class _Onset:
    """A sharp rise of the tone, being watched to see whether it is a beep."""

    start: int
    tone: _Tone
    peak_db: float
    on_frames: int = 0
    off_db: float = FLOOR_DB
    snr_sum: float = 0.0
    late_frames: int = 0


class _Track:
    """One tone: its noise floor, its beeps and (smoke/CO tone) its chirps."""

    def __init__(
        self, beeps: BeepTiming, chirps: ChirpTiming | None, shadow: _Track | None = None
    ) -> None:
        self._partials = chirps is not None
        self._floor = ON_MIN_DB
        self.beeps: _BeepMatcher = _BeepMatcher(beeps, None if shadow is None else shadow.beeps)
        self._chirps = None if chirps is None else _ChirpMatcher(chirps)
        self._history = [FLOOR_DB, FLOOR_DB]
        """The tone's level one and two frames ago."""

        self._onsets: list[_Onset] = []
        # The tone's level peak (chirp) being followed.
        self._rising = False
        self._peak_db = FLOOR_DB
        self._rise_at = 0
        self._peak_tone = _Tone(0, 0)
        self._peak_snr = 0.0
        self._valley_db = FLOOR_DB
        self._last_level = FLOOR_DB
        self._steepest = 0.0
        """The steepest one-frame rise since the valley: a chirp's time is where it rose."""

    def step(self, frame: int, row: _Row, tri_db: npt.NDArray[np.float64]) -> list[Detection]:
        """One frame: the tone's measures and every bin's level (``FrameFeatures.tri_db``)."""
        db, search_db, ratio, tone = row
        snr = db - self._floor
        tonal = (
            db >= ON_MIN_DB
            and snr >= ON_MARGIN_DB
            and ratio >= (HIGH_RATIO if self._partials else LOW_RATIO)
        )
        self._floor = min(self._floor + FLOOR_RISE_DB, search_db)
        rise = db - self._history[1]
        self._history = [db, self._history[0]]

        for o in list(self._onsets):
            k = frame - o.start
            level = float(tri_db[o.tone.bin])
            if k < ON_WINDOW:
                if tonal and tone.same(o.tone):
                    o.on_frames += 1
                    o.late_frames += k >= LATE_START
                    o.snr_sum += snr
                    o.peak_db = max(o.peak_db, level)
            elif k >= OFF_START:
                o.off_db = max(o.off_db, level)
                if k == OFF_END - 1:
                    self._onsets.remove(o)
                    if (
                        o.on_frames >= ON_FRAMES
                        and o.late_frames >= LATE_FRAMES
                        and o.peak_db - o.off_db >= OFF_DB
                    ):
                        snr_mean = o.snr_sum / o.on_frames
                        self.beeps.closed(
                            _Pulse(o.start, o.start + o.on_frames, o.tone, snr_mean, o.peak_db)
                        )
        if (
            tonal
            and rise >= ONSET_DB
            and len(self._onsets) < MAX_ONSETS
            and not any(o.tone.same(tone) and frame - o.start < ATTACK for o in self._onsets)
        ):
            self._onsets.append(_Onset(frame, tone, db, 1, FLOOR_DB, snr))

        found: list[Detection] = []
        d = self.beeps.step(frame, self._onsets, tri_db)
        if d is not None:
            found.append(d)
        if self._chirps is not None:
            d = self._chirp_step(self._chirps, frame, search_db if tonal else FLOOR_DB, tone, snr)
            if d is not None:
                found.append(d)
        return found

    def _chirp_step(
        self, m: _ChirpMatcher, frame: int, level: float, tone: _Tone, snr: float
    ) -> Detection | None:
        if self._rising:
            if level > self._peak_db:
                if level > self._peak_db + FLAT_DB:
                    self._peak_tone = tone
                self._peak_db, self._peak_snr = level, snr
            elif level <= self._peak_db - DIP_DB:
                m.peak(_Pulse(self._rise_at, frame, self._peak_tone, self._peak_snr, self._peak_db))
                self._rising, self._valley_db = False, level
                self._steepest, self._rise_at = 0.0, frame
        else:
            step = level - self._last_level
            if level < self._valley_db:
                self._valley_db, self._steepest, self._rise_at = level, 0.0, frame
            elif step > self._steepest:
                self._steepest, self._rise_at = step, frame
            if level > FLOOR_DB and level >= self._valley_db + DIP_DB:
                self._rising = True
                self._peak_db, self._peak_tone, self._peak_snr = level, tone, snr
        self._last_level = level
        rising = None
        if self._rising:
            rising = _Pulse(self._rise_at, frame, self._peak_tone, 0.0, self._peak_db)
        return m.step(frame, rising)


class PatternDetector:
    """Streaming T3/T4/520 Hz detector; one instance per audio stream.

    ``feed`` takes 16 kHz mono blocks of any length: int16 samples, or float samples in
    full-scale units (-1.0..1.0). Samples that do not fill a frame are kept for the next call.
    """

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float64)
        self._frame = 0
        self._low = _Track(LF520_TIMING, None)
        self._high = _Track(T3_TIMING, T4_TIMING, self._low)

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
        f = analyse_frames(x[:whole])
        high = _rows(f.high, f.high.ratio, MAX_BIN_SPREAD)
        low = _rows(f.low, f.low.main_ratio, LOW_BIN_SPREAD)
        found: list[Detection] = []
        for i, (h, lo) in enumerate(zip(high, low, strict=True)):
            found += self._high.step(self._frame, h, f.tri_db[i])
            found += self._low.step(self._frame, lo, f.tri_db[i])
            self._frame += 1
        return found


def _rows(t: ToneFeatures, ratios: npt.NDArray[np.float64], spread: int) -> list[_Row]:
    return [
        (db, search, ratio, _Tone(b, alt, spread))
        for db, search, ratio, b, alt in zip(
            t.db.tolist(),
            t.search_db.tolist(),
            ratios.tolist(),
            t.bin.tolist(),
            t.alt_bin.tolist(),
            strict=True,
        )
    ]
