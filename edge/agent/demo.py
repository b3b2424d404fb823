"""The bundled demo recording for ``soundalert up --demo``: a synthetic T3 smoke alarm over noise.

Nothing is downloaded and no recording is shipped: the WAV is generated (deterministically) from
:mod:`edge.dsp.synth` the first time it is asked for, then reused.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from edge.agent.windowing import SAMPLE_RATE
from edge.dsp import synth

__all__ = ["DEMO_FILE_NAME", "demo_signal", "ensure_demo_recording", "write_wav"]

DEMO_FILE_NAME: Final = "soundalert-demo-t3.wav"
_VERSION: Final = 1


def _room_noise(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Quiet room tone: brown-ish noise, a 50 Hz hum and a fan's broadband hiss."""
    white = rng.normal(0.0, 1.0, n)
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(1601) / 1601, mode="same")  # remove the drift
    brown /= np.max(np.abs(brown)) or 1.0
    t = np.arange(n) / SAMPLE_RATE
    hum = 0.2 * np.sin(2 * np.pi * 50.0 * t)
    out: npt.NDArray[np.float64] = 0.02 * (brown + hum) + 0.003 * white
    return out


def demo_signal(
    seconds: float = 30.0,
    *,
    alarm_at_s: float = 6.0,
    alarm_s: float | None = None,
    snr_db: float = 12.0,
    seed: int = 7,
) -> npt.NDArray[np.float64]:
    """``seconds`` of room noise with a T3 smoke alarm from ``alarm_at_s``, sounding for
    ``alarm_s`` (to the end when unset)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    background = _room_noise(n, rng)
    cycles = max(1, int((alarm_s if alarm_s is not None else seconds - alarm_at_s) // 4))
    alarm = synth.t3(cycles=cycles)
    offset = round(alarm_at_s * SAMPLE_RATE)
    if offset + alarm.size > n:
        raise ValueError("the alarm does not fit into the recording")
    return synth.mix_at_snr(alarm, background, snr_db, offset=offset)


def write_wav(path: Path, signal: npt.NDArray[np.float64]) -> Path:
    """Write 16 kHz mono 16-bit PCM (atomically: a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(synth.to_int16(signal).astype("<i2").tobytes())
    tmp.replace(path)
    return path


def ensure_demo_recording(directory: Path) -> Path:
    """The demo WAV in ``directory`` (written on first use): 30 s, T3 smoke alarm from 6 s.

    Replay it with ``soundalert agent --input <path> --speed 1`` (the default pace); the
    aggregator raises a ``smoke_alarm`` alert about 10 s in.
    """
    path = directory / f"v{_VERSION}-{DEMO_FILE_NAME}"
    if not path.is_file():
        write_wav(path, demo_signal())
    return path
