"""Realistic smoke and CO alarm recordings for tests and benches, synthesised.

A textbook T3 at 3.1 kHz in white noise is not what a phone on a table hears. Each recording
here varies what real alarms and rooms vary:

* the sounder: tone anywhere in 2.0-4.5 kHz (the 520 Hz alarm within its +-10 %), harmonics
  (-28 to -8 dB) and, on three in ten (combination alarms), a second non-harmonic tone 1.25-1.6
  times higher at -20 to -3 dB; piezo attack and ring-down; a drift of the tone over a beep of
  up to 1 %;
* timing within NFPA 72 (T3: 0.5 s on, 0.5 s off, then 1.5 s off, each +-10 %; T4: 0.1 s on,
  0.1 s off, four times, then 5 s off, each +-10 %): one clock error scales every phase of an
  alarm, the driver skews its duty cycle, and each phase jitters a little;
* the room: an image-source simulation (pyroomacoustics ``ShoeBox``) of one of several rooms,
  with a reverberation time drawn per room, the sounder on the ceiling and the microphone
  somewhere in the room at table or shelf height (distance and direct-to-reverberant ratio
  follow from that);
* competing household sound from ``../shared/data/dev-audio/background``, at an SNR measured
  as the received alarm's power during its beeps over the background's mean power;
* the microphone: half the recordings through a phone's automatic gain control (fast attack,
  slow release: the room gets louder between beeps), some driven into clipping (clipped at 48 kHz
  and decimated, as a phone's converter does).

Fragments are a few beeps cut out of a T3 alarm; lookalikes are household beepers with other
rhythms. Everything is deterministic for a given ``numpy.random.Generator``.
"""

from __future__ import annotations

import csv
import functools
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pyroomacoustics as pra
from scipy import signal as sps

from edge.dsp.reference import SAMPLE_RATE

__all__ = [
    "DEV_AUDIO",
    "KINDS",
    "LOOKALIKES",
    "ROOMS",
    "SUBSET_SNRS",
    "Beep",
    "Microphone",
    "Recording",
    "RoomShape",
    "Sounder",
    "background_pool",
    "fragment",
    "lookalike",
    "realistic",
    "sounder",
    "subset",
]

Float64Array = npt.NDArray[np.float64]
Kind = Literal["t3", "t4", "lf520"]
KINDS: Final[tuple[Kind, ...]] = ("t3", "t4", "lf520")
DEV_AUDIO: Final = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dev-audio"

_T3: Final = ((0.5, 0.5), (0.5, 0.5), (0.5, 1.5))
_T4: Final = ((0.1, 0.1), (0.1, 0.1), (0.1, 0.1), (0.1, 5.0))
_TOLERANCE: Final = 0.10
"""NFPA 72: every on and off phase of T3 and T4 within +-10 % of nominal."""


@dataclass(frozen=True, slots=True)
class Beep:
    """One on-phase, in seconds from the start of the recording (at the microphone)."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Sounder:
    """One alarm device: its tone, partials, envelope and clock."""

    kind: Kind
    tone_hz: float
    partials: tuple[tuple[float, float], ...]
    """(frequency / tone_hz, amplitude relative to the tone)."""
    attack_s: float
    decay_s: float
    drift: float
    """Relative change of the tone over one beep (a sagging supply)."""
    clock: float
    """Scale of every phase (the alarm's oscillator error)."""
    skew_s: float
    """Added to every on-phase and taken from the off-phase after it (the driver's duty cycle)."""


@dataclass(frozen=True, slots=True)
class RoomShape:
    name: str
    dims: tuple[float, float, float]
    rt60_s: tuple[float, float]


ROOMS: Final = (
    RoomShape("bedroom", (3.2, 3.8, 2.5), (0.3, 0.5)),
    RoomShape("kitchen", (3.0, 4.2, 2.5), (0.4, 0.7)),
    RoomShape("living room", (5.0, 6.5, 2.6), (0.4, 0.7)),
    RoomShape("hallway", (1.4, 7.0, 2.5), (0.5, 0.8)),
    RoomShape("open plan", (8.0, 10.0, 2.7), (0.5, 0.8)),
    RoomShape("bathroom", (2.0, 2.6, 2.4), (0.6, 1.0)),
)
"""Furnished homes: 0.3-0.8 s of reverberation (bathrooms up to 1 s), as the image-source
simulation measures it."""


@dataclass(frozen=True, slots=True)
class Microphone:
    """What stands between the air and the samples."""

    agc: bool
    """A phone's automatic gain control."""
    clip_db: float | None
    """How far the alarm's peaks are driven past full scale, or None for no clipping."""


@dataclass(frozen=True, slots=True)
class Recording:
    audio: npt.NDArray[np.int16]
    kind: str
    """t3, t4, lf520, fragment or a lookalike's name."""
    beeps: tuple[Beep, ...]
    snr_db: float
    tone_hz: float
    room: str
    rt60_s: float
    distance_m: float
    mic: Microphone
    complete_cycles: int
    """Whole cycles of the pattern in the recording (a fragment may hold one)."""

    @property
    def first_beep_s(self) -> float:
        return self.beeps[0].start

    def describe(self) -> str:
        mic = ("agc" if self.mic.agc else "flat") + (
            f", clipped {self.mic.clip_db:.0f} dB" if self.mic.clip_db is not None else ""
        )
        return (f"{self.kind} {self.tone_hz:.0f} Hz, {self.snr_db:+.0f} dB SNR, {self.room} "
                f"RT60 {self.rt60_s:.2f} s at {self.distance_m:.1f} m, {mic}")  # fmt: skip


# -- the sounder -------------------------------------------------------------------------------
def sounder(kind: Kind, rng: np.random.Generator) -> Sounder:
    """A random alarm device of ``kind``."""
    if kind == "lf520":
        tone = float(rng.uniform(520.0 * 0.9, 520.0 * 1.1))
        # The 520 Hz sounder is a square wave: odd harmonics, filtered by the speaker.
        partials = tuple(
            (float(k), float(10 ** (rng.uniform(-4.0, 0.0) / 20) / k))
            for k in range(3, 16, 2)
            if k * tone < 7800.0
        )
    else:
        tone = float(rng.uniform(2000.0, 4500.0))
        harmonics = [
            (float(k), float(10 ** (rng.uniform(-28.0, -8.0) / 20)))
            for k in (2, 3)
            if k * tone < 7800.0
        ]
        extra: list[tuple[float, float]] = []
        if rng.random() < 0.3:  # a combination alarm's second tone
            ratio = float(rng.uniform(1.25, 1.6))
            if ratio * tone < 7800.0:
                extra.append((ratio, float(10 ** (rng.uniform(-20.0, -3.0) / 20))))
        partials = tuple(harmonics + extra)
    skew = 0.03 if kind != "t4" else 0.01
    return Sounder(
        kind=kind,
        tone_hz=tone,
        partials=partials,
        attack_s=float(rng.uniform(0.002, 0.015)),
        decay_s=float(rng.uniform(0.005, 0.04)),
        drift=float(rng.uniform(-0.01, 0.01)),
        clock=float(rng.uniform(0.92, 1.08)),
        skew_s=float(rng.uniform(-skew, skew)),
    )


def _phases(s: Sounder, cycles: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(on, off) seconds of every beep, each within NFPA 72's +-10 % of nominal."""
    out: list[tuple[float, float]] = []
    for _ in range(cycles):
        for on, off in _T4 if s.kind == "t4" else _T3:
            jitter = 0.003 if s.kind == "t4" else 0.008
            got = []
            for nominal, extra in ((on, s.skew_s), (off, -s.skew_s)):
                value = nominal * s.clock + extra + float(rng.normal(0.0, jitter))
                got.append(min(max(value, nominal * (1 - _TOLERANCE)), nominal * (1 + _TOLERANCE)))
            out.append((got[0], got[1]))
    return out


def _beep(s: Sounder, n: int, rng: np.random.Generator) -> Float64Array:
    t = np.arange(n) / SAMPLE_RATE
    f = s.tone_hz * (1.0 + s.drift * t / max(t[-1], 1e-9))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi)
    x = np.sin(phase)
    for ratio, amp in s.partials:
        x = x + amp * np.sin(ratio * phase + rng.uniform(0, 2 * np.pi))
    attack = 1.0 - np.exp(-t / s.attack_s)
    out: Float64Array = x * attack
    return out


def _dry(
    s: Sounder, phases: Sequence[tuple[float, float]], rng: np.random.Generator
) -> tuple[Float64Array, list[Beep]]:
    """The sounder's output (ring-down after every beep), and its beeps."""
    ring = round(6 * s.decay_s * SAMPLE_RATE)
    starts = np.cumsum([0.0] + [on + off for on, off in phases])
    total = round(starts[-1] * SAMPLE_RATE) + round(phases[-1][0] * SAMPLE_RATE) + ring
    out = np.zeros(total)
    beeps: list[Beep] = []
    tail = np.exp(-np.arange(ring) / (s.decay_s * SAMPLE_RATE))
    for at, (on, _) in zip(starts.tolist(), phases, strict=False):
        a = round(at * SAMPLE_RATE)
        n = round(on * SAMPLE_RATE)
        tone = _beep(s, n + ring, rng)
        tone[n:] *= tail
        out[a : a + n + ring] += tone
        beeps.append(Beep(at, at + on))
    return out, beeps


# -- the room ----------------------------------------------------------------------------------
@functools.cache
def _rir(room_index: int, seed: int) -> tuple[Float64Array, float, float, int]:
    """(impulse response, RT60 drawn, source-microphone distance, direct-path delay in samples)
    of one sounder and microphone placement in ``ROOMS[room_index]``."""
    shape = ROOMS[room_index]
    rng = np.random.default_rng(seed)
    dims = np.array(shape.dims)
    rt60 = float(rng.uniform(*shape.rt60_s))
    margin = 0.3
    source = [float(rng.uniform(margin, d - margin)) for d in dims[:2]] + [dims[2] - 0.05]
    mic = [float(rng.uniform(margin, d - margin)) for d in dims[:2]] + [
        float(rng.uniform(0.7, 1.6))
    ]
    # Sabine's formula gives the absorption for a reverberation time; the image-source room it
    # builds rings longer than that, so aim once more with the measured error taken out.
    target = rt60
    for _ in range(2):
        absorption, max_order = pra.inverse_sabine(target, dims.tolist())
        room = pra.ShoeBox(dims.tolist(), fs=SAMPLE_RATE, materials=pra.Material(absorption),
                           max_order=min(int(max_order), 100), air_absorption=True)  # fmt: skip
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        measured = float(room.measure_rt60()[0][0])
        target = min(target * rt60 / measured, 0.99 * target)
    rt60 = measured
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    distance = float(np.linalg.norm(np.array(source) - np.array(mic)))
    delay = int(np.argmax(np.abs(rir)))
    return rir / float(np.max(np.abs(rir))), rt60, distance, delay


# -- the microphone ----------------------------------------------------------------------------
def _agc(x: Float64Array, rng: np.random.Generator) -> Float64Array:
    """A phone's AGC: gain towards -20 dBFS, falling fast (10 ms) when the sound gets louder and
    rising slowly (6-20 dB/s, as WebRTC's adaptive digital gain does) when it gets quieter."""
    hop = SAMPLE_RATE // 250  # 4 ms
    n = x.size // hop
    env = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    want = np.clip(-20.0 - 20 * np.log10(env), -30.0, float(rng.uniform(20.0, 35.0)))
    fall = math.exp(-hop / (0.010 * SAMPLE_RATE))
    rise = float(rng.uniform(6.0, 20.0)) * hop / SAMPLE_RATE
    gain_db = np.empty(n)
    g = float(want[0])
    for i, w in enumerate(want.tolist()):
        g = fall * g + (1 - fall) * w if w < g else min(w, g + rise)
        gain_db[i] = g
    per_sample = np.interp(np.arange(x.size), np.arange(n) * hop + hop / 2, gain_db)
    out: Float64Array = x * 10 ** (per_sample / 20)
    return out


def _clip(x: Float64Array, over_db: float, peak: float) -> Float64Array:
    """Drive ``peak`` to ``over_db`` past full scale and clip at 48 kHz, then decimate."""
    up = sps.resample_poly(x * (10 ** (over_db / 20) / peak), 3, 1)
    down: Float64Array = sps.resample_poly(np.clip(up, -1.0, 1.0), 1, 3)[: x.size]
    return down


# -- background --------------------------------------------------------------------------------
def background_pool(root: Path = DEV_AUDIO) -> list[Float64Array]:
    """The dev-audio ``background`` clips as floats (raises FileNotFoundError if absent)."""
    with (root / "meta.csv").open(newline="") as handle:
        paths = [root / r["path"] for r in csv.DictReader(handle) if r["category"] == "background"]
    out: list[Float64Array] = []
    for path in sorted(paths):
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                raise ValueError(f"{path}: expected 16 kHz mono 16-bit")
            raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        out.append(raw.astype(np.float64) / 32768.0)
    return out


def _background(pool: Sequence[Float64Array], n: int, rng: np.random.Generator) -> Float64Array:
    parts: list[Float64Array] = []
    total = 0
    while total < n:
        clip = pool[int(rng.integers(len(pool)))]
        parts.append(clip / (np.sqrt(np.mean(clip**2)) + 1e-9))  # household level varies less
        total += clip.size
    bed = np.concatenate(parts)[:n]
    out: Float64Array = bed * 10 ** (rng.uniform(-50.0, -30.0) / 20)
    return out


# -- putting it together -----------------------------------------------------------------------
def _render(
    dry: Float64Array,
    beeps: Sequence[Beep],
    snr_db: float,
    pool: Sequence[Float64Array],
    rng: np.random.Generator,
    *,
    kind: str,
    tone_hz: float,
    complete_cycles: int,
    lead_s: float | None = None,
    tail_s: float = 5.0,
) -> Recording:
    room_index = int(rng.integers(len(ROOMS)))
    rir, rt60, distance, delay = _rir(room_index, int(rng.integers(12)))
    wet = sps.fftconvolve(dry, rir)
    lead = round((rng.uniform(2.0, 6.0) if lead_s is None else lead_s) * SAMPLE_RATE)
    n = lead + wet.size + round(tail_s * SAMPLE_RATE)
    bed = _background(pool, n, rng)
    shift = (lead + delay) / SAMPLE_RATE
    arrived = tuple(Beep(b.start + shift, b.end + shift) for b in beeps)
    mask = np.zeros(wet.size, dtype=bool)
    for b in beeps:
        mask[round(b.start * SAMPLE_RATE) + delay : round(b.end * SAMPLE_RATE) + delay] = True
    p_alarm = float(np.mean(wet[mask] ** 2))
    gain = math.sqrt(float(np.mean(bed**2)) * 10 ** (snr_db / 10) / p_alarm)
    x = bed.copy()
    x[lead : lead + wet.size] += gain * wet
    agc = bool(rng.random() < 0.5)
    clip_db = float(rng.uniform(1.0, 9.0)) if rng.random() < 0.25 else None
    mic = Microphone(agc=agc, clip_db=clip_db)
    if mic.agc:
        x = _agc(x, rng)
    peak = float(np.max(np.abs(x)))
    if mic.clip_db is not None:
        x = _clip(x, mic.clip_db, peak)
    elif peak > 0.99:
        x *= 0.99 / peak
    audio = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    return Recording(audio, kind, arrived, snr_db, tone_hz, ROOMS[room_index].name, rt60,
                     distance, mic, complete_cycles)  # fmt: skip


def realistic(
    kind: Kind,
    snr_db: float,
    pool: Sequence[Float64Array],
    rng: np.random.Generator,
    cycles: int = 2,
) -> Recording:
    """``cycles`` cycles of a random ``kind`` alarm in a random room and household."""
    s = sounder(kind, rng)
    phases = _phases(s, cycles, rng)
    dry, beeps = _dry(s, phases, rng)
    return _render(dry, beeps, snr_db, pool, rng, kind=kind, tone_hz=s.tone_hz,
                   complete_cycles=cycles)  # fmt: skip


def fragment(
    n_beeps: int,
    snr_db: float,
    pool: Sequence[Float64Array],
    rng: np.random.Generator,
    first: int | None = None,
) -> Recording:
    """``n_beeps`` consecutive beeps cut out of a T3 alarm, starting at beep ``first`` (0, 1 or 2
    of a cycle; random if None). It holds a complete cycle only if it holds all three beeps of
    one cycle."""
    s = sounder("t3", rng)
    start = int(rng.integers(3)) if first is None else first
    cycles = (start + n_beeps + 2) // 3
    phases = _phases(s, cycles, rng)[start : start + n_beeps]
    on, _ = phases[-1]
    phases[-1] = (on, 0.0)  # the cut: what follows is the room
    dry, beeps = _dry(s, phases, rng)
    complete = sum(1 for c in range(cycles) if start <= 3 * c and 3 * c + 3 <= start + n_beeps)
    return _render(dry, beeps, snr_db, pool, rng, kind="fragment", tone_hz=s.tone_hz,
                   complete_cycles=complete)  # fmt: skip


LOOKALIKES: Final = (
    "beeper",  # a continuous 0.5 s on / 0.5 s off beeper (a freezer door, a reversing truck)
    "slow_t3",  # the T3 rhythm at half speed
    "fast_t3",  # the T3 rhythm at double speed
    "clock_fours",  # an alarm clock: four 0.1 s beeps, again every second
    "clock_pairs",  # two 0.2 s beeps every 2 s
    "microwave",  # three 0.25 s beeps, 0.25 s apart
    "long_tone",  # a tone held for seconds (a kettle whistle)
    "two_tone",  # the T3 rhythm, but every beep on another tone (a melody)
)


def lookalike(
    name: str, snr_db: float, pool: Sequence[Float64Array], rng: np.random.Generator
) -> Recording:
    """A household beeper that is neither T3, T4 nor 520 Hz, through the same room and mic."""
    s = replace(sounder("t3", rng), clock=1.0, skew_s=0.0)
    seq: list[tuple[float, float]]
    if name == "beeper":
        seq = [(0.5, 0.5)] * int(rng.integers(5, 12))
    elif name == "slow_t3":
        seq = [(1.0, 1.0), (1.0, 1.0), (1.0, 3.0)] * 2
    elif name == "fast_t3":
        seq = [(0.25, 0.25), (0.25, 0.25), (0.25, 0.75)] * 3
    elif name == "clock_fours":
        seq = [(0.1, 0.1), (0.1, 0.1), (0.1, 0.1), (0.1, 0.5)] * int(rng.integers(3, 10))
    elif name == "clock_pairs":
        seq = [(0.2, 0.2), (0.2, 1.6)] * 4
    elif name == "microwave":
        seq = [(0.25, 0.25)] * 3
    elif name == "long_tone":
        seq = [(float(rng.uniform(2.0, 8.0)), 0.0)]
    elif name == "two_tone":
        parts = []
        for i, (on, off) in enumerate([*_T3, *_T3]):
            t = replace(s, tone_hz=s.tone_hz * (1.0, 1.3, 0.8)[i % 3])
            d, _ = _dry(t, [(on, off)], rng)
            parts.append(d[: round((on + off) * SAMPLE_RATE)])
        dry = np.concatenate(parts)
        beeps = [Beep(0.0, dry.size / SAMPLE_RATE)]
        return _render(dry, beeps, snr_db, pool, rng, kind=name, tone_hz=s.tone_hz,
                       complete_cycles=0)  # fmt: skip
    else:
        raise ValueError(f"unknown lookalike {name!r}; expected one of {LOOKALIKES}")
    dry, beeps = _dry(s, seq, rng)
    return _render(dry, beeps, snr_db, pool, rng, kind=name, tone_hz=s.tone_hz,
                   complete_cycles=0)  # fmt: skip


SUBSET_SNRS: Final = (0.0, 10.0, 20.0)


@functools.cache
def subset(per_snr: int = 4) -> tuple[Recording, ...]:
    """A small fixed set for tests: ``per_snr`` alarms of each type at 0, 10 and 20 dB, one T3
    fragment of each length 1-5 at 10 dB (first beep 0, 1, 2, 0, 1 of a cycle) and every
    lookalike at 10 dB. Raises FileNotFoundError without the dev-audio set."""
    pool = background_pool()
    out = [
        realistic(kind, snr, pool, np.random.default_rng(7_000 + 100 * k + 10 * s + i))
        for k, kind in enumerate(KINDS)
        for s, snr in enumerate(SUBSET_SNRS)
        for i in range(per_snr)
    ]
    out += [
        fragment(n, 10.0, pool, np.random.default_rng(8_000 + n), first=(n - 1) % 3)
        for n in range(1, 6)
    ]
    out += [
        lookalike(name, 10.0, pool, np.random.default_rng(9_000 + j))
        for j, name in enumerate(LOOKALIKES)
    ]
    return tuple(out)
