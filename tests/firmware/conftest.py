"""Builds the host side of the RP2040 core once per session (skips if gcc or make is missing)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge.dsp.protocol import Frame, FrameParser, Rejection

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "rp2040"


@dataclass(frozen=True, slots=True)
class HostBuild:
    cli: Path
    cli_sanitized: Path
    unit_tests: Path
    pdm_decimate: Path
    """core/sa_pdm.c (the board's PDM decimator) on stdin/stdout, under the sanitizers."""

    def run(
        self,
        audio: npt.NDArray[np.int16],
        *args: str,
        sanitized: bool = False,
    ) -> bytes:
        """Run the CLI on raw s16le audio; return its stdout (the wire bytes)."""
        binary = self.cli_sanitized if sanitized else self.cli
        done = subprocess.run(
            [str(binary), "--raw", *args],
            input=audio.astype("<i2").tobytes(),
            capture_output=True,
            check=True,
            timeout=60,
        )
        return done.stdout


def parse_all(wire: bytes) -> tuple[list[Frame], list[Rejection]]:
    parser = FrameParser()
    items = parser.feed(wire) + parser.finish()
    frames = [i for i in items if not isinstance(i, Rejection)]
    rejections = [i for i in items if isinstance(i, Rejection)]
    return frames, rejections


@pytest.fixture(scope="session")
def host_build() -> HostBuild:
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build the firmware's host core")
    subprocess.run(
        ["make", "-C", str(FIRMWARE), "-j2", "host", "CC=gcc"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    build = FIRMWARE / "build" / "host"
    return HostBuild(build / "sa_core_wav", build / "sa_core_wav_san", build / "test_core",
                     build / "pdm_decimate_san")  # fmt: skip
