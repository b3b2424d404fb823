"""A real, small filesystem for disk-full tests: a tmpfs of a given size, mounted for one test.

Mounting needs root (or CAP_SYS_ADMIN); without it the test is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["fill", "small_tmpfs"]


@contextmanager
def small_tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` KiB at ``path`` (created), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("disk-full tests mount a small tmpfs, which needs root")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip()}): disk-full tests need it")
    try:
        yield path
    finally:
        done = subprocess.run(["umount", str(path)], capture_output=True, check=False)
        if done.returncode != 0:  # still busy (a process keeps a file open): detach it
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(path: Path, leave_kib: int) -> Path:
    """Take all but about ``leave_kib`` KiB of the filesystem of ``path`` with one file."""
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    filler = path / "filler"
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave_kib * 1024))
    return filler
