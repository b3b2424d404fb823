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
    "CHUNK",
    "CORPUS_ENV",
    "HALVES",
    "MANIFEST",
    "NEGATIVE",
    "Clip",
    "CorpusMissingError",
    "Event",
    "corpus_dir",
    "events",
    "read_manifest",
    "write_manifest",
]

CORPUS_ENV: Final = "SOUNDALERT_CORPUS"
MANIFEST: Final = Path(__file__).with_name("manifest.csv")
HALVES: Final = ("tuning", "validation")
NEGATIVE: Final = "negative"
CHUNK: Final = "chunk "
"""A clip whose note starts so is one piece of a longer recording (``chunk N ...``)."""


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


@dataclass(frozen=True)
class Event:
    """One sound event: a clip, or the chunks of one recording joined in order (a recording cut
    into 1 s pieces is one glass breaking, not five)."""

    clip_id: str
    half: str
    category: str
    kind: str
    parts: tuple[Clip, ...]

    @property
    def is_target(self) -> bool:
        return self.category != NEGATIVE

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts)


def _chunk(clip: Clip) -> int:
    return int(clip.note.removeprefix(CHUNK).split()[0])


def events(clips: list[Clip]) -> list[Event]:
    """The corpus's sound events, in manifest order of their first clip."""
    grouped: dict[tuple[str, str, str, str], list[Clip]] = {}
    for clip in clips:
        key = (clip.half, clip.category, clip.kind,
               clip.source if clip.note.startswith(CHUNK) else clip.clip_id)  # fmt: skip
        grouped.setdefault(key, []).append(clip)
    out = []
    for group in grouped.values():
        first = group[0]
        parts = sorted(group, key=_chunk) if first.note.startswith(CHUNK) else group
        event_id = first.clip_id if len(parts) == 1 else f"{first.recorder[:40]}-{len(parts)}"
        out.append(Event(event_id, first.half, first.category, first.kind, tuple(parts)))
    return out


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
