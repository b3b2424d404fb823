"""The streaming pattern detector on clean synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from edge.dsp import synth
from edge.dsp.patterns import Detection, PatternDetector


def _with_noise(signal: np.ndarray, lead_s: float = 0.7, tail_s: float = 0.5) -> np.ndarray:
    audio = np.concatenate([np.zeros(int(lead_s * 16000)), signal, np.zeros(int(tail_s * 16000))])
    return audio + 0.003 * np.random.default_rng(3).standard_normal(audio.size)


def _run(audio: np.ndarray, block: int | None = None) -> list[Detection]:
    detector = PatternDetector()
    if block is None:
        return detector.feed(audio)
    out: list[Detection] = []
    for i in range(0, audio.size, block):
        out += detector.feed(audio[i : i + block])
    return out


@pytest.mark.parametrize(
    ("signal", "kind", "period_s", "confirm_s"),
    [
        (synth.t3(3), "t3", 4.0, 3.0),  # the third beep's onset + one period
        (synth.t4(2), "t4", 5.7, 3.6),  # the fourth chirp's rise + 3 s of its pause
        (synth.lf520(2), "lf520", 4.0, 3.0),
    ],
)
def test_detects_each_cycle_with_its_onset(
    signal: np.ndarray, kind: str, period_s: float, confirm_s: float
) -> None:
    found = _run(_with_noise(signal))
    cycles = round(signal.size / 16000 / period_s)
    assert [d.kind for d in found] == [kind] * cycles  # no T3 from the 520 Hz wave's harmonics
    assert [d.cycle for d in found] == list(range(1, cycles + 1))
    for i, d in enumerate(found):
        assert abs(d.onset_seconds - (0.7 + i * period_s)) <= 0.032
        assert -0.001 <= d.confirmed_seconds - d.onset_seconds - confirm_s <= 0.12
        assert 0.4 <= d.confidence <= 1.0
    assert found[-1].confidence >= found[0].confidence


@pytest.mark.parametrize("block", [1, 100, 1600, 4001])
def test_block_size_does_not_matter(block: int) -> None:
    audio = _with_noise(synth.t3(2))
    assert _run(audio, block) == _run(audio)


def test_int16_input_gives_the_same_answer() -> None:
    audio = _with_noise(synth.t4(1))
    as_int = synth.to_int16(audio)
    assert _run(as_int) == _run(as_int.astype(np.float32) / 32768.0)


@pytest.mark.parametrize("tone_hz", [2000.0, 2160.0, 3100.0, 3950.0, 4500.0])
def test_accepts_the_whole_tone_band(tone_hz: float) -> None:
    assert [d.kind for d in _run(_with_noise(synth.t3(1, tone_hz=tone_hz)))] == ["t3"]


@pytest.mark.parametrize("tone_hz", [1000.0, 1700.0, 4800.0, 6000.0])
def test_ignores_tones_outside_the_band(tone_hz: float) -> None:
    assert _run(_with_noise(synth.t3(2, tone_hz=tone_hz))) == []


def test_a_combination_alarm_whose_partial_is_sometimes_louder() -> None:
    """2.16 kHz with a 3 kHz partial; on every other beep the partial is the louder (as a room
    can make it): one tone all the same."""
    beeps = []
    for i in range(3):
        a, b = (0.3, 0.2) if i % 2 == 0 else (0.15, 0.3)
        tone = a * synth.sine(2160.0, 8000) + b * synth.sine(3000.0, 8000)
        off = 8000 if i < 2 else 24000
        beeps += [tone * synth.pattern(((0.5, 0.0),), 1, carrier=np.ones(8000), amplitude=1.0),
                  np.zeros(off)]  # fmt: skip
    found = _run(_with_noise(np.concatenate(beeps), tail_s=2.0))
    assert [(d.kind, d.tone_hz) for d in found] == [("t3", 2187)]


def test_ignores_lookalikes() -> None:
    train = synth.pattern(((0.5, 0.5),), 10)  # a continuous beeper
    slow = synth.pattern(((1.0, 1.0), (1.0, 1.0), (1.0, 3.0)), 2)  # T3 rhythm, twice too slow
    fast_four = synth.pattern(((0.1, 0.1),) * 3 + ((0.1, 0.8),), 6)  # alarm-clock beeps
    steady = synth.pattern(((8.0, 2.0),), 1)
    for signal in (train, slow, fast_four, steady):
        assert _run(_with_noise(signal, tail_s=4.0)) == []


@pytest.mark.parametrize("beeps", [1, 2])
def test_t3_beeps_chopped_into_chirps_are_not_co(beeps: int) -> None:
    """T4 cannot be built from T3 beeps: each 0.5 s beep chopped into four 0.1 s pieces (a
    fading or gated recording) is a beep's length of sound, not four chirps and a pause."""
    chopped = synth.pattern(((0.1, 0.033),) * 3 + ((0.1, 0.5),), beeps)
    assert [d.kind for d in _run(_with_noise(chopped, tail_s=5.0))] != ["t4"] * beeps


def test_pulses_on_different_tones_are_not_one_pattern() -> None:
    parts = [synth.pattern(((0.5, 0.5),), 1, tone_hz=hz) for hz in (2600.0, 3100.0, 3700.0)]
    assert _run(_with_noise(np.concatenate([*parts, np.zeros(32000)]))) == []
