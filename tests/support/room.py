"""A virtual room with a microphone: a PulseAudio server with a null sink at 48 kHz whose monitor
is the default input, so that PortAudio (through ALSA's pulse plugin) records what ``paplay``
plays into it. There is no sound card here."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

__all__ = ["Room", "room"]


@dataclass(frozen=True)
class Room:
    env: dict[str, str]

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["paplay", "--device=room", str(wav)], env=self.env)


@pytest.fixture
def room(tmp_path: Path) -> Iterator[Room]:
    for tool in ("pulseaudio", "paplay", "pactl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed for a virtual microphone (./run test installs it)")
    if find_spec("sounddevice") is None:
        pytest.skip("the sounddevice package is not installed (the 'mic' extra)")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    socket = runtime / "native"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime),
           "PULSE_SERVER": f"unix:{socket}"}  # fmt: skip
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
         "--use-pid-file=no", "-L", f"module-native-protocol-unix auth-anonymous=1 socket={socket}",
         "-L", "module-null-sink sink_name=room rate=48000 channels=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True,
                             check=False).returncode != 0:  # fmt: skip
            assert server.poll() is None, "pulseaudio exited at start"
            assert time.monotonic() < deadline, "pulseaudio did not come up"
            time.sleep(0.1)
        subprocess.run(["pactl", "set-default-source", "room.monitor"], env=env, check=True)
        yield Room(env)
    finally:
        server.terminate()
        server.wait(10)
