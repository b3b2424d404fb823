"""Windowing and the level gate: pure, synchronous, no model and no I/O.

Audio is 16 kHz mono. A :class:`Windower` cuts it into YAMNet windows of 15 600 samples
(0.975 s) every ``hop`` samples, whatever the block sizes it is fed. The rules are simple enough
to mirror in a browser agent:

* window ``i`` covers samples ``[i * hop, i * hop + 15600)`` of the stream;
* its level is ``10 * log10(mean(x ** 2))`` in dBFS with ``x`` in full-scale units (-1..1),
  floored at :data:`LEVEL_FLOOR_DBFS`;
* it is *gated* (no inference) when that level is below the gate threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_HOP_S",
    "LEVEL_FLOOR_DBFS",
    "SAMPLE_RATE",
    "WINDOW_SAMPLES",
    "Window",
    "Windower",
    "hop_samples",
    "level_dbfs",
    "to_float32",
]

SAMPLE_RATE: Final = 16_000
WINDOW_SAMPLES: Final = 15_600
"""0.975 s: YAMNet's input length."""
DEFAULT_HOP_S: Final = 0.48
LEVEL_FLOOR_DBFS: Final = -120.0

Float32Array = npt.NDArray[np.float32]


def to_float32(block: npt.ArrayLike) -> Float32Array:
    """int16 samples, or floats in full-scale units, as float32 in -1..1."""
    x = np.asarray(block)
    if x.dtype == np.int16:
        return (x.astype(np.float32) / np.float32(32768.0)).reshape(-1)
    out: Float32Array = np.asarray(x, dtype=np.float32).reshape(-1)
    return out


def hop_samples(hop_s: float) -> int:
    hop = round(hop_s * SAMPLE_RATE)
    if not 1 <= hop <= WINDOW_SAMPLES * 4:
        raise ValueError(f"hop of {hop_s} s is outside 1 sample .. 3.9 s")
    return hop


def level_dbfs(x: Float32Array) -> float:
    """RMS level of ``x`` in dBFS (a full-scale square wave is 0 dBFS)."""
    if x.size == 0:
        return LEVEL_FLOOR_DBFS
    power = float(np.mean(np.square(x, dtype=np.float64)))
    if power <= 0.0:
        return LEVEL_FLOOR_DBFS
    return max(LEVEL_FLOOR_DBFS, 10.0 * float(np.log10(power)))


@dataclass(frozen=True, slots=True)
class Window:
    """One analysis window of the stream."""

    index: int
    start_sample: int
    samples: Float32Array
    level_dbfs: float

    @property
    def end_sample(self) -> int:
        return self.start_sample + WINDOW_SAMPLES


class Windower:
    """Turns blocks of any size into overlapping windows; keeps only what the next one needs."""

    def __init__(self, hop: int) -> None:
        if hop < 1:
            raise ValueError("hop must be at least one sample")
        self.hop = hop
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # stream sample index of _buffer[0]
        self._next_start = 0
        self._index = 0
        self.samples_seen = 0

    @property
    def next_end(self) -> int:
        """The stream sample the next window ends before: once fed up to there, it is cut."""
        return self._next_start + WINDOW_SAMPLES

    def feed(self, block: npt.ArrayLike) -> list[Window]:
        x = to_float32(block)
        self.samples_seen += x.size
        self._buffer = np.concatenate((self._buffer, x)) if self._buffer.size else x
        out: list[Window] = []
        while self._next_start + WINDOW_SAMPLES <= self._buffer_start + self._buffer.size:
            lo = self._next_start - self._buffer_start
            samples = self._buffer[lo : lo + WINDOW_SAMPLES].copy()
            out.append(Window(self._index, self._next_start, samples, level_dbfs(samples)))
            self._index += 1
            self._next_start += self.hop
        drop = min(self._next_start - self._buffer_start, self._buffer.size)
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
        return out
