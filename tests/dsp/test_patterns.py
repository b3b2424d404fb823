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
    ("signal", "kind", "period_s"),
    [(synth.t3(3), "t3", 4.0), (synth.t4(2), "t4", 5.7), (synth.lf520(2), "lf520", 4.0)],
)
def test_detects_each_cycle_with_its_onset(signal: np.ndarray, kind: str, period_s: float) -> None:
    found = _run(_with_noise(signal))
    cycles = round(signal.size / 16000 / period_s)
    assert [d.kind for d in found] == [kind] * cycles
    assert [d.cycle for d in found] == list(range(1, cycles + 1))
    for i, d in enumerate(found):
        assert abs(d.onset_seconds - (0.7 + i * period_s)) <= 0.032
        assert d.confirmed_seconds > d.onset_seconds
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


@pytest.mark.parametrize("tone_hz", [2500.0, 3100.0, 3500.0, 3950.0])
def test_accepts_the_whole_tone_band(tone_hz: float) -> None:
    assert [d.kind for d in _run(_with_noise(synth.t3(1, tone_hz=tone_hz)))] == ["t3"]


@pytest.mark.parametrize("tone_hz", [1000.0, 2000.0, 4500.0, 6000.0])
def test_ignores_tones_outside_the_band(tone_hz: float) -> None:
    assert _run(_with_noise(synth.t3(2, tone_hz=tone_hz))) == []


def test_ignores_lookalikes() -> None:
    train = synth.pattern(((0.5, 0.5),), 10)  # a continuous beeper
    slow = synth.pattern(((1.0, 1.0), (1.0, 1.0), (1.0, 3.0)), 2)  # T3 rhythm, twice too slow
    fast_four = synth.pattern(((0.1, 0.1),) * 3 + ((0.1, 0.8),), 6)  # alarm-clock beeps
    steady = synth.pattern(((8.0, 2.0),), 1)
    for signal in (train, slow, fast_four, steady):
        assert _run(_with_noise(signal, tail_s=4.0)) == []


def test_pulses_on_different_tones_are_not_one_pattern() -> None:
    parts = [synth.pattern(((0.5, 0.5),), 1, tone_hz=hz) for hz in (2600.0, 3100.0, 3700.0)]
    assert _run(_with_noise(np.concatenate([*parts, np.zeros(32000)]))) == []
