"""Verdicts to wire messages: event ids, event time, sequence numbers. Pure.

Event time is the audio clock: ``stream_start + sample / 16000``. For a file replayed with
``--start-time`` the stream start is that time, so a replay yields the same timestamps *and the
same event ids*; for live audio it is the wall-clock time of the stream's first sample.

Event ids are ``<node>.<stream start in ms>.<start sample>`` for a YAMNet window,
``<node>.<stream start in ms>.<model kind>.<start sample>`` for another model's (``mn04``), and
``<node>.<stream start in ms>.<kind>.<confirming sample>`` for a pattern detection: unique per
node and stream, fixed before the event is queued, so a retry, a restart that drains the outbox
and a deterministic replay all carry the same id and the aggregator counts the event once.
Windows and pattern detections share one per-node ``seq`` counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from edge.agent.pipeline import PatternVerdict, Verdict, WindowVerdict
from edge.agent.windowing import SAMPLE_RATE
from schemas.messages import ClassificationEvent, Label, Source

__all__ = [
    "MODEL_NAMES",
    "PATTERN_SOURCE",
    "EventBuilder",
    "model_source",
    "reportable",
    "yamnet_source",
]

PATTERN_SOURCE: Final = Source(kind="pattern", model="soundalert-patterns", version="1")
MODEL_NAMES: Final = {"yamnet": "yamnet", "mn04": "efficientat-mn04_as"}
"""Source kind (the policy's label namespace) -> the model's name in events."""


def model_source(kind: str, version: str) -> Source:
    return Source(kind=kind, model=MODEL_NAMES[kind], version=version)


def yamnet_source(version: str) -> Source:
    return model_source("yamnet", version)


def reportable(verdict: Verdict, report_floor: float | None) -> bool:
    """Whether a verdict is published. Pattern detections always are; windows all are unless
    a reporting floor is set, then only those whose best label reaches it."""
    if report_floor is None or isinstance(verdict, PatternVerdict):
        return True
    return bool(verdict.labels) and verdict.labels[0][1] >= report_floor


class EventBuilder:
    """Builds :class:`ClassificationEvent` objects for one node and one audio stream."""

    def __init__(
        self,
        site: str,
        node: str,
        stream_start: datetime,
        model_source: Source,
        *,
        next_seq: int = 0,
        more_sources: Sequence[Source] = (),
    ) -> None:
        if stream_start.tzinfo is None:
            raise ValueError("stream_start must be timezone-aware")
        self.site = site
        self.node = node
        self.stream_start = stream_start
        self.stream_id = round(stream_start.timestamp() * 1000)
        self.model_source = model_source
        self._sources = {s.kind: s for s in (model_source, *more_sources)}
        self.next_seq = next_seq

    def at(self, sample: int) -> datetime:
        """Event time of a stream sample."""
        return self.stream_start + timedelta(microseconds=round(sample * 1e6 / SAMPLE_RATE))

    def _seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def build(self, verdict: Verdict) -> ClassificationEvent:
        if isinstance(verdict, WindowVerdict):
            return self.window_event(verdict)
        return self.pattern_event(verdict)

    def window_event(self, v: WindowVerdict) -> ClassificationEvent:
        features = dict(v.features)
        if v.gated:
            features["gated"] = True
        source = self._sources.get(v.model, self.model_source)
        model = "" if source.kind == "yamnet" else f"{source.kind}."
        return ClassificationEvent(
            event_id=f"{self.node}.{self.stream_id}.{model}{v.start_sample}",
            site=self.site,
            node=self.node,
            seq=self._seq(),
            window_start=self.at(v.start_sample if v.heard_from is None else v.heard_from),
            window_end=self.at(v.end_sample),
            source=source,
            labels=[Label(label=name, score=score) for name, score in v.labels],
            level_dbfs=round(v.level_dbfs, 1),
            features=features,
        )

    def personal_event(self, v: WindowVerdict, sound: str, score: float, source: Source
                       ) -> ClassificationEvent:  # fmt: skip
        """A window recognised as a learned sound: ``<node>.<stream>.personal.<sample>``."""
        return ClassificationEvent(
            event_id=f"{self.node}.{self.stream_id}.{source.kind}.{v.start_sample}",
            site=self.site,
            node=self.node,
            seq=self._seq(),
            window_start=self.at(v.start_sample),
            window_end=self.at(v.end_sample),
            source=source,
            labels=[Label(label=sound, score=round(score, 4))],
            level_dbfs=round(v.level_dbfs, 1),
        )

    def pattern_event(self, v: PatternVerdict) -> ClassificationEvent:
        d = v.detection
        return ClassificationEvent(
            event_id=f"{self.node}.{self.stream_id}.{d.kind}.{d.confirmed_sample}",
            site=self.site,
            node=self.node,
            seq=self._seq(),
            window_start=self.at(d.onset_sample),
            window_end=self.at(d.confirmed_sample),
            source=PATTERN_SOURCE,
            labels=[Label(label=d.kind, score=d.confidence)],
            level_dbfs=None,
            features={"tone_hz": d.tone_hz, "cycle": d.cycle},
        )
