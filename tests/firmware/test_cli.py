"""sa_core_wav writes nothing but valid protocol lines, on the sample clock."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

from edge.dsp import synth
from edge.dsp.protocol import Detection, Heartbeat, Hello, Level
from tests.firmware.conftest import HostBuild, parse_all


def _write_wav(path: Path, audio: np.ndarray[tuple[int], np.dtype[np.int16]]) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.astype("<i2").tobytes())


def test_wav_and_raw_input_give_identical_wire_bytes(host_build: HostBuild, tmp_path: Path) -> None:
    audio = synth.to_int16(np.concatenate([np.zeros(8000), synth.t3(2)]))
    wav = tmp_path / "t3.wav"
    _write_wav(wav, audio)
    from_wav = subprocess.run(
        [str(host_build.cli), "--level-every", "10", str(wav)],
        capture_output=True,
        check=True,
    ).stdout
    assert from_wav == host_build.run(audio, "--level-every", "10")


def test_output_is_only_valid_frames_on_the_sample_clock(host_build: HostBuild) -> None:
    audio = synth.to_int16(np.concatenate([np.zeros(8000), synth.t3(2)]))
    frames, rejections = parse_all(host_build.run(audio, "--level-every", "1", "--block", "37"))
    assert rejections == []
    assert isinstance(frames[0], Hello)
    assert frames[0].uptime_ms == 0
    assert [f.seq for f in frames] == list(range(len(frames)))
    levels = [f for f in frames if isinstance(f, Level)]
    assert len(levels) == audio.size // 256
    assert [f.uptime_ms for f in levels] == [16 * (i + 1) for i in range(len(levels))]
    heartbeats = [f for f in frames if isinstance(f, Heartbeat)]
    assert len(heartbeats) == audio.size // 16000
    detections = [f for f in frames if isinstance(f, Detection)]
    assert [(d.detector, d.cycle) for d in detections] == [("t3", 1), ("t3", 2)]
    assert abs(detections[0].onset_ms - 500) <= 16
    assert abs(detections[1].onset_ms - 4500) <= 16


def test_bad_input_fails_with_empty_stdout(host_build: HostBuild, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    with wave.open(str(bad), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(b"\0" * 400)
    done = subprocess.run([str(host_build.cli), str(bad)], capture_output=True, check=False)
    assert done.returncode == 2
    assert done.stdout == b""
    assert b"16 kHz mono" in done.stderr
