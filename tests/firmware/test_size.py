"""The portable core cross-compiles for the RP2040's Cortex-M0+ and fits its memory."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "rp2040"
RP2040_FLASH = 2 * 1024 * 1024
RP2040_SRAM = 264 * 1024
log = logging.getLogger(__name__)


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="needs Debian's gcc-arm-none-eabi (./run test installs it)",
)
def test_core_cross_compiles_for_cortex_m0plus_within_rp2040_memory() -> None:
    result = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), "size"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = {
        kind: (int(flash), int(ram))
        for kind, flash, ram in re.findall(
            r"^(core|image)[^:]*:\s+flash\s+(\d+) B.*RAM\s+(\d+) B", result.stdout, re.MULTILINE
        )
    }
    assert set(figures) == {"core", "image"}, result.stdout
    flash, ram = figures["image"]
    log.info("cortex-m0plus -Os: core %d B flash; image %d B flash (%.2f%% of 2 MB), %d B RAM "
             "(%.2f%% of 264 KB)", figures["core"][0], flash, 100 * flash / RP2040_FLASH, ram,
             100 * ram / RP2040_SRAM)  # fmt: skip
    assert 0 < figures["core"][0] <= flash < RP2040_FLASH
    assert 0 < ram < RP2040_SRAM // 4, "the core should leave the board most of its SRAM"
