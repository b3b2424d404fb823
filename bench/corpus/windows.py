"""Per-window model scores of every corpus clip, computed once and cached on disk.

A clip is cut into windows exactly as the agent cuts a stream (0.975 s every 0.48 s, windows
quieter than -70 dBFS gated), each window is scored by a :class:`Scorer` (YAMNet by default),
and the result is stored under ``<cache>/<scorer key>/<sha256 of the clip's WAV>.npz``: the
same clip and the same model never run twice, across fitting, benchmarks and later comparisons
of other models (:class:`Mn04Scorer`, which hears 1.95 s ending where every second window
ends, as the agent runs mn04). As in the benchmark's stream, where every clip
sits between stretches of silence, the clip is framed by one window of silence on each side,
so its first and last sounds (and a 1 s clip) are seen by windows that overlap them partly;
window times are from the clip's start (the first windows start before it). The T3/T4/520 Hz
pattern detections of each clip are cached the same way, keyed by the detector's source code,
so a change to the detector recomputes them.

    SOUNDALERT_CORPUS=/tmp/corpus python -m bench.corpus.windows [--model yamnet|mn04]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from bench.corpus.manifest import Event, corpus_dir, events, read_manifest
from edge.agent.sources import read_wav
from edge.agent.windowing import DEFAULT_HOP_S, WINDOW_SAMPLES, Windower, hop_samples
from edge.dsp import patterns, reference

__all__ = [
    "CACHE_ENV",
    "GATE_DBFS",
    "ClipPatterns",
    "ClipWindows",
    "Mn04Scorer",
    "Scorer",
    "YamnetScorer",
    "clip_patterns",
    "clip_windows",
    "event_audio",
    "load_all",
    "main",
    "scorer",
]

CACHE_ENV: Final = "SOUNDALERT_CACHE"
GATE_DBFS: Final = -70.0
"""The agent's default level gate: quieter windows are not classified."""


class Scorer(Protocol):
    @property
    def key(self) -> str:
        """Names the model and its version: the cache folder."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def __call__(self, window: npt.NDArray[np.float32], /) -> npt.NDArray[np.float32]: ...


class YamnetScorer:
    """The agent's YAMNet (TFLite): 521 class scores per window."""

    def __init__(self) -> None:
        from edge.agent.labels import LabelMap  # noqa: PLC0415 - the interpreter loads lazily
        from edge.agent.model import DEFAULT_CLASS_MAP, YamnetModel  # noqa: PLC0415

        self._model = YamnetModel()
        self.labels = LabelMap.from_csv(DEFAULT_CLASS_MAP).names
        self.key = f"yamnet-{self._model.version}"

    def __call__(self, window: npt.NDArray[np.float32], /) -> npt.NDArray[np.float32]:
        return self._model(window).scores


class Mn04Scorer:
    """The agent's EfficientAT mn04_as (numpy front end + TFLite): 527 class scores per window."""

    def __init__(self) -> None:
        from edge.agent import mn04  # noqa: PLC0415 - the interpreter loads lazily
        from edge.agent.labels import LabelMap  # noqa: PLC0415

        self._model = mn04.Mn04Model()
        self.labels = LabelMap.from_csv(mn04.DEFAULT_CLASS_MAP).names
        self.context = self._model.context
        self.every = self._model.every
        self.key = f"mn04-{self._model.version}-heard{self.context}-every{self.every}"

    def __call__(self, window: npt.NDArray[np.float32], /) -> npt.NDArray[np.float32]:
        return self._model(window).scores


def scorer(kind: str) -> Scorer:
    """The scorer of a model's source kind: ``yamnet`` or ``mn04``."""
    scorers: dict[str, Callable[[], Scorer]] = {"yamnet": YamnetScorer, "mn04": Mn04Scorer}
    if kind not in scorers:
        raise ValueError(f"no scorer for model {kind!r} (one of {sorted(scorers)})")
    return scorers[kind]()


@dataclass(frozen=True)
class ClipWindows:
    starts: npt.NDArray[np.int64]
    """First sample of each window, from the clip's start."""
    levels: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float16]
    """Windows x classes; a gated window's row is all zero."""
    gated: npt.NDArray[np.bool_]
    labels: tuple[str, ...]

    @property
    def ends_s(self) -> npt.NDArray[np.float64]:
        return (self.starts + WINDOW_SAMPLES) / reference.SAMPLE_RATE


@dataclass(frozen=True)
class ClipPatterns:
    kinds: tuple[str, ...]
    onsets: npt.NDArray[np.int64]
    confirmed: npt.NDArray[np.int64]
    confidences: npt.NDArray[np.float32]


def cache_root(corpus: Path) -> Path:
    value = os.environ.get(CACHE_ENV)
    return Path(value) if value else corpus / ".cache"


def _file_sha(paths: list[Path]) -> str:
    """The clip's WAV's sha256; for an event joined from several, the sha256 of theirs."""
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    return shas[0] if len(shas) == 1 else hashlib.sha256("".join(shas).encode()).hexdigest()


CONTEXT: Final = WINDOW_SAMPLES
"""Silence before and after each clip."""


def event_audio(paths: list[Path]) -> npt.NDArray[np.float32]:
    """The event's clips joined in order (one clip: itself)."""
    parts = []
    for path in paths:
        audio, rate = read_wav(path)
        if rate != reference.SAMPLE_RATE:
            raise ValueError(f"{path}: {rate} Hz, the corpus is 16 kHz (rebuild it)")
        parts.append(audio)
    return np.concatenate(parts)


def _audio(paths: list[Path]) -> npt.NDArray[np.float32]:
    silence = np.zeros(CONTEXT, np.float32)
    return np.concatenate((silence, event_audio(paths), silence))


def _windows(audio: npt.NDArray[np.float32], scorer: Scorer, hop_s: float) -> ClipWindows:
    """The windows the scorer classifies, as the agent's pipeline runs it: every ``every``-th
    (a scorer's attribute, default 1), on the ``context`` samples ending where the window ends
    (default: the window; silence before the audio)."""
    every: int = getattr(scorer, "every", 1)
    context: int = getattr(scorer, "context", WINDOW_SAMPLES)
    windows = [w for w in Windower(hop_samples(hop_s)).feed(audio) if w.index % every == 0]
    scores = np.zeros((len(windows), len(scorer.labels)), dtype=np.float16)
    gated = np.array([w.level_dbfs < GATE_DBFS for w in windows], dtype=bool)
    padded = np.concatenate((np.zeros(context, np.float32), audio))
    for i, window in enumerate(windows):
        if not gated[i]:
            end = window.end_sample
            heard = window.samples if context == WINDOW_SAMPLES else padded[end : end + context]
            scores[i] = np.clip(scorer(heard), 0.0, 1.0)
    return ClipWindows(
        np.array([w.start_sample for w in windows], dtype=np.int64),
        np.array([w.level_dbfs for w in windows], dtype=np.float32),
        scores,
        gated,
        scorer.labels,
    )


def clip_windows(
    path: list[Path], scorer: Scorer, cache: Path, hop_s: float = DEFAULT_HOP_S
) -> ClipWindows:
    """The clip's windows, from the cache when it has them."""
    folder = f"{scorer.key}-hop{round(hop_s * 1000)}-context{CONTEXT}"
    where = cache / folder / f"{_file_sha(path)}.npz"
    if where.is_file():
        with np.load(where) as saved:
            return ClipWindows(
                saved["starts"], saved["levels"], saved["scores"], saved["gated"], scorer.labels
            )
    result = _windows(_audio(path), scorer, hop_s)
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, starts=result.starts, levels=result.levels, scores=result.scores, gated=result.gated
    )
    tmp.replace(where)
    return result


def _detector_key() -> str:
    code = inspect.getsource(patterns) + inspect.getsource(reference)
    return "patterns-" + hashlib.sha256(code.encode()).hexdigest()[:12]


def clip_patterns(path: list[Path], cache: Path) -> ClipPatterns:
    """The pattern detector's detections on the clip (as the agent runs it), cached."""
    where = cache / f"{_detector_key()}-context{CONTEXT}" / f"{_file_sha(path)}.npz"
    if where.is_file():
        with np.load(where) as saved:
            return ClipPatterns(
                tuple(str(k) for k in saved["kinds"]),
                saved["onsets"],
                saved["confirmed"],
                saved["confidences"],
            )
    found = patterns.PatternDetector().feed(_audio(path))
    result = ClipPatterns(
        tuple(d.kind for d in found),
        np.array([d.onset_sample - CONTEXT for d in found], dtype=np.int64),
        np.array([d.confirmed_sample - CONTEXT for d in found], dtype=np.int64),
        np.array([d.confidence for d in found], dtype=np.float32),
    )
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        kinds=np.array(result.kinds, dtype=str),
        onsets=result.onsets,
        confirmed=result.confirmed,
        confidences=result.confidences,
    )
    tmp.replace(where)
    return result


def load_all(
    clips: list[Event],
    corpus: Path,
    scorer: Scorer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, tuple[ClipWindows, ClipPatterns]]:
    """Windows and pattern detections of every clip (computing what the cache lacks)."""
    scorer = scorer or YamnetScorer()
    cache = cache_root(corpus)
    out: dict[str, tuple[ClipWindows, ClipPatterns]] = {}
    for i, clip in enumerate(clips):
        paths = [corpus / part.wav for part in clip.parts]
        out[clip.clip_id] = (clip_windows(paths, scorer, cache), clip_patterns(paths, cache))
        if progress is not None:
            progress(i + 1, len(clips))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Fill the per-window score cache.")
    parser.add_argument("--model", action="append", choices=("yamnet", "mn04"),
                        help="model to cache (repeat for both; default yamnet)")  # fmt: skip
    args = parser.parse_args()
    corpus = corpus_dir()
    assert corpus is not None
    clips = events(read_manifest())

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"  {done}/{total} clips")

    for kind in args.model or ["yamnet"]:
        print(kind)
        load_all(clips, corpus, scorer(kind), progress=progress)
    print(f"cache: {cache_root(corpus)}")


if __name__ == "__main__":
    main()
