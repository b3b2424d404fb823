"""Another revision of this repository's files, for benchmarks that run a baseline beside the
working tree."""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Final

__all__ = ["REPO", "export"]

REPO: Final = Path(__file__).resolve().parents[1]


def export(ref: str, into: Path, *paths: Path) -> Path:
    """The files of revision ``ref`` (all of them, or those under ``paths``), extracted under
    ``into`` by ``git archive``; returns ``into``. A revision git does not know raises
    :class:`ValueError` with git's message."""
    command = ["git", "-C", str(REPO), "archive", ref, *(str(p) for p in paths)]
    try:
        tar = subprocess.run(command, capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as exc:
        raise ValueError(f"cannot read revision {ref!r}: {exc.stderr.decode().strip()}") from None
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into
