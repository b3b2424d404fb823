"""The serial port: finding RP2040 boards, opening a port, reading it from asyncio.

pyserial configures the port (raw mode, speed, an exclusive lock); reading goes through the
event loop's reader callbacks on the port's file descriptor, so no thread blocks on it. An
unplugged board shows up as end of file or an ``OSError`` on read: :class:`PortGone`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import serial
from serial.tools import list_ports

__all__ = ["RP2040_VID", "BoardPort", "PortGone", "SerialLink", "find_boards", "usb_serial_for"]

RP2040_VID: Final = 0x2E8A
"""Raspberry Pi's USB vendor id (Pico, and RP2040 boards using the pico-sdk's descriptors)."""
_READ_SIZE: Final = 4096


class PortGone(Exception):  # noqa: N818 - an event, not a failure of ours
    """The port reported end of file or an error: the board was unplugged (or reset)."""


@dataclass(frozen=True, slots=True)
class BoardPort:
    device: str
    serial_number: str | None
    description: str


def find_boards() -> list[BoardPort]:
    """RP2040 boards on USB (vendor id 0x2E8A), sorted by device name."""
    found = [
        BoardPort(p.device, p.serial_number, p.description or "")
        for p in list_ports.comports()
        if p.vid == RP2040_VID
    ]
    return sorted(found, key=lambda b: b.device)


def usb_serial_for(path: str) -> str | None:
    """The USB serial number of an RP2040 board's port (a symlink such as a udev name is
    resolved), or None if the port is not such a board."""
    real = str(Path(path).resolve())
    for board in find_boards():
        if str(Path(board.device).resolve()) == real:
            return board.serial_number
    return None


class SerialLink:
    """One open serial port."""

    def __init__(self, path: str, baudrate: int) -> None:
        self.path = path
        # timeout=0: non-blocking; exclusive: a second bridge on the same board fails clearly.
        self._serial = serial.Serial(path, baudrate, timeout=0, exclusive=True)
        self._fd = self._serial.fileno()

    def close(self) -> None:
        self._serial.close()

    async def read(self) -> bytes:
        """The next bytes from the port; raises :class:`PortGone` when it went away."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self._fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(self._fd)
        try:
            data = os.read(self._fd, _READ_SIZE)
        except OSError as exc:
            raise PortGone(f"{self.path}: {exc.strerror or exc}") from None
        if not data:
            raise PortGone(f"{self.path}: end of file (unplugged)")
        return data
