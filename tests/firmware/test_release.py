"""The committed board image (firmware/rp2040/release/) was built from the sources in this
checkout: CI has no pico-sdk to rebuild it, so a change to board/, core/ or the build script
without `make -C firmware/rp2040 board` fails here (the message says the command)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.firmware.conftest import FIRMWARE

RELEASE_TOOL = FIRMWARE / "tools" / "board_release.py"


def test_the_committed_image_matches_its_sources() -> None:
    done = subprocess.run([sys.executable, str(RELEASE_TOOL), "check"], capture_output=True,
                          text=True, check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_fits_the_rp2040_and_says_which_sources_it_is() -> None:
    manifest = json.loads((FIRMWARE / "release" / "manifest.json").read_text())
    memory = manifest["memory"]
    assert 0 < memory["flash_bytes"] < memory["flash_total"] == 2 * 1024 * 1024
    used_ram = memory["ram_static_bytes"] + memory["ram_stack_heap_reserved_bytes"]
    assert 0 < used_ram < memory["ram_total"] // 4
    assert memory["ram_total"] == 264 * 1024
    assert manifest["fw_version"].endswith("-" + manifest["sources_sha256"][:8])
    assert manifest["pico_sdk"]["commit"] == "a1438dff1d38bd9c65dbd693f0e5db4b9ae91779"


def test_a_changed_source_without_a_rebuild_fails_the_check(tmp_path: Path) -> None:
    copy = tmp_path / "firmware" / "rp2040"
    for part in ("board", "core", "tools", "release"):
        shutil.copytree(FIRMWARE / part, copy / part)
    tool = copy / "tools" / "board_release.py"
    check = [sys.executable, str(tool), "check"]
    assert subprocess.run(check, capture_output=True, check=False).returncode == 0
    source = copy / "core" / "sa_pattern.c"
    source.write_text(source.read_text() + "\n/* a change */\n")
    done = subprocess.run(check, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "make -C firmware/rp2040 board" in done.stdout
