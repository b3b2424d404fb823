"""Floating-point reference of the RP2040 core's frame analysis (firmware/rp2040/core/sa_dsp.c).

Both implementations cut 16 kHz audio into back-to-back frames of 256 samples (16 ms, no
overlap), apply a periodic Hann window and compute, per frame:

* ``level_dbfs``: ``10*log10(mean(x**2))`` of the unwindowed frame, ``x`` in full-scale units
  (a full-scale square wave is 0 dBFS, a full-scale sine about -3 dBFS);
* six band levels in dBFS: the windowed power spectrum summed over a band and normalised so that
  a stationary signal's band levels add up to its mean power (a sine inside a band reads the
  same as ``level_dbfs``);
* two tone measures used by the temporal-pattern detectors: the strongest bin in the smoke/CO
  tone band (2.5-4 kHz) and in the 520 Hz band, the power of that bin and its two neighbours,
  and that power's share of a wider context band (a tonality ratio).

Every level is clamped to ``FLOOR_DB`` (-120 dB). The C core computes the same quantities in
fixed point; the golden-vector tests hold the two to a stated tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BANDS",
    "BAND_EDGES_HZ",
    "FLOOR_DB",
    "FRAME_SAMPLES",
    "HIGH_CONTEXT",
    "HIGH_SEARCH",
    "LOW_CONTEXT",
    "LOW_SEARCH",
    "N_BANDS",
    "SAMPLE_RATE",
    "FrameFeatures",
    "analyse_frames",
    "hann",
    "to_float",
]

SAMPLE_RATE: Final = 16_000
FRAME_SAMPLES: Final = 256
FLOOR_DB: Final = -120.0

BANDS: Final[tuple[tuple[int, int], ...]] = (
    (1, 7),
    (7, 10),
    (10, 24),
    (24, 40),
    (40, 65),
    (65, 129),
)
"""FFT bin ranges ``[first, end)`` of the six bands (bin width 62.5 Hz)."""
N_BANDS: Final = len(BANDS)
BAND_EDGES_HZ: Final = tuple(
    (lo * SAMPLE_RATE / FRAME_SAMPLES, hi * SAMPLE_RATE / FRAME_SAMPLES) for lo, hi in BANDS
)

HIGH_SEARCH: Final = (40, 65)
"""Bins searched for the smoke/CO tone peak: 2.5-4.0 kHz."""
HIGH_CONTEXT: Final = (24, 129)
"""Bins the smoke/CO tone's power is compared with: 1.5-8 kHz."""
LOW_SEARCH: Final = (7, 10)
"""Bins searched for the 520 Hz tone peak: 437-625 Hz."""
LOW_CONTEXT: Final = (4, 24)
"""Bins the 520 Hz tone's power is compared with: 250-1500 Hz."""

_HIGH_BAND: Final = 4
_LOW_BAND: Final = 1

Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]


def hann() -> Float64Array:
    """The periodic Hann window of one frame."""
    n = np.arange(FRAME_SAMPLES, dtype=np.float64)
    out: Float64Array = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / FRAME_SAMPLES)
    return out


_WINDOW: Final = hann()
# Band power = sum_k c_k |X_k|^2 / (N * sum(w^2)), c_k = 2 below Nyquist (one-sided spectrum).
_POWER_SCALE: Final = 1.0 / (FRAME_SAMPLES * float(np.sum(_WINDOW**2)))
_ONE_SIDED: Final = np.concatenate(([1.0], np.full(FRAME_SAMPLES // 2 - 1, 2.0), [1.0]))


@dataclass(frozen=True, slots=True)
class FrameFeatures:
    """Per-frame features of ``n`` consecutive frames (arrays of length ``n``)."""

    level_db: Float64Array
    """Unwindowed frame RMS in dBFS."""
    bands_db: Float64Array
    """Band levels in dBFS, shape ``(n, N_BANDS)``."""
    high_bin: Int64Array
    """Strongest bin in ``HIGH_SEARCH``."""
    high_db: Float64Array
    """Power of ``high_bin`` and its two neighbours, in dBFS."""
    high_ratio: Float64Array
    """That power's share of the ``HIGH_CONTEXT`` bins' power, in [0, 1]."""
    low_bin: Int64Array
    low_db: Float64Array
    low_ratio: Float64Array

    @property
    def high_band_db(self) -> Float64Array:
        out: Float64Array = self.bands_db[:, _HIGH_BAND]
        return out

    @property
    def low_band_db(self) -> Float64Array:
        out: Float64Array = self.bands_db[:, _LOW_BAND]
        return out


def to_float(samples: npt.ArrayLike) -> Float64Array:
    """int16 samples are scaled to full-scale units; float input is taken as full-scale already."""
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / 32768.0
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64)
    raise TypeError(f"unsupported sample dtype {arr.dtype}")


def _db(power: Float64Array) -> Float64Array:
    with np.errstate(divide="ignore"):
        out: Float64Array = np.maximum(10.0 * np.log10(power), FLOOR_DB)
    return out


def _tone(
    power: Float64Array, search: tuple[int, int], context: tuple[int, int]
) -> tuple[Int64Array, Float64Array, Float64Array]:
    lo, hi = search
    peak: Int64Array = (np.argmax(power[:, lo:hi], axis=1) + lo).astype(np.int64)
    rows = np.arange(power.shape[0])
    tone = power[rows, peak - 1] + power[rows, peak] + power[rows, peak + 1]
    ctx = np.sum(power[:, context[0] : context[1]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio: Float64Array = np.where(ctx > 0.0, tone / np.where(ctx > 0.0, ctx, 1.0), 0.0)
    return peak, _db(2.0 * tone * _POWER_SCALE), ratio


def analyse_frames(samples: npt.ArrayLike) -> FrameFeatures:
    """Features of every complete frame in ``samples``; a trailing partial frame is ignored."""
    x = to_float(samples)
    n = x.size // FRAME_SAMPLES
    frames = x[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
    level = _db(np.mean(frames**2, axis=1))
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    power: Float64Array = spectrum.real**2 + spectrum.imag**2
    weighted = power * _ONE_SIDED * _POWER_SCALE
    bands = np.stack([np.sum(weighted[:, lo:hi], axis=1) for lo, hi in BANDS], axis=1)
    high_bin, high_db, high_ratio = _tone(power, HIGH_SEARCH, HIGH_CONTEXT)
    low_bin, low_db, low_ratio = _tone(power, LOW_SEARCH, LOW_CONTEXT)
    return FrameFeatures(
        level_db=level,
        bands_db=_db(bands.reshape(n, N_BANDS)),
        high_bin=high_bin,
        high_db=high_db,
        high_ratio=high_ratio,
        low_bin=low_bin,
        low_db=low_db,
        low_ratio=low_ratio,
    )
