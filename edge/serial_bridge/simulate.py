"""``simulate-board``: an RP2040 on your PC. Runs the host build of the firmware core
(``sa_core_wav``) on a recording and writes its frames to a serial port, paced by the frames'
``uptime_ms`` (real time by default).

``--port PATH``: if PATH is an existing serial device the frames are written to it (e.g. one end
of a null-modem pair); otherwise a pseudo-terminal is created and PATH becomes a symlink to it
(like udev's ``/dev/ttyACM0``), so ``soundalert serial-bridge --port PATH`` reads it. Like a
board that starts when plugged in, the simulator waits for a reader to open the port before
it sends the HELLO; when it ends it closes the pty, which the bridge sees as an unplug.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import shutil
import stat
import struct
import subprocess
import termios
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edge.dsp.protocol import Rejection, parse_line

__all__ = [
    "DEFAULT_CORE",
    "FIRMWARE_DIR",
    "SimulatorError",
    "ensure_core_binary",
    "pty_port",
    "run_core",
    "schedule",
    "simulate_board",
]

log = logging.getLogger(__name__)

FIRMWARE_DIR: Final = Path(__file__).resolve().parents[2] / "firmware" / "rp2040"
DEFAULT_CORE: Final = FIRMWARE_DIR / "build" / "host" / "sa_core_wav"
BOARD_LEVEL_EVERY: Final = 62
"""LEVEL frames every 62 analysis frames (about 1 s), as the board firmware sends them."""
_READER_SETTLE_S: Final = 0.3
"""After a reader opened the pty: pyserial flushes its input buffer right after opening."""


class SimulatorError(RuntimeError):
    """A problem worded for the person running the simulator."""


def ensure_core_binary(binary: Path = DEFAULT_CORE) -> Path:
    """The host CLI of the firmware core, built with make if it is missing."""
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if binary != DEFAULT_CORE:
        raise SimulatorError(f"firmware core binary {binary} does not exist or is not executable")
    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise SimulatorError(f"firmware sources not found at {FIRMWARE_DIR}; pass --core PATH")
    missing = [tool for tool in ("make", os.environ.get("CC", "gcc")) if shutil.which(tool) is None]
    if missing:
        raise SimulatorError(
            f"{DEFAULT_CORE} is not built and building it needs {' and '.join(missing)} "
            "(e.g. apt-get install gcc make), or pass --core PATH"
        )
    log.info("building %s", binary)
    target = binary.relative_to(FIRMWARE_DIR)
    done = subprocess.run(  # noqa: S603 - fixed arguments
        ["make", "-C", str(FIRMWARE_DIR), str(target)],  # noqa: S607 - make from PATH
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not binary.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SimulatorError(f"building the firmware core failed: {' | '.join(tail)}")
    return binary


def run_core(binary: Path, wav: Path, *, board_id: str, level_every: int) -> bytes:
    """The exact bytes the board would send for ``wav`` (16 kHz mono 16-bit)."""
    done = subprocess.run(  # noqa: S603 - our binary, arguments we built
        [str(binary), "--board-id", board_id, "--level-every", str(level_every), str(wav)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
        raise SimulatorError(f"the firmware core rejected {wav}: {message}")
    return done.stdout


@dataclass(frozen=True, slots=True)
class Timed:
    at_s: float
    """Board uptime of the line, seconds."""
    line: bytes


def schedule(wire: bytes) -> list[Timed]:
    """Each line with the uptime at which the board sent it."""
    out: list[Timed] = []
    at = 0.0
    for line in wire.splitlines(keepends=True):
        frame = parse_line(line)
        if not isinstance(frame, Rejection):
            at = frame.uptime_ms / 1000.0
        out.append(Timed(at, line))
    return out


def _is_our_symlink(path: Path) -> bool:
    return path.is_symlink() and str(path.readlink()).startswith("/dev/pts/")


@contextlib.contextmanager
def pty_port(path: Path) -> Iterator[int]:
    """A pseudo-terminal whose slave end is reachable at ``path`` (a symlink); yields the
    master fd. The symlink is removed and the pty closed on exit."""
    if path.exists() and not _is_our_symlink(path):
        raise SimulatorError(f"{path} exists and is not a serial device or a pty symlink")
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(os.ttyname(slave))
        temporary.replace(path)  # atomic, like udev re-creating /dev/ttyACM0
        os.close(slave)
        slave = -1
        yield master
    finally:
        if slave >= 0:
            os.close(slave)
        if _is_our_symlink(path):
            path.unlink(missing_ok=True)
        os.close(master)


def _wait_for_reader(master: int, timeout_s: float | None) -> None:
    """A pty master reports POLLHUP until someone opens the slave end."""
    poller = select.poll()
    poller.register(master, select.POLLOUT)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        events = poller.poll(100)
        if events and not events[0][1] & select.POLLHUP:
            time.sleep(_READER_SETTLE_S)
            return
        if deadline is not None and time.monotonic() > deadline:
            raise SimulatorError(f"nobody opened the port within {timeout_s:g} s")


def _wait_until_read(slave_name: str, timeout_s: float = 5.0) -> None:
    """Closing the master discards what the reader has not read yet: wait for it to drain."""
    try:
        fd = os.open(slave_name, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pending = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
            if pending == 0:
                return
            time.sleep(0.02)
    finally:
        os.close(fd)


def _write_paced(fd: int, lines: list[Timed], speed: float) -> int:
    start = time.monotonic()
    for item in lines:
        if speed > 0:
            delay = start + item.at_s / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        view = memoryview(item.line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    return len(lines)


def simulate_board(
    port: Path,
    wav: Path,
    *,
    speed: float = 1.0,
    core: Path = DEFAULT_CORE,
    board_id: str = "sim",
    level_every: int = BOARD_LEVEL_EVERY,
    wait_s: float | None = None,
    hold_s: float = 0.0,
) -> int:
    """Run the core on ``wav`` and write its lines to ``port``; returns the lines written."""
    if speed < 0:
        raise SimulatorError("--speed must be 0 (as fast as possible) or positive")
    wire = run_core(ensure_core_binary(core), wav, board_id=board_id, level_every=level_every)
    lines = schedule(wire)
    duration = lines[-1].at_s if lines else 0.0
    log.info("%d frames, %.1f s of board time", len(lines), duration)
    if port.exists() and not _is_our_symlink(port) and stat.S_ISCHR(port.stat().st_mode):
        fd = os.open(port, os.O_WRONLY | os.O_NOCTTY)
        try:
            count = _write_paced(fd, lines, speed)
            time.sleep(hold_s)
        finally:
            os.close(fd)
        return count
    with pty_port(port) as master:
        log.info("board simulated at %s -> %s; waiting for a reader", port, port.readlink())
        _wait_for_reader(master, wait_s)
        count = _write_paced(master, lines, speed)
        _wait_until_read(os.path.realpath(port))
        time.sleep(hold_s)
    return count
