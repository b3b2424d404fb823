"""EfficientAT's MobileNetV3 ``mn04_as`` (AudioSet, 527 classes, MIT): numpy front end + TFLite.

The model hears 1.95 s (:data:`CONTEXT_SAMPLES`: two of the agent's windows) ending where an
agent window ends, every second window (:data:`EVERY`: each 0.96 s). It was trained on 10 s
clips; with only the agent's 0.975 s window it heard a knock as music, and on the corpus's
validation half it found fewer of every category at the false-alert budget than with 1.95 s
(README, "Choosing the model"). The audio at 16 kHz is resampled to the model's 32 kHz (soxr),
then turned into the log-mel patch EfficientAT's ``models/preprocess.py`` computes in
evaluation mode:

* pre-emphasis ``y[n] = x[n + 1] - 0.97 x[n]`` (one sample shorter);
* STFT: 1024-point FFT of an 800-sample symmetric Hann window centred in it, hop 320, the
  signal reflect-padded by 512 on both sides (``torch.stft(center=True)``): 98 frames;
* power spectrum through 128 Kaldi mel bands from 0 to 15 kHz (``torchaudio.compliance.kaldi
  .get_mel_banks``, the Nyquist bin weighted 0), summed over each band's non-zero bins only
  (numpy's matrix product would wake a BLAS thread pool that spins, doubling the CPU time);
* ``(log(mel + 1e-5) + 4.5) / 5``.

The network (``assets/mn04_as.tflite``, converted by ``tools/convert_mn04.py``) takes that
``128 x 195`` patch and gives 527 sigmoid scores. ``tests/agent/test_mn04.py`` holds both to the
reference implementation (torch) through ``tests/data/mn04_golden.npz``.

Nothing here imports torch. Scores are under AudioSet's display names
(``assets/mn04_class_map.csv``); its events carry source kind ``mn04``, model
``efficientat-mn04_as``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soxr

from edge.agent.model import (
    MODEL_DIR,
    ModelError,
    ModelOutput,
    model_digest,
    open_interpreter,
)
from edge.agent.windowing import SAMPLE_RATE, WINDOW_SAMPLES

__all__ = [
    "CONTEXT_SAMPLES",
    "DEFAULT_CLASS_MAP",
    "DEFAULT_MODEL",
    "EVERY",
    "FRAMES",
    "KIND",
    "MEL_BANDS",
    "MODEL_RATE",
    "LogMel",
    "Mn04Model",
    "golden_dev_window",
    "golden_synthetic",
    "mel_banks",
    "upsample",
]

KIND: Final = "mn04"
"""The events' source kind: the policy's label namespace for this model."""
DEFAULT_MODEL: Final = MODEL_DIR / "mn04_as.tflite"
DEFAULT_CLASS_MAP: Final = MODEL_DIR / "mn04_class_map.csv"

MODEL_RATE: Final = 32_000
N_FFT: Final = 1024
WIN_LENGTH: Final = 800
HOP: Final = 320
MEL_BANDS: Final = 128
FMIN_HZ: Final = 0.0
FMAX_HZ: Final = 15_000.0
"""EfficientAT's default: half the sample rate less half its 2 kHz augmentation range."""
PREEMPHASIS: Final = 0.97
CONTEXT_SAMPLES: Final = 2 * WINDOW_SAMPLES
"""What the model hears each time, at 16 kHz: 1.95 s ending where an agent window ends."""
EVERY: Final = 2
"""It classifies every second agent window: every 0.96 s at the default hop."""
FRAMES: Final = 1 + (CONTEXT_SAMPLES * MODEL_RATE // SAMPLE_RATE - 1) // HOP
"""Log-mel frames of what it hears (195)."""

Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]


def upsample(window: Float32Array) -> Float32Array:
    """16 kHz samples at the model's 32 kHz (soxr, high quality)."""
    out: Float32Array = soxr.resample(np.asarray(window, np.float32), SAMPLE_RATE, MODEL_RATE)
    return out


def _mel(hz: Float64Array) -> Float64Array:
    out: Float64Array = 1127.0 * np.log1p(hz / 700.0)
    return out


def mel_banks(bands: int = MEL_BANDS, n_fft: int = N_FFT, rate: int = MODEL_RATE,
              fmin: float = FMIN_HZ, fmax: float = FMAX_HZ) -> Float64Array:  # fmt: skip
    """Kaldi's triangular mel filters (no VTLN warp), ``bands x (n_fft // 2 + 1)``, the last
    (Nyquist) column zero, as EfficientAT pads them."""
    low, high = _mel(np.array(fmin)), _mel(np.array(fmax))
    delta = (high - low) / (bands + 1)
    edges = low + delta * np.arange(bands + 2)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    mel = _mel(rate / n_fft * np.arange(n_fft // 2, dtype=np.float64))[None, :]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    weights = np.maximum(0.0, np.minimum(up, down))
    return np.pad(weights, ((0, 0), (0, 1)))


class LogMel:
    """The model's front end: 32 kHz samples in, a ``128 x frames`` patch out.

    Its working arrays (about 6 MB for the agent's 1.95 s) are kept between calls: allocated
    anew each call, they came fresh from the kernel every time, and zeroing their pages cost the
    agent as much CPU as the arithmetic. The arithmetic, and so every value, is unchanged.
    """

    def __init__(self) -> None:
        hann = np.hanning(WIN_LENGTH)  # symmetric, as torch.hann_window(periodic=False)
        left = (N_FFT - WIN_LENGTH) // 2
        self._window = np.pad(hann, (left, N_FFT - WIN_LENGTH - left))
        banks = mel_banks()
        bands, self._bins = np.nonzero(banks)  # row-major: each band's bins together
        self._weights = banks[bands, self._bins][:, None]
        self._bands = np.unique(bands)
        self._firsts = np.searchsorted(bands, self._bands)
        self._used = int(self._bins.max()) + 1
        """Bins up to the last one a band weights: the power of those above is never read."""
        self._buffers: dict[str, npt.NDArray[np.generic]] = {}

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: type[np.generic]
                ) -> npt.NDArray[Any]:  # fmt: skip
        out = self._buffers.get(name)
        if out is None or out.shape != shape:
            out = self._buffers[name] = np.empty(shape, dtype)
        return out

    def __call__(self, audio: Float32Array) -> Float32Array:
        n = np.size(audio) - 1  # pre-emphasis makes it one sample shorter
        half = N_FFT // 2
        if n <= half:
            raise ValueError(f"{n + 1} samples is too short for the front end")
        raw = self._buffer("raw", (n + 1,), np.float64)
        raw[:] = audio
        frames = 1 + (n + 2 * half - N_FFT) // HOP
        padded = self._buffer("padded", (n + 2 * half,), np.float64)
        x = padded[half : half + n]
        np.multiply(raw[:-1], PREEMPHASIS, out=x)
        np.subtract(raw[1:], x, out=x)
        padded[:half] = x[half:0:-1]  # reflect, as np.pad(mode="reflect")
        padded[half + n :] = x[-2 : -half - 2 : -1]
        view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:frames]
        windowed = self._buffer("windowed", (frames, N_FFT), np.float64)
        np.multiply(view, self._window, out=windowed)
        spectrum = self._buffer("spectrum", (frames, N_FFT // 2 + 1), np.complex128)
        np.fft.rfft(windowed, axis=1, out=spectrum)
        used = spectrum[:, : self._used].T  # bins x frames: each bin's row contiguous below
        power = self._buffer("power", (self._used, frames), np.float64)
        square = self._buffer("square", (self._used, frames), np.float64)
        np.multiply(used.real, used.real, out=power)
        np.multiply(used.imag, used.imag, out=square)
        np.add(power, square, out=power)
        weighted = self._buffer("weighted", (self._bins.size, frames), np.float64)
        np.take(power, self._bins, axis=0, out=weighted)
        np.multiply(weighted, self._weights, out=weighted)
        mel = self._buffer("mel", (MEL_BANDS, frames), np.float64)
        if self._bands.size < MEL_BANDS:
            mel[:] = 0.0
            mel[self._bands] = np.add.reduceat(weighted, self._firsts)
        else:  # every band has bins (the model's banks): no gather needed
            np.add.reduceat(weighted, self._firsts, out=mel)
        np.add(mel, 1e-5, out=mel)
        np.log(mel, out=mel)
        np.add(mel, 4.5, out=mel)
        np.divide(mel, 5.0, out=mel)
        return mel.astype(np.float32)


class Mn04Model:
    """mn04_as: 1.95 s of float32 samples at 16 kHz in (:data:`CONTEXT_SAMPLES`), 527 class
    scores out."""

    kind = KIND
    context = CONTEXT_SAMPLES
    every = EVERY

    def __init__(self, path: Path = DEFAULT_MODEL, *, threads: int = 1) -> None:
        self._interp = open_interpreter(path, threads)
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        shape = tuple(int(v) for v in inputs[0]["shape"])
        if shape != (1, 1, MEL_BANDS, FRAMES):
            raise ModelError(f"{path}: input shape {shape}, expected [1, 1, {MEL_BANDS}, {FRAMES}]")
        self._input = int(inputs[0]["index"])
        self._scores = int(outputs[0]["index"])
        self._front = LogMel()
        self.version = model_digest(path)
        self.classes = int(np.prod(outputs[0]["shape"]))

    def scores(self, patch: Float32Array) -> Float32Array:
        """The network alone, on a ``128 x 98`` log-mel patch."""
        self._interp.set_tensor(self._input, patch.reshape(1, 1, MEL_BANDS, FRAMES))
        self._interp.invoke()
        out: Float32Array = np.asarray(self._interp.get_tensor(self._scores), np.float32)
        return out.reshape(-1)

    def __call__(self, samples: Float32Array) -> ModelOutput:
        if samples.size != CONTEXT_SAMPLES:
            raise ValueError(f"expected {CONTEXT_SAMPLES} samples, got {samples.size}")
        return ModelOutput(self.scores(self._front(upsample(samples))), None)


# -- the golden recordings (tools/convert_mn04.py writes them, tests/agent/test_mn04.py reads) --
GOLDEN_SYNTHETIC: Final = ("t3_tone", "noise", "chirp")


def golden_synthetic(name: str) -> Float32Array:
    """1.95 s at 16 kHz made from a formula and a seeded generator (the same on any machine)."""
    t = np.arange(CONTEXT_SAMPLES) / SAMPLE_RATE
    rng = np.random.default_rng(13)
    if name == "t3_tone":
        x = 0.4 * np.sin(2 * np.pi * 3100.0 * t) * ((t % 1.0) < 0.5)
    elif name == "noise":
        x = 0.05 * rng.standard_normal(t.size)
    elif name == "chirp":
        sweep = 0.3 * np.sin(2 * np.pi * (200.0 * t + 3000.0 * t**2))
        x = sweep + 0.01 * rng.standard_normal(t.size)
    else:
        raise ValueError(f"no golden recording {name!r}")
    return x.astype(np.float32)


def golden_dev_window(path: Path, at_s: float) -> Float32Array:
    """The 1.95 s starting ``at_s`` into a 16 kHz dev-audio clip (zero-padded)."""
    from edge.agent.sources import read_wav  # noqa: PLC0415 - only the golden tests read files

    audio, rate = read_wav(path)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: {rate} Hz, expected {SAMPLE_RATE}")
    start = round(at_s * SAMPLE_RATE)
    window = np.zeros(CONTEXT_SAMPLES, np.float32)
    part = audio[start : start + CONTEXT_SAMPLES]
    window[: part.size] = part
    return window
