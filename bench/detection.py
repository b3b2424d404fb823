"""Detection benchmark: the full pipeline (agent -> Mosquitto -> aggregator) on a long stream.

The stream is built from ``../shared/data/dev-audio`` (never copied into the repository):
targets ``alarm`` (-> category ``alarm_beep``), ``knocking`` (-> ``knock``) and ``glass_break``;
negatives ``clapping``, ``cough``, ``laugh`` and household ``background`` (which also fills the
gaps); plus synthetic T3 smoke (-> ``smoke_alarm``) and T4 CO (-> ``co_alarm``) alarms mixed into
background at 0, 5, 10, 15 and 20 dB SNR. Segments are interleaved round-robin by category, each
followed by a background gap, so one category never follows itself closely.

The real :class:`AgentService` replays the stream as fast as it can into a real Mosquitto and the
real :class:`AggregatorService` turns events into alerts. At the end of every segment the bench
waits until the aggregator has processed everything published, and acknowledges each raised
alert over MQTT as a person would (a critical alert only ends once acknowledged).

Printed per category: recall, false alerts per hour of audio, median and p95 latency from the
sound's onset to the alert (event time), beside a naive baseline that alerts whenever a window
scores >= 0.5 on one of the category's YAMNet labels (consecutive such windows are one alert).
A ``possible_smoke_alarm`` (YAMNet heard a smoke alarm, no pattern detector confirmed it) counts
toward an alarm clip's recall (it announced an alarm beeping), is neither hit nor false on a
synthetic smoke or CO alarm (printed apart), and is false anywhere else.

``--model yamnet,mn04,both`` runs the whole pipeline once per agent model (``soundalert agent
--model``) on the same stream and prints each one's table, then the models side by side: the
pipeline's recall and false alerts per hour, and, replayed offline on the half's cached windows
(``--corpus`` only), each category's recall at equal false alerts (its rule's threshold swept,
the most found with at most 0, 1 and 3 false alerts in the half). Each model runs with operating
points fitted for it on the tuning half (``bench.fit_policy --model``; the shipped ones when they
are that model's), unless ``--policy`` names one policy for all. Each model's scores of every
stream window are cached (``$SOUNDALERT_CACHE``, else ``$SOUNDALERT_CORPUS/.cache``), so a
second run classifies nothing.

    .venv/bin/python -m bench.detection [--smoke-per-snr 8] [--policy FILE] [--json out.json]
                                        [--no-patterns] [--model yamnet,mn04,both]
                                        [--corpus validation --png out.png]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import aiomqtt
import numpy as np
import numpy.typing as npt

from edge.agent.model import ModelOutput
from edge.agent.models import DEFAULT_CHOICE, KINDS, LoadedModel, ModelChoice, load_models
from edge.agent.service import AgentService
from edge.agent.settings import AgentSettings
from edge.agent.sources import read_wav
from edge.dsp import synth
from schemas.messages import Alert, ClassificationEvent, Feedback
from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from tests.support.mosquitto import Mosquitto

REPO: Final = Path(__file__).resolve().parents[1]
DEV_AUDIO: Final = REPO.parent / "shared" / "data" / "dev-audio"
RATE: Final = 16_000
START: Final = datetime(2024, 3, 1, tzinfo=UTC)
SITE: Final = "bench"
NODE: Final = "agent"
TARGETS: Final = {
    "alarm": "alarm_beep",
    "knocking": "knock",
    "glass_break": "glass_break",
    "smoke": "smoke_alarm",
    "co": "co_alarm",
}
CREDITED: Final[dict[str, frozenset[str]]] = {
    kind: frozenset({category}) for kind, category in TARGETS.items()
} | {"alarm": frozenset({"alarm_beep", "possible_smoke_alarm"})}
"""Alerts that count toward a segment's recall. An alarm clock or appliance beeper announced
as a possible smoke alarm was announced as an alarm beeping (high priority, not critical);
a smoke or CO alarm only counts when named as one (critical)."""
EXCUSED: Final[dict[str, frozenset[str]]] = {
    "smoke": frozenset({"possible_smoke_alarm"}),
    "co": frozenset({"possible_smoke_alarm"}),
}
"""Alerts that are neither recall nor false on a segment: a real alarm called a possible smoke
alarm (counted and printed on their own)."""
NEGATIVES: Final = ("clapping", "cough", "laugh")
SNRS: Final = (0.0, 5.0, 10.0, 15.0, 20.0)
GAP_S: Final = 12.0
"""Background after every segment (glass clips end up back to back: 12 s > hold + cooldown)."""
ALARM_GAP_S: Final = 50.0
"""Background after a synthetic smoke or CO alarm: longer than any alarm category's hold plus
cooldown (co_alarm 15 + 30 s), so a cooldown never hides what the next segment sounds like
(a CO alarm right after a smoke alarm must show whether it also reads as smoke)."""
LATE_S: Final = 6.0
"""An alert up to this long after a segment's end is still that segment's."""
BASELINE_SCORE: Final = 0.5
BASELINE_LABELS: Final[dict[str, frozenset[str]]] = {
    "smoke_alarm": frozenset({"Fire alarm", "Smoke detector, smoke alarm"}),
    "siren": frozenset({"Siren", "Civil defense siren", "Police car (siren)",
                        "Ambulance (siren)", "Fire engine, fire truck (siren)"}),
    "doorbell": frozenset({"Doorbell", "Ding-dong"}),
    "knock": frozenset({"Knock"}),
    "baby_cry": frozenset({"Baby cry, infant cry"}),
    "phone_ring": frozenset({"Telephone bell ringing", "Ringtone"}),
    "alarm_beep": frozenset({"Alarm clock", "Alarm", "Beep, bleep", "Buzzer"}),
    "glass_break": frozenset({"Glass", "Shatter"}),
    "dog": frozenset({"Dog", "Bark"}),
    "car_horn": frozenset({"Vehicle horn, car horn, honking", "Air horn, truck horn"}),
    "water_running": frozenset({"Water tap, faucet", "Sink (filling or washing)",
                                "Bathtub (filling or washing)"}),
}  # fmt: skip
"""The naive app's labels: each category's YAMNet labels as the policy shipped before tuning
(fixed here, so that tuning the policy never moves the baseline)."""
IGNORED: Final = frozenset({"node_offline", "node_online"})

Float64Array = npt.NDArray[np.float64]


@dataclass
class Segment:
    kind: str  # dev-audio category, smoke/co, or a corpus clip's category or negative kind
    onset_s: float
    end_s: float
    snr_db: float | None = None
    source: str = ""
    target: str | None = None
    """The category this segment is a target of (default: from ``TARGETS``)."""
    credits: frozenset[str] | None = None
    """Alert categories that find it (default: ``CREDITED``)."""
    excuses: frozenset[str] | None = None
    """Alert categories that are neither hit nor false on it (default: ``EXCUSED``)."""

    def __post_init__(self) -> None:
        if self.target is None:
            self.target = TARGETS.get(self.kind)
        if self.credits is None:
            self.credits = CREDITED.get(self.kind, frozenset())
        if self.excuses is None:
            self.excuses = EXCUSED.get(self.kind, frozenset())


@dataclass
class Stream:
    audio: Float64Array
    segments: list[Segment]

    @property
    def seconds(self) -> float:
        return self.audio.size / RATE


# -- building the stream ---------------------------------------------------------------------
def _meta() -> dict[str, list[Path]]:
    if not (DEV_AUDIO / "meta.csv").is_file():
        sys.exit(f"development audio not found at {DEV_AUDIO} (../shared/data/dev-audio)")
    out: dict[str, list[Path]] = defaultdict(list)
    with (DEV_AUDIO / "meta.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            out[row["category"]].append(DEV_AUDIO / row["path"])
    return {k: sorted(v) for k, v in out.items()}


class _Background:
    def __init__(self, paths: list[Path], rng: np.random.Generator) -> None:
        self._clips = [read_wav(p)[0].astype(np.float64) for p in paths]
        self._rng = rng

    def take(self, seconds: float) -> Float64Array:
        n = round(seconds * RATE)
        parts: list[Float64Array] = []
        total = 0
        while total < n:
            clip = self._clips[int(self._rng.integers(len(self._clips)))]
            parts.append(clip)
            total += clip.size
        return np.concatenate(parts)[:n]


def _alarm(kind: str, snr: float, bg: _Background, rng: np.random.Generator) -> Float64Array:
    tone = float(rng.uniform(2900.0, 3400.0))
    signal = synth.t3(cycles=3, tone_hz=tone) if kind == "smoke" else synth.t4(3, tone_hz=tone)
    return synth.mix_at_snr(signal, bg.take(signal.size / RATE), snr)


def build_stream(per_snr: int, seed: int = 0) -> Stream:
    meta = _meta()
    rng = np.random.default_rng(seed)
    bg = _Background(meta["background"], rng)
    queues: dict[str, list[tuple[str, float | None]]] = {}
    for kind in ("alarm", "knocking", "glass_break", *NEGATIVES):
        paths = [str(p) for p in meta[kind]]
        rng.shuffle(paths)
        queues[kind] = [(p, None) for p in paths]
    for kind in ("smoke", "co"):
        items: list[tuple[str, float | None]] = [
            (f"synthetic-{kind}", snr) for snr in SNRS for _ in range(per_snr)
        ]
        rng.shuffle(items)
        queues[kind] = items
    parts: list[Float64Array] = [bg.take(GAP_S)]
    at = parts[0].size
    segments: list[Segment] = []
    order = list(queues)
    while any(queues.values()):
        for kind in order:
            if not queues[kind]:
                continue
            source, snr = queues[kind].pop()
            if snr is not None:
                clip = _alarm(kind, snr, bg, rng)
            else:
                clip = read_wav(Path(source))[0].astype(np.float64)
            segments.append(Segment(kind, at / RATE, (at + clip.size) / RATE, snr,
                                    Path(source).name))  # fmt: skip
            gap = bg.take(ALARM_GAP_S if snr is not None else GAP_S)
            parts += [clip, gap]
            at += clip.size + gap.size
    audio = np.concatenate(parts)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:
        audio *= 0.99 / peak
    return Stream(audio, segments)


# -- the development corpus ---------------------------------------------------------------------
CORPUS_GAP_S: Final = 7.0
"""Silence after a corpus clip: longer than LATE_S, so an alert is never the next clip's."""
CORPUS_ALARM_GAP_S: Final = ALARM_GAP_S
LONG_HOLD: Final = frozenset({"smoke_alarm", "possible_smoke_alarm", "co_alarm"})


def corpus_segments(half: str, extra: list[Path]) -> list[tuple[list[Path], Segment]]:
    """Every event (a clip, or the chunks of one recording joined) of one half of the rebuilt
    corpus (``$SOUNDALERT_CORPUS``), plus the clips of each ``extra`` folder (a ``meta.csv`` of
    ``path,category[,kind]``, ``category`` a policy category or ``negative``: the realistic
    alarm synthesis can write one), as segments whose timing :func:`build_corpus_stream` fills
    in."""
    from bench.corpus.manifest import NEGATIVE, corpus_dir, events, read_manifest  # noqa: PLC0415
    from bench.corpus.truth import credited, excused  # noqa: PLC0415

    root = corpus_dir()
    assert root is not None
    out = []
    for clip in events(read_manifest()):
        if clip.half != half:
            continue
        kind = clip.category if clip.is_target else f"{NEGATIVE}:{clip.kind}"
        out.append(
            (
                [root / part.wav for part in clip.parts],
                Segment(
                    kind,
                    0,
                    0,
                    source=clip.clip_id,
                    target=clip.category if clip.is_target else None,
                    credits=credited(clip),
                    excuses=excused(clip),
                ),
            )
        )
    for folder in extra:
        with (folder / "meta.csv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                category = row["category"]
                target = None if category == NEGATIVE else category
                kind = row.get("kind") or category
                out.append(
                    (
                        [folder / row["path"]],
                        Segment(
                            kind if target is None else category,
                            0,
                            0,
                            source=row["path"],
                            target=target,
                            credits=frozenset({target}) if target else frozenset(),
                            excuses=EXCUSED.get(TARGETS_BY_CATEGORY.get(category, ""), frozenset()),
                        ),
                    )
                )
    return out


TARGETS_BY_CATEGORY: Final = {category: kind for kind, category in TARGETS.items()}


def build_corpus_stream(half: str, extra: list[Path], seed: int = 0) -> Stream:
    """The half's events, interleaved round-robin by category (a category never follows itself),
    each followed by silence (50 s after an alarm: its hold and cooldown)."""
    from bench.corpus.windows import event_audio  # noqa: PLC0415 - needs the corpus extra

    rng = np.random.default_rng(seed)
    queues: dict[str, list[tuple[list[Path], Segment]]] = defaultdict(list)
    for path, segment in corpus_segments(half, extra):
        queues[segment.kind].append((path, segment))
    for items in queues.values():
        rng.shuffle(items)
    parts: list[Float64Array] = [np.zeros(round(CORPUS_GAP_S * RATE))]
    at = parts[0].size
    segments: list[Segment] = []
    order = sorted(queues)
    while any(queues.values()):
        for kind in order:
            if not queues[kind]:
                continue
            paths, segment = queues[kind].pop()
            clip = event_audio(paths).astype(np.float64)
            segment.onset_s, segment.end_s = at / RATE, (at + clip.size) / RATE
            segments.append(segment)
            gap_s = CORPUS_ALARM_GAP_S if segment.target in LONG_HOLD else CORPUS_GAP_S
            gap = np.zeros(round(gap_s * RATE))
            parts += [clip, gap]
            at += clip.size + gap.size
    return Stream(np.concatenate(parts), segments)


# -- running it --------------------------------------------------------------------------------
class BenchSource:
    """The stream as an agent source, with a barrier after every segment."""

    live = False

    def __init__(self, stream: Stream, barrier: BarrierFn) -> None:
        self.start_time: datetime | None = START
        self.dropped_blocks = 0
        self._stream = stream
        self._barrier = barrier

    def align(self, first: int, every: int) -> None:
        """Blocks stay 0.1 s, with a barrier after each segment (the agent batches them)."""

    async def blocks(self) -> AsyncIterator[npt.NDArray[np.float32]]:
        audio = self._stream.audio.astype(np.float32)
        ends = [round((s.end_s + GAP_S) * RATE) for s in self._stream.segments]
        at = 0
        block = RATE // 10
        for end in [*ends, audio.size]:
            while at < end:
                stop = min(end, at + block)
                yield audio[at:stop]
                at = stop
                await asyncio.sleep(0)
            await self._barrier()


class BarrierFn:
    def __init__(self) -> None:
        self.agent: AgentService | None = None
        self.processed = 0
        self.acks_sent = 0
        self.acks_done = 0

    async def __call__(self) -> None:
        agent = self.agent
        assert agent is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            published = int(agent.metrics.published._value.get())  # noqa: SLF001
            if (agent.outbox.depth == 0 and self.processed >= published
                    and self.acks_done >= self.acks_sent):  # fmt: skip
                return
            await asyncio.sleep(0.002)
        raise RuntimeError("the pipeline did not settle within 60 s")


class StreamScores:
    """One model's classifier, remembering its scores per window (by the window's sha1) in a
    file named by the model and the stream: a second run of the same stream and model reads
    them instead of classifying."""

    def __init__(self, model: LoadedModel, where: Path | None) -> None:
        self._model = model.classifier
        self._where = where
        self._known: dict[bytes, npt.NDArray[np.float32]] = {}
        self.computed = 0
        if where is not None and where.is_file():
            with np.load(where) as saved:
                self._known = dict(zip((bytes(k) for k in saved["keys"]), saved["scores"],
                                       strict=True))  # fmt: skip

    def __call__(self, window: npt.NDArray[np.float32], /) -> ModelOutput:
        key = hashlib.sha1(window.tobytes(), usedforsecurity=False).digest()
        scores = self._known.get(key)
        if scores is None:
            scores = np.asarray(self._model(window).scores, np.float32)
            self._known[key] = scores
            self.computed += 1
        return ModelOutput(scores, None)

    def save(self) -> None:
        if self._where is None or not self.computed:
            return
        self._where.parent.mkdir(parents=True, exist_ok=True)
        keys = np.frombuffer(b"".join(self._known), np.uint8).reshape(len(self._known), -1)
        tmp = self._where.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, keys=keys, scores=np.stack(list(self._known.values())))
        tmp.replace(self._where)


def _score_cache() -> Path | None:
    for env, sub in (("SOUNDALERT_CACHE", ""), ("SOUNDALERT_CORPUS", ".cache")):
        if os.environ.get(env):
            return Path(os.environ[env]) / sub
    return None


def cached_models(choice: ModelChoice, stream: Stream) -> tuple[list[LoadedModel],
                                                                list[StreamScores]]:  # fmt: skip
    """The agent's models for ``choice``, each behind its stream score cache."""
    root = _score_cache()
    digest = hashlib.sha256(stream.audio.astype(np.float32).tobytes()).hexdigest()[:16]
    out, caches = [], []
    for model in load_models(choice):
        where = (root / f"stream-{model.kind}-{model.source.version}" / f"{digest}.npz"
                 if root is not None else None)  # fmt: skip
        cache = StreamScores(model, where)
        caches.append(cache)
        out.append(dataclasses.replace(model, classifier=cache))
    return out, caches


@dataclass
class RunResult:
    alerts: list[Alert] = field(default_factory=list)
    windows: list[ClassificationEvent] = field(default_factory=list)
    patterns: list[ClassificationEvent] = field(default_factory=list)
    wall_s: float = 0.0
    events: int = 0
    classified: int = 0
    """Windows a model classified (the rest came from the stream score cache)."""


async def run_pipeline(
    stream: Stream,
    policy_file: Path | None,
    workdir: Path,
    *,
    patterns: bool = True,
    model: ModelChoice = DEFAULT_CHOICE,
) -> RunResult:
    logging.getLogger("edge").setLevel(logging.WARNING)
    broker = Mosquitto(workdir / "mosquitto", users={"service": "secret"},
                       acl="user service\ntopic readwrite #\n")  # fmt: skip
    broker.start()
    root = f"bench/{uuid.uuid4().hex[:8]}/v1"
    topics = Topics(root)
    result = RunResult()
    barrier = BarrierFn()
    feedback: asyncio.Queue[Alert] = asyncio.Queue()

    def on_alert(alert: Alert) -> None:
        result.alerts.append(alert)
        if alert.state == "raised" and alert.category not in IGNORED:
            barrier.acks_sent += 1
            feedback.put_nowait(alert)

    def on_processed(_event_id: str, _wall: float) -> None:
        barrier.processed += 1

    agg_settings = AggregatorSettings(broker=broker.url("service"), topic_root=root,
                                      state_dir=workdir / "agg",
                                      policy_file=policy_file)  # fmt: skip
    aggregator = AggregatorService(agg_settings, on_alert=on_alert, on_processed=on_processed)
    agent_settings = AgentSettings(
        broker=broker.url("service"),
        topic_root=root,
        site=SITE,
        node=NODE,
        outbox_file=workdir / "outbox.sqlite3",
        outbox_sync="normal",
        outbox_max_messages=1_000_000,
        heartbeat_s=3600,
        patterns=patterns,
        delivery="broker",  # detection is measured here; delivery in the tests (issue 11)
    )
    models, caches = cached_models(model, stream)
    agent = AgentService(agent_settings, BenchSource(stream, barrier), models=models)
    barrier.agent = agent

    async def acknowledge() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, username="service",
                                  password="secret") as client:  # noqa: S106 - bench broker  # fmt: skip
            await client.subscribe(topics.events(SITE, NODE), qos=1)

            async def listen() -> None:
                async for message in client.messages:
                    event = ClassificationEvent.model_validate_json(message.payload)
                    if event.source.kind != "pattern":
                        result.windows.append(event)
                    else:
                        result.patterns.append(event)

            listener = asyncio.create_task(listen())
            try:
                while True:
                    alert = await feedback.get()
                    ack = Feedback(alert_id=alert.alert_id, verdict="acknowledged", by="bench",
                                   at=datetime.now(UTC))  # fmt: skip
                    await client.publish(topics.feedback(SITE), ack.to_json(), qos=1)
                    feedback_metric = aggregator.metrics.feedback
                    target = barrier.acks_done + 1
                    while _total(feedback_metric) < target:  # noqa: ASYNC110 - another task's counter
                        await asyncio.sleep(0.002)
                    barrier.acks_done += 1
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    began = time.monotonic()
    try:
        async with asyncio.TaskGroup() as group:
            agg_task = group.create_task(aggregator.run())
            await asyncio.sleep(0.5)
            ack_task = group.create_task(acknowledge())
            await asyncio.sleep(0.5)
            await agent.run()
            if agent.failure is not None:
                raise RuntimeError(f"the agent failed: {agent.failure}")
            result.events = int(agent.metrics.published._value.get())  # noqa: SLF001
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (  # noqa: ASYNC110 - counters of other tasks
                barrier.processed < result.events or len(result.windows) < _windows(agent)
            ):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            ack_task.cancel()
            aggregator.stop()
            await agg_task
    finally:
        broker.kill()
    result.wall_s = time.monotonic() - began
    for cache in caches:
        result.classified += cache.computed
        cache.save()
    return result


def _total(metric: object) -> float:
    total = 0.0
    for family in metric.collect():  # type: ignore[attr-defined]
        total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def _windows(agent: AgentService) -> int:
    """Window events the agent publishes (with two models, a classified window is two)."""
    return int(_total(agent.metrics.windows) + _total(agent.metrics.windows_gated))


# -- scoring -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detection:
    category: str
    onset_s: float  # first evidence, stream time
    raised_s: float


@dataclass
class Score:
    hits: int = 0
    targets: int = 0
    false: int = 0
    repeats: int = 0
    latencies: list[float] = field(default_factory=list)
    false_where: Counter[str] = field(default_factory=Counter)
    via: Counter[str] = field(default_factory=Counter)  # the alert categories that hit
    excused_where: Counter[str] = field(default_factory=Counter)

    def recall(self) -> float | None:
        return self.hits / self.targets if self.targets else None


def _seconds(at: datetime) -> float:
    return (at - START).total_seconds()


def system_detections(alerts: list[Alert]) -> list[Detection]:
    return [
        Detection(a.category, _seconds(a.first_evidence_at or a.raised_at), _seconds(a.raised_at))
        for a in alerts
        if a.state == "raised" and a.category not in IGNORED
    ]


def baseline_detections(windows: list[ClassificationEvent]) -> list[Detection]:
    """The naive app: an alert whenever a window scores >= 0.5 on one of a category's labels
    (consecutive such windows are one alert; with two models, a window is hot if either
    model's event for it is)."""
    by_window: dict[datetime, list[ClassificationEvent]] = defaultdict(list)
    for event in windows:
        by_window[event.window_start].append(event)
    out: list[Detection] = []
    active: set[str] = set()
    for start_at in sorted(by_window):
        group = by_window[start_at]
        hot = {
            cat
            for cat, names in BASELINE_LABELS.items()
            for event in group
            if any(lb.label in names and lb.score >= BASELINE_SCORE for lb in event.labels)
        }
        start, end = _seconds(start_at), _seconds(group[0].window_end)
        out.extend(Detection(cat, start, end) for cat in sorted(hot - active))
        active = hot
    return out


def score(detections: list[Detection], stream: Stream) -> dict[str, Score]:
    scores: dict[str, Score] = defaultdict(Score)
    for segment in stream.segments:
        if segment.target is not None:
            scores[segment.target].targets += 1
    found: set[tuple[int, str]] = set()
    for det in sorted(detections, key=lambda d: d.raised_s):
        seg_index, seg = _segment_at(stream.segments, det.raised_s)
        if seg is not None and seg.target is not None and det.category in (seg.credits or ()):
            s = scores[seg.target]
            key = (seg_index, seg.target)
            if key in found:  # the same sound again (a second burst of knocks): not false
                s.repeats += 1
                continue
            found.add(key)
            s.hits += 1
            s.via[det.category] += 1
            s.latencies.append(det.raised_s - seg.onset_s)
            continue
        if seg is not None and det.category in (seg.excuses or ()):
            scores[det.category].excused_where[seg.kind] += 1
            continue
        scores[det.category].false += 1
        scores[det.category].false_where[seg.kind if seg is not None else "background"] += 1
    return scores


def _segment_at(segments: list[Segment], t: float) -> tuple[int, Segment | None]:
    for i, seg in enumerate(segments):
        if seg.onset_s <= t <= seg.end_s + LATE_S:
            return i, seg
    return -1, None


def snr_recall(
    detections: list[Detection], stream: Stream, kind: str, category: str | None = None
) -> dict[float, str]:
    """Per SNR: how many ``kind`` alarms raised ``category`` (default: their own)."""
    category = category or TARGETS[kind]
    out: dict[float, str] = {}
    for snr in SNRS:
        segs = [s for s in stream.segments if s.kind == kind and s.snr_db == snr]
        hit = sum(
            any(d.category == category and s.onset_s <= d.raised_s <= s.end_s + LATE_S
                for d in detections)
            for s in segs
        )  # fmt: skip
        out[snr] = f"{hit}/{len(segs)}"
    return out


# -- report ------------------------------------------------------------------------------------
def _fmt(value: float | None, spec: str) -> str:
    if value is None:  # as wide as the number would be: "7.1%" -> 7
        return format("-", ">" + spec.split(".", maxsplit=1)[0]) if spec[:1].isdigit() else "-"
    return format(value, spec)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def report(stream: Stream, result: RunResult) -> dict[str, object]:
    hours = stream.seconds / 3600
    system = score(system_detections(result.alerts), stream)
    baseline = score(baseline_detections(result.windows), stream)
    shown = set(system) | set(baseline) | {"possible_smoke_alarm"}  # its zeros are news too
    targeted = {seg.target for seg in stream.segments if seg.target is not None}
    categories = sorted(shown, key=lambda c: (c not in targeted, c))
    print(f"\nstream: {stream.seconds / 3600:.2f} h of audio, {len(stream.segments)} segments, "
          f"{result.events} events published, {len(result.windows)} windows seen by the "
          f"baseline; wall {result.wall_s:.0f} s")  # fmt: skip
    header = (f"{'category':<20} {'targets':>7} | {'recall':>7} {'false/h':>8} {'p50 s':>6} "
              f"{'p95 s':>6} | {'base rec':>8} {'base f/h':>8} {'p50 s':>6} "
              f"{'p95 s':>6}")  # fmt: skip
    print(header)
    print("-" * len(header))
    table: dict[str, object] = {}
    for cat in categories:
        s, b = system[cat], baseline[cat]
        row = {
            "targets": s.targets,
            "recall": s.recall(),
            "false_per_hour": s.false / hours,
            "latency_p50_s": _pct(s.latencies, 50),
            "latency_p95_s": _pct(s.latencies, 95),
            "false_where": dict(s.false_where),
            "hits_by_alert": dict(s.via),
            "excused_where": dict(s.excused_where),
            "repeats": s.repeats,
            "baseline_repeats": b.repeats,
            "baseline_recall": b.recall(),
            "baseline_false_per_hour": b.false / hours,
            "baseline_latency_p50_s": _pct(b.latencies, 50),
            "baseline_latency_p95_s": _pct(b.latencies, 95),
            "baseline_false_where": dict(b.false_where),
        }
        table[cat] = row
        print(f"{cat:<20} {s.targets:>7} | {_fmt(s.recall(), '7.1%')} {s.false / hours:>8.2f} "
              f"{_fmt(_pct(s.latencies, 50), '6.2f')} {_fmt(_pct(s.latencies, 95), '6.2f')} | "
              f"{_fmt(b.recall(), '8.1%')} {b.false / hours:>8.2f} "
              f"{_fmt(_pct(b.latencies, 50), '6.2f')} "
              f"{_fmt(_pct(b.latencies, 95), '6.2f')}")  # fmt: skip
    sys_false = sum(s.false for s in system.values()) / hours
    base_false = sum(b.false for b in baseline.values()) / hours
    print(f"{'all':<20} {'':>7} | {'':>7} {sys_false:>8.2f} {'':>6} {'':>6} | {'':>8} "
          f"{base_false:>8.2f}")  # fmt: skip
    print()
    for title, counts in (
        ("false alerts by where they happened (system)",
         {c: system[c].false_where for c in categories}),
        ("hits by alert category (system)", {c: system[c].via for c in categories}),
        ("real alarms announced as possible smoke alarms (neither hit nor false, system)",
         {c: system[c].excused_where for c in categories}),
        ("false alerts by where they happened (baseline)",
         {c: baseline[c].false_where for c in categories}),
    ):  # fmt: skip
        print(f"{title}:")
        for cat, counter in counts.items():
            if counter:
                print(f"  {cat:<20} {dict(counter)}")
    sys_det = system_detections(result.alerts)
    per_snr: dict[str, dict[float, str]] = {}
    if any(seg.snr_db is not None for seg in stream.segments):
        print("\nrecall by SNR (system):")
        per_snr = {kind: snr_recall(sys_det, stream, kind) for kind in ("smoke", "co")}
        if system["possible_smoke_alarm"].excused_where:  # YAMNet alone, without a pattern
            for kind in ("smoke", "co"):
                per_snr[f"{kind} as possible"] = snr_recall(
                    sys_det, stream, kind, "possible_smoke_alarm"
                )
        for kind, values in per_snr.items():
            print(f"  {kind:<18} " + "  ".join(f"{snr:>4.0f} dB {v}" for snr, v in values.items()))
    checks = _checks(system, baseline, stream, sys_det, hours)
    print("\ntargets:")
    for name, (ok, detail) in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    return {"hours": hours, "categories": table, "false_per_hour_all": sys_false,
            "baseline_false_per_hour_all": base_false, "snr_recall": per_snr,
            "checks": {k: v[0] for k, v in checks.items()}}  # fmt: skip


def _checks(
    system: dict[str, Score],
    baseline: dict[str, Score],
    stream: Stream,
    detections: list[Detection],
    hours: float,
) -> dict[str, tuple[bool, str]]:
    out: dict[str, tuple[bool, str]] = {}
    for kind in ("smoke", "co"):
        category = TARGETS[kind]
        segs = [s for s in stream.segments if s.kind == kind and (s.snr_db or 0) >= 5]
        if not segs:
            continue
        hit = sum(
            any(d.category == category and s.onset_s <= d.raised_s <= s.end_s + LATE_S
                for d in detections)
            for s in segs
        )  # fmt: skip
        out[f"{category} recall at >= 5 dB SNR >= 95 %"] = (
            hit >= 0.95 * len(segs), f"{hit}/{len(segs)}")  # fmt: skip
    for category in ("smoke_alarm", "co_alarm"):
        out[f"no false {category} alert"] = (system[category].false == 0,
                                             f"{system[category].false} false")  # fmt: skip
    sys_false = sum(s.false for s in system.values()) / hours
    base_false = sum(b.false for b in baseline.values()) / hours
    out["false alerts/h <= baseline / 10 (all categories)"] = (
        sys_false <= base_false / 10, f"{sys_false:.2f} vs {base_false:.2f}")  # fmt: skip
    targeted = sorted({seg.target for seg in stream.segments if seg.target is not None})
    hits = sum(system[c].hits for c in targeted)
    total = sum(system[c].targets for c in targeted)
    out["recall >= 90 % of target events (all categories)"] = (
        hits >= 0.9 * total, f"{hits}/{total} = {hits / total if total else 0:.1%}")  # fmt: skip
    for category in targeted:
        s, b = system[category], baseline[category]
        out[f"{category} recall >= baseline"] = (
            (s.recall() or 0) >= (b.recall() or 0),
            f"{_fmt(s.recall(), '.1%')} vs {_fmt(b.recall(), '.1%')}")  # fmt: skip
    return out


def dump(path: Path, stream: Stream, result: RunResult) -> None:
    with path.open("w", encoding="utf-8") as out:
        for seg in stream.segments:
            out.write(json.dumps({"segment": seg.__dict__}, default=sorted) + "\n")
        for event in [*result.windows, *result.patterns]:
            out.write(json.dumps({"event": json.loads(event.to_json())}) + "\n")
        for alert in result.alerts:
            out.write(json.dumps({"alert": json.loads(alert.to_json())}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--smoke-per-snr", type=int, default=8,
                        help="synthetic smoke and CO alarms per SNR level")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", type=Path, default=None, help="policy YAML (default shipped)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--no-patterns", action="store_true",
                        help="agent without the T3/T4/520 Hz detectors: what YAMNet alone "
                        "makes of each alarm (a non-T3 smoke alarm's path)")  # fmt: skip
    parser.add_argument("--dump", type=Path, default=None,
                        help="write segments, events and alerts (JSON lines) here")  # fmt: skip
    parser.add_argument("--corpus", choices=("validation", "tuning"), default=None,
                        help="run on this half of the development corpus ($SOUNDALERT_CORPUS) "
                        "instead of ../shared/data/dev-audio and synthetic alarms")  # fmt: skip
    parser.add_argument("--extra", type=Path, action="append", default=[],
                        help="with --corpus: also a folder of clips with a meta.csv of "
                        "path,category[,kind] (e.g. realistic synthetic alarms)")  # fmt: skip
    parser.add_argument("--png", type=Path, default=None,
                        help="with --corpus: draw recall vs false alerts/h here")  # fmt: skip
    parser.add_argument("--model", action="append", default=None,
                        help="the agent's model(s): yamnet, mn04, both, comma-separated or "
                        "repeated; each runs the pipeline once (default: the agent's)")  # fmt: skip
    args = parser.parse_args()
    models = _models(args.model)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    began = time.monotonic()
    if args.corpus is not None:
        from bench.corpus.manifest import CorpusMissingError  # noqa: PLC0415

        try:
            stream = build_corpus_stream(args.corpus, args.extra, args.seed)
        except CorpusMissingError as exc:
            sys.exit(f"detection bench: {exc}")
    else:
        stream = build_stream(args.smoke_per_snr, args.seed)
    print(f"built the stream in {time.monotonic() - began:.0f} s")
    from bench.model_compare import compare, policy_for, print_comparison  # noqa: PLC0415

    figures: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="soundalert-bench-") as tmp:
        policies: dict[str, Path | None] = {}
        for model in models:
            if args.policy is not None:
                policies[model], what = args.policy, f"{args.policy}"
            else:
                policies[model], what = policy_for(model, Path(tmp))
            print(f"\n=== model {model}: policy {what} ===")
            result = asyncio.run(run_pipeline(stream, policies[model], Path(tmp) / model,
                                              patterns=not args.no_patterns,
                                              model=model))  # fmt: skip
            print(f"windows classified: {result.classified} (the rest from the score cache)")
            figures[model] = report(stream, result)
            if args.dump is not None:
                dump(args.dump.with_name(f"{args.dump.stem}-{model}{args.dump.suffix}")
                     if len(models) > 1 else args.dump, stream, result)  # fmt: skip
        equal = compare(models, args.corpus, policies) if args.corpus is not None else {}
        side = print_comparison(figures, equal) if len(models) > 1 or equal else {}
        if args.png is not None and args.corpus is not None:
            from bench.detection_figure import draw  # noqa: PLC0415

            draw(args.png, args.corpus, figures, policies, equal)
            print(f"\nwrote {args.png}")
    if args.json is not None:
        out = figures[models[0]] if len(models) == 1 else {"models": figures, **side}
        args.json.write_text(json.dumps(out, indent=2, default=str))


def _models(given: list[str] | None) -> list[ModelChoice]:
    """The models asked for, in the order yamnet, mn04, both."""
    names = {n.strip() for item in given or [DEFAULT_CHOICE] for n in item.split(",")}
    unknown = sorted(names - set(KINDS))
    if unknown:
        sys.exit(f"detection bench: unknown model(s) {unknown}: use {', '.join(KINDS)}")
    return [m for m in KINDS if m in names]


if __name__ == "__main__":
    main()


__all__ = ["build_stream", "main", "run_pipeline"]
