"""Synthetic alarms have NFPA timing, and the mixer hits the requested SNR."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from edge.dsp import synth
from edge.dsp.reference import SAMPLE_RATE


def _runs(signal: np.ndarray) -> list[tuple[bool, float]]:
    mask = synth.active_mask(signal)
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), mask.size]
    runs = [(bool(mask[a]), (b - a) / SAMPLE_RATE) for a, b in pairwise(bounds)]
    return [r for r in runs if r[1] >= 0.001]  # a tone starting at a zero crossing


def test_t3_timing() -> None:
    runs = _runs(synth.t3(1))
    assert [on for on, _ in runs] == [True, False] * 3
    assert [round(d, 2) for _, d in runs] == [0.5, 0.5, 0.5, 0.5, 0.5, 1.5]


def test_t4_timing() -> None:
    runs = _runs(synth.t4(1))
    assert [round(d, 2) for _, d in runs] == [0.1] * 7 + [5.0]


def test_lf520_is_a_square_wave_at_520_hz() -> None:
    x = synth.lf520(1)[:8000]
    spectrum = np.abs(np.fft.rfft(x))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / x.size
    assert abs(peak_hz - 520) < 3
    third = spectrum[round(1560 * x.size / SAMPLE_RATE)]
    assert 0.25 < third / spectrum.max() < 0.4  # odd harmonics at 1/3, 1/5, ...


@pytest.mark.parametrize("snr_db", [0.0, 5.0, 20.0])
def test_mix_at_snr(snr_db: float) -> None:
    rng = np.random.default_rng(1)
    background = 0.05 * rng.standard_normal(12 * SAMPLE_RATE)
    signal = synth.t3(2)
    mix = synth.mix_at_snr(signal, background, snr_db, offset=1000)
    added = mix[1000 : 1000 + signal.size] - background[1000 : 1000 + signal.size]
    mask = synth.active_mask(signal)
    measured = 10 * np.log10(np.mean(added[mask] ** 2) / np.mean(background**2))
    assert abs(measured - snr_db) < 0.01


def test_mix_scales_down_instead_of_clipping() -> None:
    background = 0.9 * np.ones(10 * SAMPLE_RATE)
    mix = synth.mix_at_snr(synth.t3(2), background, 20.0)
    assert np.max(np.abs(mix)) <= 0.99 + 1e-12
    with pytest.raises(ValueError, match="fit"):
        synth.mix_at_snr(synth.t3(2), background[:100], 0.0)
