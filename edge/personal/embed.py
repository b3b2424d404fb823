"""Audio to YAMNet embeddings, on the node that heard it: the only place audio is touched.

The examples of a sound to learn are cut into windows exactly as the agent cuts a stream
(0.975 s every 0.48 s), and each window's 1024-d embedding and level are kept; the audio is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.agent.sources import read_wav
from edge.agent.windowing import (
    DEFAULT_HOP_S,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    Windower,
    hop_samples,
    to_float32,
)

__all__ = ["Embedder", "WindowOutputs", "embed_audio", "embed_wav", "read_16k", "window_outputs"]


class _Output(Protocol):
    @property
    def embedding(self) -> npt.NDArray[np.float32] | None: ...

    @property
    def scores(self) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class WindowOutputs:
    embeddings: npt.NDArray[np.float32]
    """(n, 1024)"""
    levels: npt.NDArray[np.float32]
    """(n,) dBFS"""
    scores: npt.NDArray[np.float32]
    """(n, classes): YAMNet's own class scores of each window"""


class Embedder(Protocol):
    def __call__(self, window: npt.NDArray[np.float32], /) -> _Output: ...


def window_outputs(
    model: Embedder, audio: npt.ArrayLike, *, hop_s: float = DEFAULT_HOP_S
) -> WindowOutputs:
    """Embeddings, levels and class scores of 16 kHz mono audio's windows (audio shorter than
    one window is padded with silence to one)."""
    rows: list[npt.NDArray[np.float32]] = []
    scores: list[npt.NDArray[np.float32]] = []
    levels: list[float] = []
    samples = to_float32(audio)
    if 0 < samples.size < WINDOW_SAMPLES:
        samples = np.concatenate((samples, np.zeros(WINDOW_SAMPLES - samples.size, np.float32)))
    for window in Windower(hop_samples(hop_s)).feed(samples):
        output = model(window.samples)
        if output.embedding is None:
            raise ValueError("the model gives no embedding")
        rows.append(output.embedding.astype(np.float32))
        scores.append(np.asarray(output.scores, np.float32))
        levels.append(window.level_dbfs)
    if not rows:
        empty = np.zeros((0, 0), np.float32)
        return WindowOutputs(empty, np.zeros(0, np.float32), empty)
    return WindowOutputs(np.stack(rows), np.asarray(levels, np.float32), np.stack(scores))


def embed_audio(
    model: Embedder, audio: npt.ArrayLike, *, hop_s: float = DEFAULT_HOP_S
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(embeddings (n, 1024), levels in dBFS (n,)) of 16 kHz mono audio's windows."""
    out = window_outputs(model, audio, hop_s=hop_s)
    return out.embeddings, out.levels


def read_16k(path: Path) -> npt.NDArray[np.float32]:
    """A WAV file as 16 kHz mono float32 (resampled when it is not)."""
    audio, rate = read_wav(path)
    if rate != SAMPLE_RATE:
        import soxr  # noqa: PLC0415 - only for files at another rate

        audio = np.asarray(soxr.resample(audio, rate, SAMPLE_RATE), np.float32)
    return audio


def embed_wav(
    model: Embedder, path: Path
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A WAV file's window embeddings and levels (resampled to 16 kHz when it is not)."""
    return embed_audio(model, read_16k(path))
