"""The agent's pure core: samples in, verdicts out. No MQTT, no interpreter import.

Per block of 16 kHz mono audio, :class:`Pipeline` runs

* the windower and level gate (:mod:`edge.agent.windowing`), then the classifier (any callable
  with YAMNet's signature, see :class:`Classifier`) on each window that passes the gate, keeping
  the top-k labels (:mod:`edge.agent.labels`); with more models (:class:`Head`), each of them
  too, one verdict per model (a model may hear a longer span ending where the window ends, and
  only every n-th window);
* the deterministic T3/T4/520 Hz temporal-pattern detector (:mod:`edge.dsp.patterns`) on every
  sample, gated or not.

It returns a :class:`WindowVerdict` for every window (gated or not; a gated window once, under
the first model, if that model would have classified it) and per model that classified it, and a
:class:`PatternVerdict` per detection; :mod:`edge.agent.events` decides which are published and
turns them into wire messages.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from edge.agent.features import window_features
from edge.agent.labels import LabelMap, top_labels
from edge.agent.windowing import (
    DEFAULT_HOP_S,
    WINDOW_SAMPLES,
    Windower,
    hop_samples,
    to_float32,
)
from edge.dsp.patterns import Detection, PatternDetector

__all__ = [
    "Classifier",
    "ClassifierOutput",
    "Head",
    "PatternVerdict",
    "Pipeline",
    "PipelineConfig",
    "PipelineStats",
    "Verdict",
    "WindowVerdict",
]

_KEEP_TIMES = 2048
"""Inference times kept between heartbeats (the summary covers at most the latest ones)."""


class ClassifierOutput(Protocol):
    @property
    def scores(self) -> npt.NDArray[np.float32]: ...

    @property
    def logmel(self) -> npt.NDArray[np.float32] | None: ...


class Classifier(Protocol):
    def __call__(self, window: npt.NDArray[np.float32], /) -> ClassifierOutput: ...


class PipelineConfig(BaseModel):
    """How windows are cut, gated, labelled and reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hop_s: float = Field(default=DEFAULT_HOP_S, gt=0, le=3.9, description="Window hop, seconds.")
    gate_dbfs: float = Field(
        default=-70.0,
        ge=-120,
        le=0,
        description="Windows quieter than this skip inference (their level is still reported).",
    )
    top_k: int = Field(default=10, ge=1, le=64, description="Labels reported per window.")
    min_label_score: float = Field(
        default=0.05, ge=0, le=1, description="Labels scoring below this are not reported."
    )
    features: bool = Field(default=False, description="Add log-mel bands and dominant frequency.")
    patterns: bool = Field(default=True, description="Run the T3/T4/520 Hz pattern detector.")


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    index: int
    start_sample: int
    end_sample: int
    level_dbfs: float
    gated: bool
    labels: list[tuple[str, float]]
    inference_s: float | None
    features: dict[str, object] = field(default_factory=dict)
    model: str = "yamnet"
    """The source kind of the model that classified it."""
    heard_from: int | None = None
    """First sample the model heard, when it heard more than the window (clipped at the stream's
    start)."""
    embedding: npt.NDArray[np.float32] | None = None
    """The model's embedding of the window (YAMNet's 1024-d), for learned sounds; never
    published."""


@dataclass(frozen=True, slots=True)
class Head:
    """A model the pipeline runs on windows that pass the gate."""

    kind: str
    classifier: Classifier
    labels: LabelMap
    context: int = WINDOW_SAMPLES
    """Samples it hears, ending where the window ends (before the stream: silence)."""
    every: int = 1
    """It classifies windows ``0, every, 2 * every, ...``."""


@dataclass(frozen=True, slots=True)
class PatternVerdict:
    detection: Detection


Verdict = WindowVerdict | PatternVerdict


@dataclass
class PipelineStats:
    """Counters since the last :meth:`Pipeline.take_stats` (for heartbeats)."""

    windows: int = 0
    gated: int = 0
    patterns: int = 0
    level_last_dbfs: float | None = None
    level_max_dbfs: float | None = None
    inference_s: deque[float] = field(default_factory=lambda: deque(maxlen=_KEEP_TIMES))

    def summary(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {
            "windows": self.windows,
            "windows_gated": self.gated,
            "pattern_detections": self.patterns,
        }
        if self.level_last_dbfs is not None:
            out["level_dbfs"] = round(self.level_last_dbfs, 1)
        if self.level_max_dbfs is not None:
            out["level_max_dbfs"] = round(self.level_max_dbfs, 1)
        if self.inference_s:
            times = np.asarray(self.inference_s) * 1000.0
            out["inference_ms_mean"] = round(float(times.mean()), 3)
            out["inference_ms_p95"] = round(float(np.percentile(times, 95)), 3)
            out["inference_ms_max"] = round(float(times.max()), 3)
        return out


class Pipeline:
    """One audio stream's analysis. Feed 16 kHz mono blocks (int16 or float -1..1)."""

    def __init__(
        self,
        classifier: Classifier | None,
        labels: LabelMap | None,
        config: PipelineConfig | None = None,
        *,
        timer: Callable[[], float] = time.perf_counter,
        heads: Sequence[Head] = (),
    ) -> None:
        """One YAMNet-like ``classifier`` with its ``labels``, or the models of ``heads``."""
        self.config = config or PipelineConfig()
        if heads:
            self.heads = tuple(heads)
        elif classifier is not None and labels is not None:
            self.heads = (Head("yamnet", classifier, labels),)
        else:
            raise ValueError("a pipeline needs a classifier and its labels, or heads")
        self._timer = timer
        self._windower = Windower(hop_samples(self.config.hop_s))
        self._context = max(h.context for h in self.heads)
        self._history = np.zeros(0, dtype=np.float32)
        """The stream's latest samples, for models that hear more than a window."""
        self._patterns = PatternDetector() if self.config.patterns else None
        self.stats = PipelineStats()

    @property
    def samples_seen(self) -> int:
        return self._windower.samples_seen

    @property
    def hop(self) -> int:
        """Samples from one window's start to the next's."""
        return self._windower.hop

    @property
    def samples_to_window(self) -> int:
        """Samples still to feed before the next window is complete (at least 1)."""
        return self._windower.next_end - self._windower.samples_seen

    def take_stats(self) -> PipelineStats:
        stats, self.stats = self.stats, PipelineStats()
        return stats

    def feed(self, block: npt.ArrayLike) -> list[Verdict]:
        x = to_float32(block)
        if self._context > WINDOW_SAMPLES:
            # Every window this block completes ends after the samples fed before it.
            self._history = np.concatenate((self._history, x))[-(self._context + x.size) :]
        windows: list[Verdict] = []
        for w in self._windower.feed(x):
            windows += self._analyse(w.index, w.start_sample, w.samples, w.level_dbfs)
        if self._patterns is None:
            return windows
        patterns: list[Verdict] = []
        for detection in self._patterns.feed(x):
            self.stats.patterns += 1
            patterns.append(PatternVerdict(detection))
        if not patterns or not windows:
            return windows or patterns
        # In the order they were decided (a window at its end, a pattern where it was
        # confirmed; a window first on a tie), so that how the stream was cut into blocks does
        # not change the events' order.
        return sorted(windows + patterns, key=_decided)

    def _analyse(
        self, index: int, start: int, samples: npt.NDArray[np.float32], level: float
    ) -> list[WindowVerdict]:
        cfg = self.config
        stats = self.stats
        stats.windows += 1
        stats.level_last_dbfs = level
        stats.level_max_dbfs = level if stats.level_max_dbfs is None else max(
            stats.level_max_dbfs, level
        )  # fmt: skip
        end = start + samples.size
        if level < cfg.gate_dbfs:
            stats.gated += 1
            first = self.heads[0]
            if index % first.every:
                return []
            return [WindowVerdict(index, start, end, level, True, [], None,
                                  model=first.kind)]  # fmt: skip
        out = []
        for head in self.heads:
            if index % head.every:
                continue
            heard, heard_from = samples, None
            if head.context > samples.size:
                heard, heard_from = self._heard(end, head.context), max(0, end - head.context)
            began = self._timer()
            output = head.classifier(heard)
            took = self._timer() - began
            stats.inference_s.append(took)
            labels = top_labels(output.scores, head.labels, cfg.top_k, cfg.min_label_score)
            features = window_features(samples, output.logmel) if cfg.features else {}
            out.append(WindowVerdict(index, start, end, level, False, labels, took, features,
                                     head.kind, heard_from,
                                     getattr(output, "embedding", None)))  # fmt: skip
        return out

    def _heard(self, end: int, context: int) -> npt.NDArray[np.float32]:
        """The ``context`` samples of the stream before ``end`` (silence before its start)."""
        first = self.samples_seen - self._history.size  # stream index of _history[0]
        lo, hi = end - context - first, end - first
        if lo >= 0:
            return self._history[lo:hi]
        return np.concatenate((np.zeros(-lo, dtype=np.float32), self._history[:hi]))


def _decided(verdict: Verdict) -> tuple[int, int]:
    if isinstance(verdict, WindowVerdict):
        return verdict.end_sample, 0
    return verdict.detection.confirmed_sample, 1
