"""The floating-point frame analysis: levels, band placement, tone measures."""

from __future__ import annotations

import numpy as np
import pytest

from edge.dsp.reference import (
    BAND_EDGES_HZ,
    FLOOR_DB,
    FRAME_SAMPLES,
    N_BANDS,
    analyse_frames,
    to_float,
)
from edge.dsp.synth import sine, square


@pytest.mark.parametrize("band", range(N_BANDS))
def test_a_sine_lands_in_its_band_at_its_level(band: int) -> None:
    lo, hi = BAND_EDGES_HZ[band]
    f = analyse_frames(0.5 * sine((lo + hi) / 2, 4 * FRAME_SAMPLES))
    expected = 10 * np.log10(0.5**2 / 2)  # -9.03 dBFS
    np.testing.assert_allclose(f.level_db, expected, atol=0.05)
    np.testing.assert_allclose(f.bands_db[:, band], expected, atol=0.3)
    assert np.all(np.argmax(f.bands_db, axis=1) == band)


def test_noise_band_powers_add_up_to_the_level() -> None:
    x = np.random.default_rng(0).standard_normal(64 * FRAME_SAMPLES) * 0.1
    f = analyse_frames(x)
    total = 10 * np.log10(np.sum(10 ** (f.bands_db / 10), axis=1))
    assert abs(float(np.mean(total - f.level_db))) < 0.3


def test_tone_measures() -> None:
    f = analyse_frames(0.3 * sine(3100.0, 2 * FRAME_SAMPLES))
    assert set(f.high.bin.tolist()) == {50}
    assert np.all(f.high.main_ratio > 0.95)
    np.testing.assert_allclose(f.high.db, f.tri_db[:, 50])
    g = analyse_frames(0.3 * square(520.0, 2 * FRAME_SAMPLES))
    assert set(g.low.bin.tolist()) == {8}
    assert np.all(g.low.main_ratio > 0.9)
    assert np.all(g.high.main_ratio < 0.5)  # its 5th harmonic alone is not a smoke-alarm tone


def test_a_second_tone_is_a_partial() -> None:
    """A combination alarm: 2.16 kHz with a weaker 3 kHz tone. The search finds the stronger,
    the weaker is its partial, and together they are the whole context band."""
    x = 0.3 * sine(2160.0, 2 * FRAME_SAMPLES) + 0.2 * sine(3000.0, 2 * FRAME_SAMPLES)
    f = analyse_frames(x)
    assert set(f.high.bin.tolist()) == {35}
    assert set(f.high.alt_bin.tolist()) == {48}
    assert np.all(f.high.main_ratio < 0.75)
    assert np.all(f.high.ratio > 0.97)
    assert np.all(f.high.search_db >= f.high.db)


def test_noise_is_not_tonal() -> None:
    f = analyse_frames(0.1 * np.random.default_rng(1).standard_normal(64 * FRAME_SAMPLES))
    assert float(np.mean(f.high.ratio >= 0.7)) < 0.05


def test_silence_and_partial_frames() -> None:
    f = analyse_frames(np.zeros(FRAME_SAMPLES * 2 + 100, dtype=np.int16))
    assert f.level_db.tolist() == [FLOOR_DB, FLOOR_DB]
    assert np.all(f.bands_db == FLOOR_DB)
    assert np.all(f.high.ratio == 0.0)
    assert np.all(f.high.alt_bin == 0)


def test_int16_and_float_input_agree() -> None:
    x = (0.25 * sine(1000.0, FRAME_SAMPLES) * 32768).astype(np.int16)
    np.testing.assert_allclose(to_float(x), x / 32768.0)
    with pytest.raises(ValueError, match="mono"):
        to_float(np.zeros((2, 10)))
