"""Audio sources: any WAV to 16 kHz mono, pacing, raw PCM on stdin, a missing sounddevice."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from edge.agent.features import dominant_hz
from edge.agent.sources import Cuts, MicrophoneSource, SourceError, StdinSource, WavFileSource
from tests.agent.conftest import AGENT
from tests.support.mosquitto import free_port


def _write(path: Path, rate: int, channels: int, seconds: float, freq: float = 1000.0) -> None:
    t = np.arange(round(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    frames = np.repeat(tone[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((frames * 32767).astype("<i2").tobytes())


async def _collect(source: WavFileSource | StdinSource) -> np.ndarray:
    return np.concatenate([b async for b in source.blocks()])


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2), (8000, 1), (48000, 6)])
async def test_any_wav_becomes_16khz_mono(tmp_path: Path, rate: int, channels: int) -> None:
    path = tmp_path / "in.wav"
    _write(path, rate, channels, 2.0)
    x = await _collect(WavFileSource(path, speed=0))
    assert x.dtype == np.float32
    assert x.size == pytest.approx(32000, abs=40)
    assert dominant_hz(x[4000:20000]) == pytest.approx(1000, abs=2)
    assert float(np.max(np.abs(x[4000:20000]))) == pytest.approx(0.5, abs=0.02)


async def test_speed_one_replays_in_real_time(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    _write(path, 16000, 1, 0.6)
    began = time.monotonic()
    await _collect(WavFileSource(path, speed=1))
    assert time.monotonic() - began >= 0.45
    began = time.monotonic()
    await _collect(WavFileSource(path, speed=0))
    assert time.monotonic() - began < 0.3


def test_a_file_that_is_not_wav_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"not a wav file at all")
    with pytest.raises(SourceError, match="cannot read WAV"):
        WavFileSource(path)


async def test_stdin_reads_s16le_and_ends_at_eof() -> None:
    samples = (np.arange(5001) % 200 - 100).astype("<i2")
    source = StdinSource(io.BytesIO(samples.tobytes() + b"\x01"))  # and an odd trailing byte
    x = await _collect(source)
    np.testing.assert_allclose(x, samples / 32768.0, atol=1e-7)


@pytest.mark.parametrize("size", [1, 1600, 7000, 40000])
def test_cuts_end_blocks_at_the_window_ends_whatever_comes_in(size: int) -> None:
    x = np.arange(40000, dtype=np.float32)
    cuts = Cuts(15600, 7680)
    blocks = [b for at in range(0, x.size, size) for b in cuts.add(x[at : at + size])]
    rest = cuts.rest()
    assert rest is not None
    assert cuts.rest() is None
    np.testing.assert_array_equal(np.concatenate([*blocks, rest]), x)
    assert [int(b[-1]) + 1 for b in blocks] == [15600, 23280, 30960, 38640]


async def test_an_aligned_stdin_hands_over_one_block_per_window_end() -> None:
    samples = (np.arange(40000) % 200 - 100).astype("<i2")
    source = StdinSource(io.BytesIO(samples.tobytes()))
    source.align(15600, 7680)
    blocks = [b async for b in source.blocks()]
    assert [b.size for b in blocks] == [15600, 7680, 7680, 7680, 1360]
    np.testing.assert_allclose(np.concatenate(blocks), samples / 32768.0, atol=1e-7)


def test_missing_sounddevice_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes any import of it fail, installed or not (the dev extra has it).
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(SourceError, match="live capture needs the sounddevice package"):
        MicrophoneSource()


def test_sigterm_while_stdin_is_open_stops_the_agent_cleanly(tmp_path: Path) -> None:
    """``arecord | soundalert agent --stdin`` stopped by systemd: the reader thread is blocked
    in a read of stdin. A buffered stdin's lock made the interpreter abort at exit (rc 134)."""
    log = tmp_path / "agent.log"
    with log.open("wb") as err:
        agent = subprocess.Popen(
            [*AGENT, "--stdin", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--outbox",
             str(tmp_path / "o.sqlite3"), "--metrics-port", str(port := free_port())],
            stdin=subprocess.PIPE, stderr=err,
        )  # fmt: skip
    assert agent.stdin is not None
    try:
        agent.stdin.write(np.zeros(16000, dtype="<i2").tobytes())
        agent.stdin.flush()
        deadline = time.monotonic() + 60
        while not _serving(port):  # the model is loaded and the source is reading
            assert agent.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(agent.pid, signal.SIGTERM)
        agent.wait(timeout=20)  # stdin stays open: the reader is still blocked in its read
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        agent.stdin.close()
    assert agent.returncode == 0, log.read_text()[-2000:]
    assert "Fatal Python error" not in log.read_text()


def _serving(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
