"""Synthetic NFPA 72 alarm signals and an SNR mixer, for tests and benchmarks.

Signals are float64 arrays in full-scale units at 16 kHz. Tone edges get a 2 ms raised-cosine
ramp (real sounders switch fast, but not with a click that spreads over the whole spectrum).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from edge.dsp.reference import SAMPLE_RATE

__all__ = [
    "T3_SEQUENCE",
    "T4_SEQUENCE",
    "active_mask",
    "lf520",
    "mix_at_snr",
    "pattern",
    "sine",
    "square",
    "t3",
    "t4",
    "to_int16",
]

Float64Array = npt.NDArray[np.float64]

T3_SEQUENCE: Final = ((0.5, 0.5), (0.5, 0.5), (0.5, 1.5))
"""(on, off) seconds of one T3 cycle: three 0.5 s tones, then 1.5 s off (4 s in all)."""
T4_SEQUENCE: Final = ((0.1, 0.1), (0.1, 0.1), (0.1, 0.1), (0.1, 5.0))
"""(on, off) seconds of one T4 cycle: four 0.1 s chirps 0.1 s apart, then 5 s off."""
_RAMP_S: Final = 0.002


def sine(freq_hz: float, n: int, phase: float = 0.0) -> Float64Array:
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    out: Float64Array = np.sin(2.0 * np.pi * freq_hz * t + phase)
    return out


def square(freq_hz: float, n: int) -> Float64Array:
    """A band-limited square wave (odd harmonics below Nyquist), peak about 1."""
    out = np.zeros(n, dtype=np.float64)
    k = 1
    while k * freq_hz < SAMPLE_RATE / 2:
        out += sine(k * freq_hz, n) / k
        k += 2
    scaled: Float64Array = out * (np.pi / 4.0)
    return scaled


def pattern(
    sequence: tuple[tuple[float, float], ...],
    cycles: int,
    carrier: Float64Array | None = None,
    tone_hz: float = 3100.0,
    amplitude: float = 0.5,
) -> Float64Array:
    """``cycles`` repeats of ``sequence`` gating ``carrier`` (a sine at ``tone_hz`` by default)."""
    gate_parts: list[Float64Array] = []
    ramp_n = round(_RAMP_S * SAMPLE_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_n) / ramp_n)
    for _ in range(cycles):
        for on_s, off_s in sequence:
            on = np.ones(round(on_s * SAMPLE_RATE))
            on[:ramp_n] = ramp
            on[-ramp_n:] = ramp[::-1]
            gate_parts += [on, np.zeros(round(off_s * SAMPLE_RATE))]
    gate = np.concatenate(gate_parts)
    if carrier is None:
        carrier = sine(tone_hz, gate.size)
    if carrier.size < gate.size:
        raise ValueError(f"carrier has {carrier.size} samples, the pattern needs {gate.size}")
    out: Float64Array = amplitude * gate * carrier[: gate.size]
    return out


def t3(cycles: int = 2, tone_hz: float = 3100.0, amplitude: float = 0.5) -> Float64Array:
    """A T3 smoke alarm (default 3.1 kHz sine)."""
    return pattern(T3_SEQUENCE, cycles, tone_hz=tone_hz, amplitude=amplitude)


def t4(cycles: int = 2, tone_hz: float = 3100.0, amplitude: float = 0.5) -> Float64Array:
    """A T4 CO alarm (default 3.1 kHz sine chirps)."""
    return pattern(T4_SEQUENCE, cycles, tone_hz=tone_hz, amplitude=amplitude)


def lf520(cycles: int = 2, tone_hz: float = 520.0, amplitude: float = 0.5) -> Float64Array:
    """The low-frequency (520 Hz square wave) T3 alarm required in sleeping areas."""
    n = round(sum(on + off for on, off in T3_SEQUENCE) * cycles * SAMPLE_RATE)
    return pattern(T3_SEQUENCE, cycles, carrier=square(tone_hz, n), amplitude=amplitude)


def active_mask(signal: Float64Array) -> npt.NDArray[np.bool_]:
    """Samples inside the signal's on-phases (non-zero gate)."""
    mask: npt.NDArray[np.bool_] = np.abs(signal) > 0.0
    # Zero crossings inside a tone are not silence: close gaps shorter than 1 ms.
    idx = np.flatnonzero(mask)
    if idx.size:
        gaps = np.flatnonzero(np.diff(idx) <= SAMPLE_RATE // 1000)
        for g in gaps:
            mask[idx[g] : idx[g + 1]] = True
    return mask


def mix_at_snr(
    signal: Float64Array, background: Float64Array, snr_db: float, offset: int = 0
) -> Float64Array:
    """Add ``signal`` into ``background`` at ``offset`` so that the signal's power during its
    on-phases is ``snr_db`` above the background's mean power over the whole clip.

    The mixture is scaled down as a whole if it would clip (the SNR is kept).
    """
    if offset < 0 or offset + signal.size > background.size:
        raise ValueError("signal does not fit into the background at that offset")
    mask = active_mask(signal)
    if not mask.any():
        raise ValueError("signal is silent")
    p_sig = float(np.mean(signal[mask] ** 2))
    p_bg = float(np.mean(background**2))
    if p_bg <= 0.0:
        raise ValueError("background is digital silence: SNR is undefined")
    gain = np.sqrt(p_bg * 10.0 ** (snr_db / 10.0) / p_sig)
    mix = background.astype(np.float64).copy()
    mix[offset : offset + signal.size] += gain * signal
    peak = float(np.max(np.abs(mix)))
    if peak > 0.99:
        mix *= 0.99 / peak
    return mix


def to_int16(x: Float64Array) -> npt.NDArray[np.int16]:
    """Round full-scale floats to int16 samples, saturating."""
    out: npt.NDArray[np.int16] = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    return out
