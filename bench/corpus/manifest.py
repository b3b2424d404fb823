"""The corpus manifest: one row per clip, and where the rebuilt audio lives.

A clip is a *target* of one policy category (``category`` is its name) or a hard *negative*
(``category`` is ``negative``; ``kind`` says what it is: speech, music, cough, ...). ``source``
names the recording a clip was cut from and ``recorder`` who or what recorded it; the split into
a tuning and a validation half is by recorder, so no recording and no recorder is in both.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Final

__all__ = [
    "CORPUS_ENV",
    "HALVES",
    "MANIFEST",
    "NEGATIVE",
    "Clip",
    "CorpusMissingError",
    "corpus_dir",
    "read_manifest",
    "write_manifest",
]

CORPUS_ENV: Final = "SOUNDALERT_CORPUS"
MANIFEST: Final = Path(__file__).with_name("manifest.csv")
HALVES: Final = ("tuning", "validation")
NEGATIVE: Final = "negative"


class CorpusMissingError(RuntimeError):
    """The rebuilt corpus is not where ``SOUNDALERT_CORPUS`` says; the message says what to do."""


@dataclass(frozen=True)
class Clip:
    clip_id: str
    half: str
    category: str
    kind: str
    repository: str
    commit: str
    path: str
    sha256: str
    licence: str
    source: str
    recorder: str
    seconds: float
    note: str = ""

    @property
    def is_target(self) -> bool:
        return self.category != NEGATIVE

    @property
    def wav(self) -> Path:
        """Where :mod:`bench.corpus.build` writes it, relative to the corpus folder."""
        return Path(self.half) / self.category / f"{self.clip_id}.wav"


def read_manifest(path: Path = MANIFEST) -> list[Clip]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = [f.name for f in fields(Clip)]
    clips = []
    for row in rows:
        values: dict[str, object] = {name: row[name] for name in names}
        values["seconds"] = float(row["seconds"])
        clips.append(Clip(**values))  # type: ignore[arg-type]
    ids = [c.clip_id for c in clips]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate clip ids")
    return clips


def write_manifest(clips: list[Clip], path: Path = MANIFEST) -> None:
    names = [f.name for f in fields(Clip)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for clip in sorted(clips, key=lambda c: (c.half, c.category, c.kind, c.clip_id)):
            row = asdict(clip)
            row["seconds"] = f"{clip.seconds:.2f}"
            writer.writerow(row)


def corpus_dir(*, required: bool = True) -> Path | None:
    """The rebuilt corpus (``$SOUNDALERT_CORPUS``), checked; ``None`` if absent and not
    ``required``."""
    value = os.environ.get(CORPUS_ENV)
    problem = None
    if not value:
        problem = f"{CORPUS_ENV} is not set"
    elif not (Path(value) / "meta.csv").is_file():
        problem = f"{CORPUS_ENV}={value} holds no rebuilt corpus (no meta.csv there)"
    if problem is None:
        return Path(value)  # type: ignore[arg-type]
    if not required:
        return None
    raise CorpusMissingError(
        f"the development corpus is absent: {problem}. Rebuild it from local copies of the "
        f"repositories in bench/corpus/manifest.csv with "
        f"'{CORPUS_ENV}=DIR python -m bench.corpus.build --mirror MIRROR_DIR'"
    )
