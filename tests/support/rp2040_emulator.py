"""The committed RP2040 board image (firmware/rp2040/release/) running in rp2040js under node
(firmware/rp2040/emulator/board.mjs), with audio on its PDM microphone pins and its USB CDC on
a pseudo-terminal, so ``soundalert serial-bridge --port PATH`` reads it as it reads a real board.

The pty (``tests.serial_bridge.conftest.Board``) appears when the emulated host has enumerated
the board (PATH becomes a symlink to it, as udev makes /dev/ttyACM0) and goes away when the
board resets (USB disconnects); while a reader has the pty open the host asserts DTR, as
Linux's cdc_acm does on open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from tests.serial_bridge.conftest import Board as PtyBoard

__all__ = [
    "EMULATOR",
    "RELEASE",
    "EmulatedBoard",
    "emulator_missing",
    "release_manifest",
    "run_emulator",
    "write_audio",
]

FIRMWARE: Final = Path(__file__).resolve().parents[2] / "firmware" / "rp2040"
EMULATOR: Final = FIRMWARE / "emulator"
RELEASE: Final = FIRMWARE / "release"
NODE: Final = shutil.which("node")


def emulator_missing() -> str | None:
    """Why the emulator cannot run here, or None."""
    if NODE is None:
        return "node is not installed (needed to run rp2040js)"
    if not (EMULATOR / "node_modules" / "rp2040js").is_dir():
        return f"rp2040js is not installed: run 'npm ci' in {EMULATOR} (./run test does)"
    if not (RELEASE / "manifest.json").is_file():
        return "no board image in firmware/rp2040/release (make -C firmware/rp2040 board)"
    return None


def release_manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((RELEASE / "manifest.json").read_text())
    return manifest


def write_audio(path: Path, audio: npt.NDArray[np.floating[Any]]) -> Path:
    """16 kHz mono float audio in [-1, 1] as the raw s16le the emulator's microphone plays."""
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    path.write_bytes(pcm.tobytes())
    return path


def _command(audio: Path, *, stall_at_s: float | None, end_at_s: float | None,
             realtime: bool, open_port: bool, profile: bool) -> list[str]:  # fmt: skip
    assert NODE is not None
    manifest = release_manifest()
    args = [NODE, str(EMULATOR / "board.mjs"), "--image", str(RELEASE / manifest["image"]),
            "--audio", str(audio)]  # fmt: skip
    if stall_at_s is not None:
        args += ["--stall-at", str(stall_at_s)]
    if end_at_s is not None:
        args += ["--end-at", str(end_at_s)]
    if realtime:
        args.append("--realtime")
    if open_port:
        args.append("--open")
    if profile:
        args += ["--profile", str(RELEASE / "manifest.json")]
    return args


def run_emulator(audio: Path, *, end_at_s: float | None = None, profile: bool = False,
                 timeout_s: float = 600) -> list[dict[str, Any]]:  # fmt: skip
    """Run the board as fast as the emulator goes, the port open from the start (no pty);
    returns its events (see board.mjs)."""
    command = _command(audio, stall_at_s=None, end_at_s=end_at_s, realtime=False,
                       open_port=True, profile=profile)  # fmt: skip
    done = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the emulator failed ({done.returncode}): {done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines()]


@dataclass
class EmulatedBoard:
    """The board image on rp2040js, fed ``audio`` (raw s16le file), its CDC at ``port``."""

    port: Path
    audio: Path
    stall_at_s: float | None = None
    """Freeze the microphone's state machine at this point of the audio (the watchdog's cue)."""
    end_at_s: float | None = None
    serial: bytearray = field(default_factory=bytearray)
    events: list[dict[str, Any]] = field(default_factory=list)
    resets: int = 0
    end: dict[str, Any] | None = None
    _process: asyncio.subprocess.Process | None = None
    _pty: PtyBoard = field(init=False)
    _is_open: bool = False

    def __post_init__(self) -> None:
        self._pty = PtyBoard(self.port)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EmulatedBoard]:
        command = _command(self.audio, stall_at_s=self.stall_at_s, end_at_s=self.end_at_s,
                           realtime=True, open_port=False, profile=False)  # fmt: skip
        self._process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        tasks = [asyncio.create_task(self._read_events()), asyncio.create_task(self._watch())]
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._process.returncode is None:
                self._process.kill()
            await self._process.wait()
            self._unplug()

    async def finished(self, within_s: float) -> dict[str, Any]:
        """Waits until the emulator has run the audio to ``end_at_s``; its end event."""
        assert self._process is not None
        async with asyncio.timeout(within_s):
            while self.end is None:
                if self._process.returncode is not None:
                    assert self._process.stderr is not None
                    error = (await self._process.stderr.read()).decode(errors="replace")
                    raise AssertionError(f"the emulator exited early: {error.strip()}")
                await asyncio.sleep(0.05)
        return self.end

    def _plug(self) -> None:
        """A new pty for a newly enumerated board, reached through the ``port`` symlink."""
        self._pty.unplug()
        self._pty.plug()
        self._is_open = False

    def _unplug(self) -> None:
        self._pty.unplug()
        if self.port.is_symlink():
            self.port.unlink()

    async def _send(self, command: str) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(f"{command}\n".encode())
        await self._process.stdin.drain()

    async def _watch(self) -> None:
        """DTR follows the pty: a pty master reports POLLHUP while nobody has the slave open."""
        while True:
            if self._pty.master is not None:
                poller = select.poll()
                poller.register(self._pty.master, select.POLLOUT)
                opened = not poller.poll(0)[0][1] & select.POLLHUP
                if opened != self._is_open:
                    self._is_open = opened
                    await self._send("open" if opened else "close")
            await asyncio.sleep(0.02)

    async def _read_events(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            event: dict[str, Any] = json.loads(line)
            kind = event["event"]
            if kind == "serial":
                data = bytes.fromhex(event["hex"])
                self.serial += data
                if self._pty.master is not None:
                    self._pty.write(data)
                continue
            self.events.append(event)
            if kind == "usb" and event["state"] == "configured":
                self._plug()
            elif kind == "usb":
                self._unplug()
            elif kind == "reset":
                self.resets += 1
            elif kind == "end":
                self.end = event
