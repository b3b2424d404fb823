"""Which files of which public repositories make up the corpus, and the split by recorder.

Each :class:`Source` names a repository, a ref, and a rule that turns its files into clips
(category, kind, licence, recording, recorder). ``python -m bench.corpus.sources --mirror DIR``
reads local copies of every repository, decodes each file (to check it and measure it), splits
the recorders between the tuning and validation halves, and rewrites ``manifest.csv``. To add
recordings, add a :class:`Source` and run it again: recorders already in the manifest keep
their half, so adding data never moves a recording from one half to the other.

Never add ESC-50 or ESC-10 (in any copy or subset: check that a repository does not vendor it),
nor the repositories reserved for held-out evaluation (:data:`RESERVED`).

    SOUNDALERT_MIRROR=/work/.mirror python -m bench.corpus.sources
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Final

from bench.corpus.manifest import CHUNK, NEGATIVE, Clip, read_manifest, write_manifest
from bench.corpus.mirror import RATE, Mirror, MirrorError, arguments, decode, sha256

__all__ = ["RESERVED", "SOURCES", "Source", "main", "split"]

RESERVED: Final = frozenset(
    {
        "zaeem7744/FireAlarm_Detector",
        "darrenbrazas/tinyml-audio-alert",
        "gveres/donateacry-corpus",
        "IBM/MAX-Audio-Classifier",
        "chaeyoung-lee/wids_tutorial",
        "karolpiczak/ESC-50",
        "samjbobb/smoke-detector-detector",
    }
)
"""Held-out evaluation data (and the real-alarm gate in ../shared/data/real-alarms): never
corpus material."""


@dataclass(frozen=True)
class Entry:
    """What a rule says about one file."""

    category: str
    kind: str
    licence: str
    source: str
    recorder: str
    note: str = ""


Rule = Callable[[str, Callable[[str], bytes]], Entry | None]
"""(path, read another file of the same commit) -> the file's entry, or None to skip it."""


@dataclass(frozen=True)
class Source:
    repository: str
    ref: str
    rule: Rule
    limit_per_source: int | None = None
    """Keep at most this many clips of one recording (many tiny clips of one speaker)."""


# -- rules -------------------------------------------------------------------------------------
def _pico_fire_alarms(path: str, read: Callable[[str], bytes]) -> Entry | None:
    if not path.endswith(".wav"):
        return None
    try:
        text = read(path + ".license.txt")
    except MirrorError:  # the WAV shares the MP3's licence file
        text = read(path.removesuffix(".wav") + ".mp3.license.txt")
    licence = text.decode("utf-8", "replace").strip().replace("\n", " ")
    if path.startswith("ALRMElec_Smoke detector alarm"):
        number = re.search(r"ID (\d+)", path)
        assert number is not None
        # ID 0800 sounds the T3 pattern; 1151 and 1153 are smoke alarms with other rhythms
        # (a continuous beep train): what YAMNet alone must call a possible smoke alarm.
        t3 = number.group(1) == "0800"
        return Entry(
            "smoke_alarm" if t3 else "possible_smoke_alarm",
            "smoke alarm, T3" if t3 else "smoke alarm, other rhythm",
            licence,
            f"bigsoundbank-{number.group(1)}",
            "bigsoundbank",
        )
    if path.startswith("325367__moonlightshadow"):
        return Entry(
            "smoke_alarm",
            "smoke alarm, T3",
            licence,
            "freesound-325367",
            "freesound:MoonlightShadow",
        )
    return None


_FREESOUND_HOLDOUT: Final = {  # Sharwin24 A1 holdout files, from the repository's README
    ("alarm", "file4"): ("509144", "tosha73"),
    ("alarm", "file5"): ("273187", "NLM"),
    ("knocking", "file1"): ("181923", "CapsLok"),
    ("knocking", "file3"): ("450812", "kyles"),
    ("knocking", "file4"): ("395095", "Kaito123"),
    ("clapping", "file2"): ("173203", "escortmarius"),
    ("clapping", "file5"): ("326179", "lizellekleynhans"),
    ("cough", "file5"): ("451260", "Vinci7"),
    ("laugh", "file3"): ("486625", "chistery"),
}
_SHARWIN_CLASSES: Final = {
    "alarm": ("alarm_beep", "alarm clock or phone alarm ringtone"),
    "knock": ("knock", "knocking on a door"),
    "knocking": ("knock", "knocking on a door"),
    "clap": (NEGATIVE, "clapping"),
    "clapping": (NEGATIVE, "clapping"),
    "cough": (NEGATIVE, "cough"),
    "laugh": (NEGATIVE, "laughter"),
}


def _sharwin24(path: str, _read: Callable[[str], bytes]) -> Entry | None:
    """The recordings behind ../shared/data/dev-audio (all but glass and background)."""
    own = re.fullmatch(r"A1/21524/(\w+?)_(large|small)_\d+\.wav", path)
    if own is not None:
        category, kind = _SHARWIN_CLASSES[own.group(1)]
        # The student's own recordings, in a large and a small room: one recorder.
        return Entry(
            category,
            kind,
            "none stated (project dev-audio set: tests and benchmarks)",
            f"sharwin24-{own.group(2)}-{own.group(1)}",
            "sharwin24-student",
            "in ../shared/data/dev-audio",
        )
    held = re.fullmatch(r"A1/21524/(\w+)/(file\d)\.wav", path)
    if held is not None and (held.group(1), held.group(2)) in _FREESOUND_HOLDOUT:
        category, kind = _SHARWIN_CLASSES[held.group(1)]
        number, user = _FREESOUND_HOLDOUT[(held.group(1), held.group(2))]
        return Entry(
            category,
            kind,
            "freesound (licence on the sound's page)",
            f"freesound-{number}",
            f"freesound:{user}",
            "in ../shared/data/dev-audio",
        )
    return None


def _glass_meta(read: Callable[[str], bytes]) -> dict[str, dict[str, str]]:
    rows = csv.DictReader(io.StringIO(read("meta/esc50.csv").decode()))
    return {row["filename"]: row for row in rows}


_glass_cache: dict[int, dict[str, dict[str, str]]] = {}


def _glass(path: str, read: Callable[[str], bytes]) -> Entry | None:
    """1 s clips cut from 5 s Edge Impulse recordings (its meta names them); in ESC-50's file
    format but not ESC-50 (no ESC-50 clip is 1 s long or comes from Edge Impulse)."""
    if not (path.startswith("audio/") and path.endswith(".wav")):
        return None
    meta = _glass_cache.setdefault(id(read), _glass_meta(read))
    row = meta.get(path.removeprefix("audio/"))
    if row is None:
        return None
    recording = row["src_file"].split(".ingestion")[0].split("_chunk")[0]
    chunk = re.search(r"_chunk(\d+)", row["src_file"])
    if row["category"] == "glass_break":
        category, kind = "glass_break", "glass breaking"
    else:
        category, kind = NEGATIVE, "household background"
    # Recorder unknown: each 5 s source recording stands for its own.
    return Entry(
        category,
        kind,
        "none stated (project dev-audio set: tests and benchmarks)",
        f"ei-{recording}",
        f"ei-{recording}",
        f"{CHUNK}{chunk.group(1) if chunk else 0} of its recording; in ../shared/data/dev-audio",
    )


def _fsdd(path: str, _read: Callable[[str], bytes]) -> Entry | None:
    found = re.fullmatch(r"recordings/(\d)_([a-z]+)_(\d+)\.wav", path)
    if found is None or int(found.group(3)) >= 2:  # two of each digit per speaker
        return None
    speaker = found.group(2)
    return Entry(
        NEGATIVE, "speech (spoken digit)", "CC-BY-SA-4.0", f"fsdd-{speaker}", f"fsdd:{speaker}"
    )


def _librosa_data(path: str, read: Callable[[str], bytes]) -> Entry | None:
    if not path.startswith("audio/") or not path.endswith(".ogg") or path.endswith(".hq.ogg"):
        return None
    stem = path.removeprefix("audio/").removesuffix(".ogg")
    if stem == "glacier-bay-humpback" or "Let's" in stem:
        return None
    info = read(f"audio/{stem}.txt").decode("utf-8", "replace")
    licences = re.findall(r"(CC[- ]?BY[- A-Z0-9.]*|Public Domain|CC0)", info)
    licence = licences[-1].strip() if licences else "see repository"
    if re.fullmatch(r"\d+-\d+-\d+", stem):
        speaker = stem.split("-")[0]
        return Entry(
            NEGATIVE, "speech (audiobook)", licence, f"librispeech-{stem}", f"librispeech:{speaker}"
        )
    if stem == "pibble":
        return Entry("dog", "dog howling in its sleep", licence, "librosa-pibble", "librosa:bmcfee")
    if "robin" in stem:
        return Entry(NEGATIVE, "bird song", licence, f"librosa-{stem}", "freesound:InspectorJ")
    artist = (
        stem.split("_-_")[0]
        if "_-_" in stem
        else stem.split("__")[1]
        if "__" in stem
        else "musopen"
    )
    return Entry(NEGATIVE, "music", licence, f"librosa-{stem}", f"music:{artist}")


SOURCES: Final = (
    Source(
        "ArmDeveloperEcosystem/ml-audio-classifier-example-for-pico",
        "fire_alarms",
        _pico_fire_alarms,
    ),
    Source("Sharwin24/Machine-Learning-and-Sensing", "HEAD", _sharwin24),
    Source(
        "prathambansal-swaja/Glass_break_sound_classification_using_transfer_learning",
        "HEAD",
        _glass,
    ),
    Source("Jakobovski/free-spoken-digit-dataset", "HEAD", _fsdd),
    Source("librosa/data", "HEAD", _librosa_data),
)


# -- building the manifest ---------------------------------------------------------------------
def _clip_id(repository: str, path: str) -> str:
    owner = repository.split("/", maxsplit=1)[0].lower()[:12]
    return f"{re.sub(r'[^a-z0-9]+', '', owner)}-{sha256(f'{repository}:{path}'.encode())[:10]}"


def collect(mirror: Mirror, sources: tuple[Source, ...] = SOURCES) -> Iterator[Clip]:
    for source in sources:
        if source.repository in RESERVED:
            raise ValueError(f"{source.repository} is reserved for held-out evaluation")
        commit = mirror.resolve(source.repository, source.ref)

        def read(path: str, repo: str = source.repository, at: str = commit) -> bytes:
            return mirror.read(repo, at, path)

        per_source: dict[str, int] = defaultdict(int)
        for path, size in sorted(mirror.files(source.repository, commit).items()):
            entry = source.rule(path, read)
            if entry is None:
                continue
            if size is None:
                print(f"  skipped {source.repository}:{path}: not in the local copy (>= 4 MiB?)")
                continue
            if source.limit_per_source and per_source[entry.source] >= source.limit_per_source:
                continue
            data = read(path)
            try:
                audio = decode(data)
            except MirrorError as exc:
                print(f"  skipped {source.repository}:{path}: {exc}")
                continue
            per_source[entry.source] += 1
            yield Clip(
                _clip_id(source.repository, path),
                "",
                entry.category,
                entry.kind,
                source.repository,
                commit,
                path,
                sha256(data),
                entry.licence,
                entry.source,
                entry.recorder,
                audio.size / RATE,
                entry.note,
            )


def split(clips: list[Clip], previous: dict[str, str]) -> list[Clip]:
    """Assign every recorder to one half. Recorders already assigned keep their half; new ones
    go, largest first, to the half that holds less of their categories so far (targets counted
    by clip, negatives by 20 s of audio), ties to the validation half: each category lands in
    both halves when it has more than one recorder."""
    by_recorder: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        by_recorder[clip.recorder].append(clip)

    def share(recorder: str) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for clip in by_recorder[recorder]:
            key = clip.category if clip.is_target else f"{NEGATIVE}:{clip.kind}"
            totals[key] += 1.0 if clip.is_target else clip.seconds / 20.0
        return totals

    load: dict[tuple[str, str], float] = defaultdict(float)
    assigned: dict[str, str] = {}

    def place(recorder: str, half: str) -> None:
        assigned[recorder] = half
        for key, amount in share(recorder).items():
            load[(half, key)] += amount

    for recorder, half in previous.items():
        if recorder in by_recorder:
            place(recorder, half)
    pending = sorted(
        (r for r in by_recorder if r not in assigned), key=lambda r: (-sum(share(r).values()), r)
    )
    order = ("validation", "tuning")
    for recorder in pending:
        amounts = share(recorder)
        half = min(
            order, key=lambda h: (sum(load[(h, k)] * a for k, a in amounts.items()), order.index(h))
        )
        place(recorder, half)
    return [replace(clip, half=assigned[clip.recorder]) for clip in clips]


def main() -> None:
    args = arguments(__doc__)
    mirror = Mirror(args.mirror)
    previous = {}
    if args.manifest.is_file():
        previous = {c.recorder: c.half for c in read_manifest(args.manifest)}
    clips = split(list(collect(mirror)), previous)
    write_manifest(clips, args.manifest)
    print(f"wrote {len(clips)} clips to {args.manifest}")
    summary: dict[tuple[str, str], list[float]] = defaultdict(list)
    for clip in clips:
        key = (clip.category if clip.is_target else f"{NEGATIVE}:{clip.kind}", clip.half)
        summary[key].append(clip.seconds)
    for (category, half), seconds in sorted(summary.items()):
        print(f"  {category:<40} {half:<10} {len(seconds):>4} clips {sum(seconds) / 60:7.1f} min")


if __name__ == "__main__":
    main()
