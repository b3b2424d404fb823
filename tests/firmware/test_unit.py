"""The C unit tests, under AddressSanitizer and UBSan, and the generated tables."""

from __future__ import annotations

import subprocess
import sys

from tests.firmware.conftest import FIRMWARE, HostBuild


def test_c_unit_tests_pass(host_build: HostBuild) -> None:
    done = subprocess.run(
        [str(host_build.unit_tests)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failures" in done.stdout


def test_tables_match_their_generator() -> None:
    done = subprocess.run(
        [sys.executable, str(FIRMWARE / "tools" / "gen_tables.py"), "--check"], check=False
    )
    assert done.returncode == 0, "core/sa_tables.c drifted: run `make -C firmware/rp2040 tables`"
