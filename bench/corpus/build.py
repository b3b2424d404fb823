"""Rebuild the corpus audio from local copies of its repositories.

Reads every clip of ``manifest.csv`` out of the local git copy of its repository (at the
manifest's commit), checks the file's sha256, decodes it to 16 kHz mono 16-bit PCM WAV and
writes ``$SOUNDALERT_CORPUS/<half>/<category>/<clip id>.wav`` plus ``meta.csv``. Nothing is
downloaded: a repository that is not copied locally is reported, and its clips are left out.

    SOUNDALERT_CORPUS=/tmp/corpus python -m bench.corpus.build --mirror /work/.mirror
"""

from __future__ import annotations

import csv
import os
import sys
import wave
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.corpus.manifest import CORPUS_ENV, Clip, read_manifest
from bench.corpus.mirror import RATE, Mirror, MirrorError, arguments, decode, sha256

__all__ = ["build", "main", "write_wav"]


def write_wav(path: Path, audio: npt.NDArray[np.float32]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


def build(clips: list[Clip], mirror: Mirror, target: Path) -> tuple[list[Clip], list[str]]:
    """Write every clip it can; returns the clips written and a problem per clip left out."""
    done: list[Clip] = []
    problems: list[str] = []
    for clip in clips:
        out = target / clip.wav
        try:
            data = mirror.read(clip.repository, clip.commit, clip.path)
        except MirrorError as exc:
            problems.append(f"{clip.clip_id}: {exc}")
            continue
        if sha256(data) != clip.sha256:
            problems.append(
                f"{clip.clip_id}: {clip.repository}:{clip.path} has sha256 "
                f"{sha256(data)}, the manifest says {clip.sha256}"
            )
            continue
        if not out.is_file():
            write_wav(out, decode(data))
        done.append(clip)
    with (target / "meta.csv").open("w", newline="", encoding="utf-8") as handle:
        names = ["wav", *asdict(clips[0]).keys()] if clips else ["wav"]
        writer = csv.DictWriter(handle, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for clip in done:
            writer.writerow({"wav": clip.wav.as_posix(), **asdict(clip)})
    return done, problems


def main() -> None:
    args = arguments(__doc__)
    target = os.environ.get(CORPUS_ENV)
    if not target:
        sys.exit(f"set {CORPUS_ENV} to the folder the corpus is rebuilt into")
    try:
        done, problems = build(read_manifest(args.manifest), Mirror(args.mirror), Path(target))
    except MirrorError as exc:
        sys.exit(str(exc))
    for problem in problems:
        print(f"left out {problem}")
    print(
        f"{len(done)} clips in {target} ({sum(c.seconds for c in done) / 3600:.2f} h), "
        f"{len(problems)} left out"
    )
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
