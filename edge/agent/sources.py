"""Audio sources: a WAV file (any rate and channel count), raw s16le on stdin, a microphone.

Every source yields float32 blocks of 16 kHz mono audio in full-scale units. Resampling uses
soxr (streaming, so long files never sit in memory); the microphone needs the optional
``sounddevice`` package, imported only when a microphone is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import wave
from collections.abc import AsyncIterator
from datetime import datetime
from importlib import import_module
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

import numpy as np
import numpy.typing as npt

from edge.agent.windowing import SAMPLE_RATE

__all__ = [
    "AudioSource",
    "Cuts",
    "MicrophoneSource",
    "SourceError",
    "StdinSource",
    "WavFileSource",
    "read_wav",
]

log = logging.getLogger(__name__)

Float32Array = npt.NDArray[np.float32]
BLOCK_S: Final = 0.1
_QUEUE_S: Final = 30.0
"""Audio a live source may run ahead of the pipeline before it drops audio."""


class SourceError(RuntimeError):
    """The audio source cannot be opened or read; the message says why."""


class AudioSource(Protocol):
    live: bool
    """True when the audio arrives in real time (timestamps come from the wall clock)."""
    start_time: datetime | None
    """Event time of the first sample, when the source knows it (a replay with --start-time)."""
    dropped_blocks: int

    def blocks(self) -> AsyncIterator[Float32Array]: ...

    def align(self, first: int, every: int) -> None:
        """Before :meth:`blocks`: the consumer wants blocks that end at stream samples
        ``first``, ``first + every``, ... (the agent's window ends). A source may ignore it."""


class Cuts:
    """Re-cuts a stream into blocks that end at stream samples ``first``, ``first + every``, ...

    A live source's thread hands the event loop one such block per window hop instead of one
    per 0.1 s: every wake-up of the loop costs CPU, and only a window's end needs one.
    """

    def __init__(self, first: int, every: int) -> None:
        if first < 1 or every < 1:
            raise ValueError("cuts need first >= 1 and every >= 1")
        self._next = first
        self._every = every
        self._seen = 0
        self._parts: list[Float32Array] = []

    def add(self, x: Float32Array) -> list[Float32Array]:
        """Take ``x``; return the blocks it completed (possibly none)."""
        out = []
        at = 0
        while at < x.size:
            part = x[at : at + self._next - self._seen]
            self._parts.append(part)
            self._seen += part.size
            at += part.size
            if self._seen == self._next:
                out.append(self._take())
                self._next += self._every
        return out

    def rest(self) -> Float32Array | None:
        """What no cut completed yet (at the end of the stream), if anything."""
        return self._take() if self._parts else None

    def _take(self) -> Float32Array:
        parts, self._parts = self._parts, []
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _Resampler:
    """Streaming conversion of one source rate to 16 kHz."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._stream: Any = None
        if rate != SAMPLE_RATE:
            try:
                soxr = import_module("soxr")  # only needed for non-16 kHz audio
            except ImportError:
                raise SourceError(
                    f"audio at {rate} Hz needs resampling to {SAMPLE_RATE} Hz: "
                    "install soxr (pip install soxr)"
                ) from None
            self._stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")

    def __call__(self, x: Float32Array, *, last: bool = False) -> Float32Array:
        if self._stream is None:
            return x
        out: Float32Array = self._stream.resample_chunk(x, last=last)
        return out


def _pcm_to_float(raw: bytes, width: int, channels: int) -> Float32Array:
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise SourceError(f"unsupported sample width of {width} bytes")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return x.astype(np.float32, copy=False)


def read_wav(path: Path) -> tuple[Float32Array, int]:
    """A whole WAV file as float32 mono at its own rate (for tests and benchmarks)."""
    try:
        with wave.open(str(path), "rb") as w:
            data = w.readframes(w.getnframes())
            return _pcm_to_float(data, w.getsampwidth(), w.getnchannels()), w.getframerate()
    except (OSError, wave.Error, EOFError) as exc:
        raise SourceError(f"cannot read WAV file {path}: {exc}") from exc


class WavFileSource:
    """Replays a PCM WAV file at ``speed`` times real time (0: as fast as possible)."""

    live = False

    def __init__(self, path: Path, *, speed: float = 1.0, start_time: datetime | None = None
                 ) -> None:  # fmt: skip
        if speed < 0:
            raise SourceError("--speed must be 0 (as fast as possible) or positive")
        self.path = path
        self.speed = speed
        self.start_time = start_time
        self.dropped_blocks = 0
        try:
            with wave.open(str(path), "rb") as w:
                self.rate = w.getframerate()
                self.channels = w.getnchannels()
                self.width = w.getsampwidth()
        except (OSError, wave.Error, EOFError) as exc:
            raise SourceError(f"cannot read WAV file {path}: {exc} (PCM WAV expected)") from exc
        self._resample = _Resampler(self.rate)

    def align(self, first: int, every: int) -> None:
        """A replay keeps its 0.1 s blocks (the agent batches them itself)."""

    async def blocks(self) -> AsyncIterator[Float32Array]:
        frames = max(1, round(self.rate * BLOCK_S))
        began = time.monotonic()
        played = 0.0
        with wave.open(str(self.path), "rb") as w:
            while True:
                raw = w.readframes(frames)
                last = len(raw) < frames * self.width * self.channels
                x = self._resample(_pcm_to_float(raw, self.width, self.channels), last=last)
                if x.size:
                    yield x
                played += len(raw) / (self.width * self.channels) / self.rate
                if self.speed > 0:
                    ahead = began + played / self.speed - time.monotonic()
                    await asyncio.sleep(max(0.0, ahead))
                else:
                    await asyncio.sleep(0)
                if last:
                    return


class _ThreadedSource:
    """Shared by live sources: a producer thread hands blocks to the event loop."""

    live = True
    start_time: datetime | None = None

    def __init__(self) -> None:
        self.dropped_blocks = 0
        self._queue: asyncio.Queue[Float32Array | None] = asyncio.Queue(round(_QUEUE_S / BLOCK_S))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cuts: Cuts | None = None

    def align(self, first: int, every: int) -> None:
        self._cuts = Cuts(first, every)
        self._queue = asyncio.Queue(max(1, round(_QUEUE_S * SAMPLE_RATE / every)))

    def _post_audio(self, x: Float32Array) -> None:
        """Called from the producer thread: hand over ``x``, re-cut when aligned."""
        if self._cuts is None:
            self._post(x)
            return
        for block in self._cuts.add(x):
            self._post(block)

    def _post_end(self) -> None:
        """Called from the producer thread: the stream ended."""
        if self._cuts is not None and (rest := self._cuts.rest()) is not None:
            self._post(rest)
        self._post(None)

    def _offer(self, block: Float32Array | None) -> None:
        """Called on the event loop thread."""
        try:
            self._queue.put_nowait(block)
        except asyncio.QueueFull:
            if block is None:  # the end must get through: make room for it
                self._queue.get_nowait()
                self._queue.put_nowait(None)
            else:
                self.dropped_blocks += 1
                log.warning("audio pipeline fell behind: dropped %d blocks so far",
                            self.dropped_blocks)  # fmt: skip

    def _post(self, block: Float32Array | None) -> None:
        """Called from the producer thread."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: we are exiting
                self._loop.call_soon_threadsafe(self._offer, block)


class StdinSource(_ThreadedSource):
    """Raw signed 16-bit little-endian 16 kHz mono PCM on standard input."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        super().__init__()
        # The unbuffered file: a BufferedReader's lock, held by a read blocked in this thread,
        # aborted the interpreter at exit ("could not acquire lock for <stdin>") on SIGTERM.
        if stream is None:  # the process's stdin, kept open as long as the process
            stream = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
        self._stream = stream

    def _reader(self) -> None:
        size = round(SAMPLE_RATE * BLOCK_S) * 2
        carry = b""
        while True:
            try:
                chunk = self._stream.read(size)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                self._post_end()
                return
            data = carry + chunk
            whole = len(data) - len(data) % 2
            carry = data[whole:]
            if whole:
                x = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
                self._post_audio(x)

    async def blocks(self) -> AsyncIterator[Float32Array]:
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._reader, name="stdin-audio", daemon=True).start()
        while (block := await self._queue.get()) is not None:
            yield block


class MicrophoneSource(_ThreadedSource):
    """A PortAudio input device via sounddevice: 16 kHz if the device offers it, else its
    default rate resampled."""

    def __init__(self, device: str | int | None = None) -> None:
        super().__init__()
        try:
            sounddevice = import_module("sounddevice")  # optional extra, only for live capture
        except (ImportError, OSError) as exc:
            raise SourceError(
                f"live capture needs the sounddevice package and PortAudio ({exc}); install "
                "them (pip install sounddevice; apt install libportaudio2) or use --input/--stdin"
            ) from None
        self._sd: Any = sounddevice
        self.device = device
        self.rate = SAMPLE_RATE
        try:
            self._sd.check_input_settings(device=device, channels=1, samplerate=SAMPLE_RATE)
        except Exception:  # noqa: BLE001 - PortAudio reports an unsupported rate many ways
            try:
                info = self._sd.query_devices(device, "input")
            except Exception as exc:  # noqa: BLE001
                raise SourceError(f"no usable input device {device!r}: {exc}") from None
            self.rate = int(info["default_samplerate"])
        self._resample = _Resampler(self.rate)

    def align(self, first: int, every: int) -> None:
        """At 16 kHz the audio thread re-cuts; resampled, blocks stay as the device gives them
        (the agent batches them itself)."""
        if self.rate == SAMPLE_RATE:
            super().align(first, every)

    def _callback(self, indata: Any, _frames: int, _time: Any, status: Any) -> None:
        if status:
            log.warning("microphone: %s", status)
        self._post_audio(np.asarray(indata, dtype=np.float32)[:, 0].copy())

    async def blocks(self) -> AsyncIterator[Float32Array]:
        self._loop = asyncio.get_running_loop()
        try:
            stream = self._sd.InputStream(
                device=self.device,
                channels=1,
                samplerate=self.rate,
                dtype="float32",
                blocksize=round(self.rate * BLOCK_S),
                callback=self._callback,
            )
        except Exception as exc:  # noqa: BLE001 - PortAudio errors carry their own text
            raise SourceError(f"cannot open input device {self.device!r}: {exc}") from None
        with stream:
            while (block := await self._queue.get()) is not None:
                yield self._resample(block)
