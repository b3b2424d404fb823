"""Read files out of local git copies of public repositories (no work tree needed).

A mirror folder holds one git directory per repository, at ``<owner>+<name>/repo`` (a bare
directory, or a clone with ``.git`` inside).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from bench.corpus.manifest import MANIFEST

__all__ = ["MIRROR_ENV", "RATE", "Mirror", "MirrorError", "arguments", "decode", "sha256"]

MIRROR_ENV: Final = "SOUNDALERT_MIRROR"
RATE: Final = 16_000


class MirrorError(RuntimeError):
    """A repository, commit or file is not in the local copies."""


class Mirror:
    def __init__(self, root: Path | None = None) -> None:
        value = root or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
        if value is None:
            raise MirrorError(
                f"give --mirror DIR or set {MIRROR_ENV}: the folder that holds "
                "local git copies of the repositories (<owner>+<name>/repo)"
            )
        self.root = value

    def git_dir(self, repository: str) -> Path:
        base = self.root / repository.replace("/", "+") / "repo"
        for candidate in (base / ".git", base):
            if (candidate / "HEAD").is_file():
                return candidate
        raise MirrorError(f"no local copy of {repository} under {self.root} (expected {base})")

    def _git(self, repository: str, *args: str) -> bytes:
        git = shutil.which("git")
        if git is None:
            raise MirrorError("git is not installed")
        done = subprocess.run(
            [git, "--git-dir", str(self.git_dir(repository)), *args],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise MirrorError(
                f"{repository}: git {' '.join(args)}: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )
        return done.stdout

    def resolve(self, repository: str, ref: str) -> str:
        return self._git(repository, "rev-parse", f"{ref}^{{commit}}").decode().strip()

    def files(self, repository: str, commit: str) -> dict[str, int | None]:
        """Path -> size in bytes (``None`` for a file the copy lacks: too large, or LFS)."""
        out: dict[str, int | None] = {}
        listing = self._git(repository, "ls-tree", "-r", "-l", "-z", commit).decode()
        for entry in listing.split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode, _kind, _blob, size = meta.split()
            if mode == "120000":  # a symbolic link names another file
                continue
            out[path] = int(size) if size.isdigit() else None
        return out

    def read(self, repository: str, commit: str, path: str) -> bytes:
        data = self._git(repository, "cat-file", "blob", f"{commit}:{path}")
        if data.startswith(b"version https://git-lfs"):
            raise MirrorError(f"{repository}:{path} is a Git LFS pointer, not audio")
        return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes) -> npt.NDArray[np.float32]:
    """Any WAV/FLAC/OGG/MP3 file's bytes -> 16 kHz mono float32 in [-1, 1]."""
    try:
        audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise MirrorError(f"cannot decode audio: {exc}") from exc
    mono = audio.mean(axis=1)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE)
    out: npt.NDArray[np.float32] = np.clip(mono, -1.0, 1.0).astype(np.float32)
    return out


def arguments(doc: str | None) -> argparse.Namespace:
    """The corpus commands' options: where the repository copies are, which manifest."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else "")
    parser.add_argument(
        "--mirror",
        type=Path,
        default=None,
        help=f"folder of local repository copies (default ${MIRROR_ENV})",
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    return parser.parse_args()
