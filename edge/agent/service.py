"""The agent's async shell: audio in, durable outbox, MQTT out, heartbeats, signals.

Two tasks run side by side: the *producer* reads the audio source, runs the pure pipeline and
queues every event in the outbox; the *MQTT loop* (:class:`edge.agent.publisher.NodePublisher`)
publishes the outbox in order, deleting each event once the aggregator acknowledged it (or, with
``--delivery broker``, on its PUBACK), and the retained node status (``online`` on connect,
heartbeats with figures, ``stopped`` on a clean exit, ``offline`` as the last will). Listening
never waits for the broker, nor for the disk: an outage only grows the outbox, and a full disk
costs old, unprotected events (counted), never the listening.

A finite source (a file, or stdin reaching its end) stops the agent once every event was
delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from edge.agent.events import EventBuilder, reportable, yamnet_source
from edge.agent.labels import LabelMap
from edge.agent.metrics import AgentMetrics
from edge.agent.model import DEFAULT_CLASS_MAP
from edge.agent.models import LoadedModel, load_models
from edge.agent.pipeline import Classifier, Pipeline, Verdict, WindowVerdict
from edge.agent.publisher import (
    PATTERN_PRIORITY,
    FatalConnectError,
    NodePublisher,
    event_priority,
)
from edge.agent.settings import AgentSettings
from edge.agent.sources import AudioSource
from edge.agent.windowing import SAMPLE_RATE
from edge.outbox import OutboxMessage
from edge.personal.background import BackgroundBuffer, RecentWindows, background_path
from edge.personal.packs import SoundBook, learn_from_windows, personal_source
from schemas.common import utc_now
from schemas.decode import Rejected, decode
from schemas.messages import TRANSIENT, ClassificationEvent, NodeState, NodeStatus
from schemas.soundpack import EMBEDDING_MODELS, EmbeddingSpec, LearnRequest
from schemas.topics import Topics
from soundalert import __version__
from soundalert.lifecycle import cancel_until_done, handle_signals, metrics_server
from soundalert.mqtt import BrokerUrl

__all__ = ["AgentService", "FatalConnectError"]

log = logging.getLogger(__name__)

_PACKS_WAIT_S = 10.0
_RETAINED_GRACE_S = 0.3


class AgentService:
    """Runs one node's agent until its source ends and the outbox drained, or :meth:`stop`."""

    def __init__(
        self,
        settings: AgentSettings,
        source: AudioSource,
        *,
        classifier: Classifier | None = None,
        model_version: str | None = None,
        labels: LabelMap | None = None,
        metrics: AgentMetrics | None = None,
        models: list[LoadedModel] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.broker = BrokerUrl.parse(settings.broker.get_secret_value())
        self.topics = Topics(settings.topic_root)
        self.metrics = metrics or AgentMetrics()
        if classifier is not None:  # one YAMNet-like classifier, given
            labels = labels or LabelMap.from_csv(settings.class_map_file or DEFAULT_CLASS_MAP)
            given = yamnet_source(model_version or "unknown")
            models = [LoadedModel("yamnet", classifier, labels, given)]
        elif models is None:
            models = load_models(settings.model, threads=settings.threads,
                                 yamnet_file=settings.model_file,
                                 yamnet_class_map=settings.class_map_file)  # fmt: skip
        self.models = models
        self.labels = models[0].labels
        self.pipeline = Pipeline(None, None, settings.pipeline(), heads=[m.head() for m in models])
        self.model_source = models[0].source
        self.outbox = settings.open_outbox(settings.outbox_path)
        self._events_topic = self.topics.events(settings.site, settings.node)
        self._builder: EventBuilder | None = None
        self._held: list[npt.NDArray[np.float32]] = []
        """Audio received but not yet analysed: it waits for the next window's end."""
        self._held_samples = 0
        self._stop = asyncio.Event()
        self._source_done = False
        self._started = time.monotonic()
        self._audio_dropped = 0
        self.publisher = NodePublisher(
            self.broker, settings.mqtt_client_id, self.outbox, topics=self.topics,
            site=settings.site, node=settings.node, status=self._status, stats=self._stats,
            metrics=self.metrics, timing=settings.timing(), delivery=settings.delivery,
            finished=lambda: self._source_done, on_finished=self.stop,
        )  # fmt: skip
        self.failure: str | None = None
        # Learned sounds: YAMNet's embeddings against the site's sound packs (none without it).
        self.sounds: SoundBook | None = None
        self.background: BackgroundBuffer | None = None
        self.recent: RecentWindows | None = None
        self._personal = personal_source()
        yamnet = next((m for m in models if m.kind == "yamnet"), None)
        if yamnet is not None:
            spec = EmbeddingSpec(model="yamnet", version=yamnet.source.version,
                                 dims=EMBEDDING_MODELS["yamnet"])  # fmt: skip
            self.sounds = SoundBook(settings.site, spec, rejected=self._pack_rejected)
            self.background = BackgroundBuffer(background_path(settings.outbox_path, settings.node))
            for reason in (
                "corrupt_weights",
                "wrong_embedding_model",
                "unknown_schema_version",
                "schema_violation",
                "topic_mismatch",
                "malformed_json",
            ):
                self.metrics.sound_packs_rejected.labels(reason)
            self.publisher.add_subscription(self.topics.sound_packs(settings.site),
                                            self._sound_pack)  # fmt: skip
            self.recent = RecentWindows()
            self.publisher.add_subscription(self.topics.learn(settings.site, settings.node),
                                            self._learn)  # fmt: skip
        if self.outbox.depth:
            log.info("outbox %s holds %d events from before; they go first",
                     settings.outbox_path, self.outbox.depth)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until stopped. Sets :attr:`failure` (and returns) on a fatal problem."""
        handle_signals(self.stop)
        with metrics_server(self.settings.metrics_port, self.settings.metrics_host,
                            self.metrics.registry):  # fmt: skip
            try:
                async with asyncio.TaskGroup() as group:
                    producer = group.create_task(self._produce())
                    mqtt = group.create_task(self._mqtt())
                    await self._stop.wait()
                    await cancel_until_done([producer, mqtt])
            finally:
                if self.background is not None:
                    self.background.save()
                left = self.outbox.depth
                self.outbox.close()
                log.info("agent stopped: %d events published, %d left in the outbox",
                         self.publisher.published, left)  # fmt: skip

    # -- audio -> outbox ---------------------------------------------------------------------
    async def _produce(self) -> None:
        self.source.align(self.pipeline.samples_to_window, self.pipeline.hop)
        if self.sounds is not None and not self.source.live:
            await self._await_sound_packs()
        try:
            async for block in self.source.blocks():
                self._consume(block)
                if self.source.dropped_blocks > self._audio_dropped:
                    self.metrics.audio_dropped.inc(self.source.dropped_blocks - self._audio_dropped)
                    self._audio_dropped = self.source.dropped_blocks
            self._analyse()  # the end of the stream: what no window completed
        except Exception as exc:  # a source failure ends the agent with a clear line
            self.failure = f"audio source failed: {exc}"
            log.debug("audio source failed", exc_info=True)
            self.stop()
            return
        log.info("audio source ended after %.1f s of audio",
                 self.pipeline.samples_seen / SAMPLE_RATE)  # fmt: skip
        self._source_done = True
        self.publisher.wakeup()

    async def _await_sound_packs(self) -> None:
        """A replay starts once the site's learned sounds arrived (retained, right after the
        subscription), so that it hears them from its first window, or the first connection
        failed; a live source never waits."""
        try:
            async with asyncio.timeout(_PACKS_WAIT_S):
                await self.publisher.first_attempt.wait()
            if self.publisher.connected:
                await asyncio.sleep(_RETAINED_GRACE_S)
        except TimeoutError:
            log.warning("no connection to the broker after %.0f s: replaying without the "
                        "site's learned sounds", _PACKS_WAIT_S)  # fmt: skip

    def _consume(self, block: npt.NDArray[np.float32]) -> None:
        """Take a block of the source; analyse what was held once it completes a window.

        Audio is analysed once per window hop (0.48 s), when the next window's last sample
        came, not block by block (0.1 s): each window is classified as soon as before, only the
        pattern detector's verdicts wait up to a hop longer. Each wake-up of the pipeline costs
        a cache-cold start: fed 0.1 s blocks in real time the pattern detector cost 12-17 ms
        per audio s on the bench machine, fed 0.5 s blocks 4 ms.
        """
        if self._builder is None:
            start = self.source.start_time
            if start is None:
                lead = block.size / SAMPLE_RATE if self.source.live else 0.0
                start = utc_now() - timedelta(seconds=lead)
            self._builder = EventBuilder(self.settings.site, self.settings.node, start,
                                         self.model_source,
                                         next_seq=self.outbox.meta("next_seq"),
                                         more_sources=[m.source for m in self.models[1:]],
                                         )  # fmt: skip
        self._held.append(block)
        self._held_samples += block.size
        if self._held_samples >= self.pipeline.samples_to_window:
            self._analyse()

    def _analyse(self) -> None:
        """Run the pipeline on the held audio and queue the events it yields."""
        if not self._held:
            return
        assert self._builder is not None  # set by the first block
        block = self._held[0] if len(self._held) == 1 else np.concatenate(self._held)
        self._held.clear()
        self._held_samples = 0
        verdicts = self.pipeline.feed(block)
        messages = []
        for verdict in verdicts:
            self._observe(verdict)
            personal = self._personal_event(verdict)
            if personal is not None:
                messages.append(OutboxMessage(personal.event_id, self._events_topic,
                                              personal.to_json(), priority=event_priority(personal),
                                              seq=personal.seq))  # fmt: skip
            if not reportable(verdict, self.settings.report_floor):
                continue
            event = self._builder.build(verdict)
            messages.append(OutboxMessage(event.event_id, self._events_topic, event.to_json(),
                                          priority=event_priority(event),
                                          seq=event.seq))  # fmt: skip
        if messages:
            self.publisher.queue(messages, meta={"next_seq": self._builder.next_seq})

    def _personal_event(self, verdict: Verdict) -> ClassificationEvent | None:
        """A learned sound's event for a YAMNet window that is one; other windows of sound
        go to the background buffer."""
        if (self.sounds is None or self.background is None or self._builder is None
                or self.recent is None or not isinstance(verdict, WindowVerdict)
                or verdict.embedding is None or verdict.model != "yamnet"):  # fmt: skip
            return None
        self.recent.add(self._builder.at(verdict.start_sample).timestamp(),
                        self._builder.at(verdict.end_sample).timestamp(), verdict.level_dbfs,
                        verdict.embedding)  # fmt: skip
        found = self.sounds.match(verdict.embedding)
        if found is None:
            self.background.add(verdict.embedding)
            return None
        self.metrics.personal_detections.inc()
        return self._builder.personal_event(verdict, found[0], found[1], self._personal)

    def _sound_pack(self, topic: str, payload: bytes) -> None:
        parsed = self.topics.parse(topic)
        if self.sounds is None or parsed is None or parsed.kind != "sound_pack":
            return
        changed = self.sounds.take(parsed, payload)
        if changed is not None:
            log.info("sound packs: %s (%d learned sounds)", changed, len(self.sounds))
        self.metrics.sound_packs.set(len(self.sounds))

    def _learn(self, topic: str, payload: bytes) -> None:
        """ "This was my ...": learn from the windows this node kept, publish the pack."""
        parsed = self.topics.parse(topic)
        if self.sounds is None or self.recent is None or self.background is None or (
                parsed is None or not payload):  # fmt: skip
            return
        try:
            request = decode(LearnRequest, payload, parsed)
            emb, levels = self.recent.between(request.heard_from.timestamp(),
                                              request.heard_to.timestamp())  # fmt: skip
            background = self.background.recent(240)
            pack, learned = learn_from_windows(request, emb, levels, background, self.sounds)
        except (Rejected, ValueError) as exc:
            reason = exc.reason.value if isinstance(exc, Rejected) else "no_windows"
            self.metrics.learn_requests.labels(reason).inc()
            log.warning("could not learn from %s (%s): %s", topic, reason, exc)
            return
        self.metrics.learn_requests.labels("learned").inc()
        pack_topic = self.topics.sound_pack(pack.site, pack.sound)
        body = pack.to_json()
        self.publisher.queue([OutboxMessage(f"learn.{request.request_id}", pack_topic, body,
                                            retain=True, priority=PATTERN_PRIORITY)])  # fmt: skip
        self._sound_pack(pack_topic, body)
        log.info("learned %r as %s v%d from what this node heard (%s): %s", pack.title,
                 pack.sound, pack.version, request.by or "someone",
                 "; ".join(learned.quality.lines()))  # fmt: skip

    def _pack_rejected(self, reason: str) -> None:
        self.metrics.sound_packs_rejected.labels(reason).inc()

    def _observe(self, verdict: Verdict) -> None:
        if isinstance(verdict, WindowVerdict):
            self.metrics.level.set(verdict.level_dbfs)
            if verdict.gated:
                self.metrics.windows_gated.inc()
            else:
                self.metrics.windows.inc()
            if verdict.inference_s is not None:
                self.metrics.inference.observe(verdict.inference_s)
        else:
            self.metrics.pattern_detections.labels(verdict.detection.kind).inc()

    # -- MQTT ------------------------------------------------------------------------------
    def _status(self, state: NodeState, stats: dict[str, float | int | str] | None = None
                ) -> NodeStatus:  # fmt: skip
        return NodeStatus(
            site=self.settings.site,
            node=self.settings.node,
            state=state,
            at=utc_now(),
            heartbeat_s=self.settings.heartbeat_s,
            software=f"soundalert-agent {__version__}",
            capabilities=self._capabilities(),
            stats=stats or {},
        )

    def _capabilities(self) -> list[str]:
        out = [m.kind for m in self.models] + (["patterns"] if self.settings.patterns else [])
        if self.sounds is not None:
            out.append("personal")
        # A replayed file ends by itself: the aggregator does not raise "stopped listening".
        return out if self.source.live else [*out, TRANSIENT]

    def _stats(self) -> dict[str, float | int | str]:
        stats: dict[str, float | int | str] = dict(self.pipeline.take_stats().summary())
        stats.update(self.publisher.figures())
        stats.update(
            audio_blocks_dropped=self.source.dropped_blocks,
            uptime_s=round(time.monotonic() - self._started, 1),
        )
        return stats

    async def _mqtt(self) -> None:
        try:
            await self.publisher.run()
        except FatalConnectError as exc:
            self.failure = str(exc)
            self.stop()
