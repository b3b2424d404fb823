"""Personal sounds, few-shot: how well a sound learned from 1, 3, 5 or 10 examples is recognised.

On the validation half of the development corpus (``bench/corpus``; ``$SOUNDALERT_CORPUS``),
six sounds stand in for a person's own: the alarm ringtones, knocks, claps, coughs and laughs
recorded by one student in a large and a small room, and the glass breaks (one recording each).
Claps, coughs and laughs are not categories of the default policy; the alarm ringtones, knocks
and glass are, but the learner sees none of that (it learns from embeddings only).

Each draw (``--draws``, default 20, seeded) enrols all six sounds with K examples each, as a
person would: an example is a 3 s stretch of one recording (its windows of sound, see
:func:`edge.personal.learner.sound_windows`), each from another recording, all in one room; the
node's own background is 60 windows of household background recordings. It then classifies

* every 3 s stretch holding sound of the *other* room's recordings (glass: the other
  recordings): correct when the sound recognised in its windows (the accepted one with the
  highest cosine) is its own (accuracy; a stretch where nothing is accepted is wrong);
* every 3 s stretch of the negatives (the background recordings not used for learning, spoken
  digits, an audiobook, music, bird song): a false acceptance when any window is taken for any
  learned sound (per stretch, and per window);
* unknown sounds (open set): with only three of the six sounds enrolled, every stretch of the
  other three that is taken for a learned sound.

    SOUNDALERT_CORPUS=/tmp/corpus python -m bench.personal [--draws 20] [--same-room]
        [--png docs/personal-sounds.png]

``--same-room`` tests on the enrolment room's other recordings instead (a home's own sound in
its own room); the figure shows both.

The first run computes YAMNet embeddings of every clip (cached under the corpus's ``.cache``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from bench.corpus.manifest import NEGATIVE, Event, corpus_dir, events, read_manifest
from bench.corpus.windows import cache_root, event_audio
from edge.personal.learner import SoundModel, learn, match, sound_windows

__all__ = ["SHOTS", "Recording", "evaluate", "load", "main"]

Matrix = npt.NDArray[np.float32]
SHOTS: Final = (1, 3, 5, 10)
SEGMENT: Final = 6
"""Windows in a 3 s stretch (0.975 s windows every 0.48 s)."""
BACKGROUND_WINDOWS: Final = 60
TARGET_ACCURACY: Final = 0.85
TARGET_FALSE_ACCEPTANCE: Final = 0.02
SOUNDS: Final = {
    ("alarm_beep", None): "alarm ringtone",
    ("knock", None): "knock",
    ("glass_break", None): "glass break",
    (NEGATIVE, "clapping"): "clapping",
    (NEGATIVE, "cough"): "cough",
    (NEGATIVE, "laughter"): "laughter",
}
"""(category, negative kind) of the clips that stand in for personal sounds -> sound name."""
BACKGROUND_KIND: Final = "household background"


@dataclass(frozen=True)
class Recording:
    name: str
    sound: str | None
    """The personal sound it is, or None for a negative."""
    room: str
    """The recording's room (large/small), or its own id where no room is known."""
    kind: str
    embeddings: Matrix
    levels: npt.NDArray[np.float32]

    def segments(self, *, sound_only: bool) -> Iterator[tuple[Matrix, npt.NDArray[np.float32]]]:
        """Non-overlapping 3 s stretches; with ``sound_only``, those within 12 dB of the
        recording's loudest window."""
        loudest = float(self.levels.max()) if self.levels.size else -200.0
        for start in range(0, max(1, self.embeddings.shape[0] - SEGMENT + 1), SEGMENT):
            emb = self.embeddings[start : start + SEGMENT]
            lev = self.levels[start : start + SEGMENT]
            if emb.shape[0] == 0 or (sound_only and float(lev.max()) < loudest - 12.0):
                continue
            yield emb, lev


def _sound_of(event: Event) -> str | None:
    if event.category == NEGATIVE:
        return SOUNDS.get((NEGATIVE, event.kind))
    return SOUNDS.get((event.category, None))


def _room(event: Event) -> str:
    source = event.parts[0].source
    for room in ("large", "small"):
        if f"-{room}-" in source:
            return room
    return event.clip_id


def load(corpus: Path) -> list[Recording]:
    """Every validation recording's window embeddings (cached by YAMNet version and WAV)."""
    from edge.agent.model import YamnetModel  # noqa: PLC0415 - the interpreter loads lazily
    from edge.personal.embed import embed_audio  # noqa: PLC0415

    model = YamnetModel()
    cache = cache_root(corpus) / f"yamnet-{model.version}-embeddings"
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for event in events(read_manifest()):
        if event.half != "validation":
            continue
        paths = [corpus / part.wav for part in event.parts]
        if not all(p.is_file() for p in paths):
            continue
        digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest()
                                         for p in paths)).hexdigest()  # fmt: skip
        where = cache / f"{digest}.npz"
        if where.is_file():
            with np.load(where) as saved:
                emb, lev = saved["embeddings"], saved["levels"]
        else:
            emb, lev = embed_audio(model, event_audio(paths))
            np.savez_compressed(where, embeddings=emb.astype(np.float16), levels=lev)
        out.append(Recording(event.clip_id, _sound_of(event), _room(event), event.kind,
                             emb.astype(np.float32), lev.astype(np.float32)))  # fmt: skip
    return out


def _example(rec: Recording, rng: np.random.Generator) -> Matrix:
    """A 3 s stretch of a recording, as a person records one example: its windows of sound."""
    n = rec.embeddings.shape[0]
    loud = np.flatnonzero(rec.levels >= rec.levels.max() - 12.0)
    start = int(np.clip(rng.choice(loud) - rng.integers(0, SEGMENT), 0, max(0, n - SEGMENT)))
    return sound_windows(rec.embeddings[start : start + SEGMENT],
                         rec.levels[start : start + SEGMENT])  # fmt: skip


@dataclass
class Tally:
    correct: int = 0
    targets: int = 0
    false_segments: int = 0
    negative_segments: int = 0
    false_windows: int = 0
    negative_windows: int = 0
    unknown_false: int = 0
    unknown_segments: int = 0
    per_sound: dict[str, list[int]] = field(default_factory=dict)
    """sound -> [correct, targets]"""


def _predict(models: list[SoundModel], segment: Matrix) -> tuple[str | None, int]:
    """The segment's recognised sound (the best accepted window's) and how many windows
    were taken for any sound."""
    best: tuple[str, float] | None = None
    taken = 0
    for row in segment:
        found = match(models, row[None, :])
        if found is not None:
            taken += 1
            if best is None or found[1] > best[1]:
                best = found
    return (None if best is None else best[0]), taken


def _enrol(sound: str, recs: list[Recording], shots: int, bg: Matrix, rng: np.random.Generator,
           *, same_room: bool = False) -> tuple[SoundModel, list[Recording]] | None:  # fmt: skip
    """The sound learned from ``shots`` recordings of one room, and its test recordings: the
    other room's, or with ``same_room`` the room's other recordings (without rooms: the
    recordings not learned from)."""
    rooms = sorted({r.room for r in recs})
    if len(rooms) == 2:
        room = rooms[int(rng.integers(2))]
        pool = [r for r in recs if r.room == room]
        test = [] if same_room else [r for r in recs if r.room != room]
    else:
        pool, test = recs, []
    if len(pool) < shots:
        return None
    chosen = [pool[i] for i in rng.choice(len(pool), shots, replace=False)]
    if not test:
        test = [r for r in (pool if len(rooms) == 2 else recs) if r not in chosen]
    if not test:
        return None
    return learn(sound, [_example(r, rng) for r in chosen], bg).model, test


def _draw(recordings: list[Recording], shots: int, rng: np.random.Generator,
          tally: Tally, *, same_room: bool = False) -> bool:  # fmt: skip
    """One draw; False when some sound has too few recordings for ``shots``."""
    backgrounds = [r for r in recordings if r.sound is None and r.kind == BACKGROUND_KIND]
    rng.shuffle(backgrounds)
    learn_bg = backgrounds[: len(backgrounds) // 2]
    bg = np.concatenate([r.embeddings for r in learn_bg])
    bg = bg[rng.choice(bg.shape[0], min(BACKGROUND_WINDOWS, bg.shape[0]), replace=False)]
    negatives = [r for r in recordings if r.sound is None and r not in learn_bg]
    sounds = sorted({r.sound for r in recordings if r.sound is not None})
    models: dict[str, SoundModel] = {}
    tests: dict[str, list[Recording]] = {}
    for sound in sounds:
        recs = [r for r in recordings if r.sound == sound]
        enrolment = _enrol(sound, recs, shots, bg, rng, same_room=same_room)
        if enrolment is None:
            return False
        models[sound], tests[sound] = enrolment
    enrolled = list(models.values())
    for sound, recs in tests.items():
        for rec in recs:
            for seg, _ in rec.segments(sound_only=True):
                got, _ = _predict(enrolled, seg)
                tally.targets += 1
                tally.correct += got == sound
                mine = tally.per_sound.setdefault(sound, [0, 0])
                mine[0] += got == sound
                mine[1] += 1
    for rec in negatives:
        for seg, _ in rec.segments(sound_only=False):
            got, taken = _predict(enrolled, seg)
            tally.negative_segments += 1
            tally.false_segments += got is not None
            tally.negative_windows += seg.shape[0]
            tally.false_windows += taken
    known = [sounds[i] for i in rng.choice(len(sounds), len(sounds) // 2, replace=False)]
    subset = [models[s] for s in known]
    for sound, recs in tests.items():
        if sound in known:
            continue
        for rec in recs:
            for seg, _ in rec.segments(sound_only=True):
                got, _ = _predict(subset, seg)
                tally.unknown_segments += 1
                tally.unknown_false += got is not None
    return True


def evaluate(recordings: list[Recording], draws: int, seed: int = 0, *,
             same_room: bool = False) -> dict[int, dict[str, float]]:  # fmt: skip
    """Per number of shots: accuracy and false-acceptance rates, pooled over the draws, and
    the spread of accuracy across draws."""
    out: dict[int, dict[str, float]] = {}
    for shots in SHOTS:
        rng = np.random.default_rng([seed, shots])
        per_draw = []
        total = Tally()
        done = 0
        for _ in range(draws):
            tally = Tally()
            if not _draw(recordings, shots, rng, tally, same_room=same_room):
                break
            done += 1
            per_draw.append(tally.correct / max(1, tally.targets))
            for name, value in vars(tally).items():
                if name == "per_sound":
                    for sound, (c, t) in value.items():
                        both = total.per_sound.setdefault(sound, [0, 0])
                        both[0] += c
                        both[1] += t
                else:
                    setattr(total, name, getattr(total, name) + value)
        if not done:
            continue
        out[shots] = {
            "draws": done,
            "accuracy": total.correct / max(1, total.targets),
            "accuracy_min": float(min(per_draw)),
            "accuracy_max": float(max(per_draw)),
            "false_acceptance_segments": total.false_segments / max(1, total.negative_segments),
            "false_acceptance_windows": total.false_windows / max(1, total.negative_windows),
            "unknown_accepted": total.unknown_false / max(1, total.unknown_segments),
            "targets": total.targets / done,
            "negative_segments": total.negative_segments / done,
            **{f"accuracy: {sound}": c / max(1, t) for sound, (c, t) in
               sorted(total.per_sound.items())},
        }  # fmt: skip
    return out


def _figure(result: dict[int, dict[str, float]], path: Path,
            same_room: dict[int, dict[str, float]] | None = None) -> None:  # fmt: skip
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shots = sorted(result)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    acc = [100 * result[k]["accuracy"] for k in shots]
    lo = [100 * result[k]["accuracy_min"] for k in shots]
    hi = [100 * result[k]["accuracy_max"] for k in shots]
    ax.plot(shots, acc, "o-", color="#1f4e9c", label="accuracy (other room)")
    ax.fill_between(shots, lo, hi, color="#1f4e9c", alpha=0.15, label="range over draws")
    if same_room:
        near = sorted(same_room)
        ax.plot(near, [100 * same_room[k]["accuracy"] for k in near], "o-", color="#2e7d32",
                label="accuracy (same room, other recordings)")  # fmt: skip
    ax.plot(shots, [100 * result[k]["false_acceptance_segments"] for k in shots], "s--",
            color="#d00000", label="false acceptance, negatives (per 3 s)")  # fmt: skip
    ax.plot(shots, [100 * result[k]["unknown_accepted"] for k in shots], "^:",
            color="#b06000", label="unknown sounds taken (per 3 s)")  # fmt: skip
    ax.axhline(100 * TARGET_ACCURACY, color="#1f4e9c", lw=0.8, ls=":")
    ax.set_xticks(shots)
    ax.set_xlabel("examples per sound (shots)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title("Personal sounds on the corpus's validation half (6 sounds)")
    ax.legend(fontsize=7, loc="center right")
    ax.text(0.99, 0.01, "(false acceptance: the same in both conditions)", fontsize=6,
            ha="right", va="bottom", transform=ax.transAxes)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--draws", type=int, default=20, help="random draws per shot count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=None, help="write the figure here")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    parser.add_argument("--same-room", action="store_true",
                        help="test on the enrolment room's other recordings, not the other "
                        "room's")  # fmt: skip
    args = parser.parse_args()
    corpus = corpus_dir()
    assert corpus is not None
    recordings = load(corpus)
    counts: dict[str, int] = {}
    for rec in recordings:
        counts[rec.sound or f"negative: {rec.kind}"] = counts.get(
            rec.sound or f"negative: {rec.kind}", 0) + 1  # fmt: skip
    print("validation recordings:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    result = evaluate(recordings, args.draws, args.seed, same_room=args.same_room)
    where = "the same room's other recordings" if args.same_room else "the other room"
    print(f"tested on {where}")
    print(f"{'shots':>5} {'draws':>5} {'accuracy':>9} {'(min-max)':>13} {'FA/3s':>7} "
          f"{'FA/window':>9} {'unknown':>8}")  # fmt: skip
    for shots, r in result.items():
        print(f"{shots:>5} {r['draws']:>5.0f} {100 * r['accuracy']:>8.1f}% "
              f"({100 * r['accuracy_min']:>4.0f}-{100 * r['accuracy_max']:>3.0f}%) "
              f"{100 * r['false_acceptance_segments']:>6.2f}% "
              f"{100 * r['false_acceptance_windows']:>8.2f}% "
              f"{100 * r['unknown_accepted']:>7.1f}%")  # fmt: skip
    sounds = sorted(k for k in next(iter(result.values()), {}) if k.startswith("accuracy: "))
    print("per sound, accuracy at " + ", ".join(f"{k} shots" for k in result) + ":")
    for key in sounds:
        print(f"  {key.removeprefix('accuracy: '):<16}"
              + " ".join(f"{100 * r.get(key, 0):>5.0f}%" for r in result.values()))  # fmt: skip
    five = result.get(5)
    if five is not None:
        ok = five["accuracy"] >= TARGET_ACCURACY and (
            five["false_acceptance_segments"] <= TARGET_FALSE_ACCEPTANCE)  # fmt: skip
        print(f"target (>= {TARGET_ACCURACY:.0%} at 5 shots, <= {TARGET_FALSE_ACCEPTANCE:.0%} "
              f"false acceptance): {'met' if ok else 'NOT met'}")  # fmt: skip
    if args.png is not None:
        other = None if args.same_room else evaluate(recordings, args.draws, args.seed,
                                                      same_room=True)  # fmt: skip
        _figure(result, args.png, other)
        print(f"wrote {args.png}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
