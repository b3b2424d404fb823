"""Floating-point reference of the RP2040 core's frame analysis (firmware/rp2040/core/sa_dsp.c).

Both implementations cut 16 kHz audio into back-to-back frames of 256 samples (16 ms, no
overlap), apply a periodic Hann window and compute, per frame:

* ``level_dbfs``: ``10*log10(mean(x**2))`` of the unwindowed frame, ``x`` in full-scale units
  (a full-scale square wave is 0 dBFS, a full-scale sine about -3 dBFS);
* six band levels in dBFS: the windowed power spectrum summed over a band and normalised so that
  a stationary signal's band levels add up to its mean power (a sine inside a band reads the
  same as ``level_dbfs``);
* two tone measures used by the temporal-pattern detectors, one for the smoke/CO tone
  (1.875-4.625 kHz: real alarms sound anywhere from about 2 to 4.5 kHz) and one for the 520 Hz
  tone: the strongest bin of the search band (``bin``), the power of that bin and its two
  neighbours (``db``), the search band's whole power (``search_db``, what the tone is compared
  with to tell it from noise), that tone's share of a wider context band (``main_ratio``) and
  the share of the tone together with its two strongest partials (``ratio``: piezo sounders have
  harmonics, combination alarms a second tone). A partial is a local maximum of the context band
  at least three bins from the tone and from the other partial, counted with its two
  neighbours; ``alt_bin`` is the strongest one's bin (a room can make a partial the loudest
  peak of one beep and the fundamental of the next). A tone that is no local maximum (the edge
  bin of a tone just outside the band) has no partials.

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
    "PARTIAL_EXCLUDE",
    "PARTIAL_NAMES",
    "SAMPLE_RATE",
    "FrameFeatures",
    "ToneFeatures",
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

HIGH_SEARCH: Final = (30, 75)
"""Bins searched for the smoke/CO tone peak: 1.875-4.625 kHz."""
HIGH_CONTEXT: Final = (24, 129)
"""Bins the smoke/CO tone's power is compared with: 1.5-8 kHz."""
LOW_SEARCH: Final = (7, 10)
"""Bins searched for the 520 Hz tone peak: 437-625 Hz."""
LOW_CONTEXT: Final = (4, 24)
"""Bins the 520 Hz tone's power is compared with: 250-1500 Hz."""

PARTIAL_EXCLUDE: Final = 2
"""A partial's bin is more than this many bins from the tone's and from the other partial's."""
PARTIAL_NAMES: Final = 100
"""``alt_bin`` is a partial at least 1/100 (-20 dB) of the tone's power, else 0."""

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
class ToneFeatures:
    """Per-frame measures of one tone (arrays of length ``n``)."""

    bin: Int64Array
    """Strongest bin of the search band."""
    alt_bin: Int64Array
    """Bin of the strongest partial in the context band if it is within 20 dB of the tone, else
    0."""
    db: Float64Array
    """Power of ``bin`` and its two neighbours, in dBFS."""
    search_db: Float64Array
    """Power of the whole search band, in dBFS."""
    main_ratio: Float64Array
    """The tone's share of the context band's power, in [0, 1]."""
    ratio: Float64Array
    """The share of the tone and its two strongest partials, in [0, 1]."""


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


@dataclass(frozen=True, slots=True)
class FrameFeatures:
    """Per-frame features of ``n`` consecutive frames (arrays of length ``n``)."""

    level_db: Float64Array
    """Unwindowed frame RMS in dBFS."""
    bands_db: Float64Array
    """Band levels in dBFS, shape ``(n, N_BANDS)``."""
    high: ToneFeatures
    """The smoke/CO tone (``HIGH_SEARCH`` within ``HIGH_CONTEXT``)."""
    low: ToneFeatures
    """The 520 Hz tone (``LOW_SEARCH`` within ``LOW_CONTEXT``)."""
    tri_db: Float64Array
    """Shape ``(n, FRAME_SAMPLES // 2 + 1)``: the power of every bin and its two neighbours in
    dBFS, as ``db`` is for the strongest (``FLOOR_DB`` at bins 0 and ``FRAME_SAMPLES // 2``)."""


def _db(power: Float64Array) -> Float64Array:
    with np.errstate(divide="ignore"):
        out: Float64Array = np.maximum(10.0 * np.log10(power), FLOOR_DB)
    return out


def _share(part: Float64Array, ctx: Float64Array) -> Float64Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Float64Array = np.where(ctx > 0.0, part / np.where(ctx > 0.0, ctx, 1.0), 0.0)
    return out


def _partial(
    power: Float64Array, peaks: Float64Array, taken: list[Int64Array], context: tuple[int, int]
) -> tuple[Int64Array, Float64Array]:
    """Per frame, the strongest local maximum of ``peaks`` in the context band more than
    ``PARTIAL_EXCLUDE`` bins from every bin in ``taken``: its bin (0 if none) and the power of it
    and its two neighbours."""
    lo, hi = context
    bins = np.arange(lo, hi)
    allowed = peaks[:, lo:hi].copy()
    for t in taken:
        allowed[np.abs(bins[None, :] - t[:, None]) <= PARTIAL_EXCLUDE] = -1.0
    best: Int64Array = (np.argmax(allowed, axis=1) + lo).astype(np.int64)
    rows = np.arange(power.shape[0])
    found = allowed[rows, best - lo] > 0.0
    best = np.where(found, best, 0)
    total = power[rows, best - 1] + power[rows, best] + power[rows, best + 1]
    return best, np.where(found, total, 0.0)


def _tone(power: Float64Array, search: tuple[int, int], context: tuple[int, int]) -> ToneFeatures:
    lo, hi = search
    peak: Int64Array = (np.argmax(power[:, lo:hi], axis=1) + lo).astype(np.int64)
    rows = np.arange(power.shape[0])
    tone = power[rows, peak - 1] + power[rows, peak] + power[rows, peak + 1]
    ctx = np.sum(power[:, context[0] : context[1]], axis=1)
    # Local maxima (>= both neighbours); the others are 0 so that no partial is found there.
    inner = power[:, 1:-1]
    is_peak = (inner >= power[:, :-2]) & (inner >= power[:, 2:]) & (inner > 0.0)
    peaks = np.zeros_like(power)
    peaks[:, 1:-1] = np.where(is_peak, inner, 0.0)
    alt, first = _partial(power, peaks, [peak], context)
    _, second = _partial(power, peaks, [peak, alt], context)
    # A tone outside the search band leaks into its edge bin, which is then no peak of its own:
    # its partials (the tone itself among them) do not count.
    top = power[rows, peak]
    own = (top >= power[rows, peak - 1]) & (top >= power[rows, peak + 1])
    first = np.where(own, first, 0.0)
    # Only a partial within 20 dB of the tone names it (a pure tone's "partial" is the noise's).
    alt = np.where(own & (first * PARTIAL_NAMES >= tone), alt, 0)
    second = np.where(own, second, 0.0)
    return ToneFeatures(
        bin=peak,
        alt_bin=alt,
        db=_db(2.0 * tone * _POWER_SCALE),
        search_db=_db(2.0 * np.sum(power[:, lo:hi], axis=1) * _POWER_SCALE),
        main_ratio=_share(tone, ctx),
        ratio=_share(np.minimum(tone + first + second, ctx), ctx),
    )


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
    tri = np.zeros_like(power)
    tri[:, 1:-1] = power[:, :-2] + power[:, 1:-1] + power[:, 2:]
    return FrameFeatures(
        level_db=level,
        bands_db=_db(bands.reshape(n, N_BANDS)),
        high=_tone(power, HIGH_SEARCH, HIGH_CONTEXT),
        low=_tone(power, LOW_SEARCH, LOW_CONTEXT),
        tri_db=_db(2.0 * tri * _POWER_SCALE),
    )
