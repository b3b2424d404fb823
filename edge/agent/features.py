"""Optional per-window features (``--features``): a log-mel band summary and the dominant
frequency. Pure numpy; the log-mel patch is the one YAMNet computed for the window.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from edge.agent.windowing import SAMPLE_RATE

__all__ = ["MEL_BANDS", "dominant_hz", "logmel_summary", "window_features"]

MEL_BANDS: Final = 8
"""YAMNet's 64 mel bins (125 Hz - 7.5 kHz) summarised as 8 bands of 8 adjacent bins."""


def logmel_summary(patch: npt.NDArray[np.float32], bands: int = MEL_BANDS) -> list[float]:
    """Mean log-mel value (natural log of mel energy, as YAMNet computes it) per band."""
    if patch.ndim != 2 or patch.shape[1] % bands:
        raise ValueError(f"log-mel patch of shape {patch.shape} cannot be cut into {bands} bands")
    per_band = patch.astype(np.float64).reshape(patch.shape[0], bands, -1).mean(axis=(0, 2))
    return [round(float(v), 2) for v in per_band]


def dominant_hz(samples: npt.NDArray[np.float32]) -> float:
    """Frequency of the strongest bin of the Hann-windowed spectrum (DC excluded)."""
    if samples.size < 2:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    return round(peak * SAMPLE_RATE / samples.size, 1)


def window_features(
    samples: npt.NDArray[np.float32], patch: npt.NDArray[np.float32] | None
) -> dict[str, object]:
    out: dict[str, object] = {"dominant_hz": dominant_hz(samples)}
    if patch is not None:
        out["logmel_bands"] = logmel_summary(patch)
    return out
