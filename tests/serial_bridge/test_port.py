"""--auto: RP2040 boards found by USB vendor id; a udev-style symlink resolves to its board."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from serial.tools import list_ports

from edge.serial_bridge.port import RP2040_VID, find_boards, usb_serial_for


def test_boards_are_found_by_vendor_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    device = tmp_path / "ttyACM1"
    device.touch()
    ports = [
        SimpleNamespace(device="/dev/ttyUSB0", vid=0x0403, serial_number="FTDI", description="x"),
        SimpleNamespace(
            device=str(device), vid=RP2040_VID, serial_number="E6613893", description="Pico"
        ),
        SimpleNamespace(device="/dev/ttyS0", vid=None, serial_number=None, description=None),
    ]
    monkeypatch.setattr(list_ports, "comports", lambda: ports)
    assert [b.device for b in find_boards()] == [str(device)]
    link = tmp_path / "soundalert-kitchen"
    link.symlink_to(device)
    assert usb_serial_for(str(link)) == "E6613893"
    assert usb_serial_for("/dev/ttyUSB0") is None
