"""The aggregator's async shell: MQTT in and out, the clock, metrics, signals.

The shell owns all I/O; :class:`~services.aggregator.core.Aggregator` owns every decision.
Delivery guarantees:

* inbound QoS 1 messages are acknowledged (PUBACK) only after their effects are committed
  to SQLite, so a crash makes the broker redeliver them to our persistent session;
* outbound alerts are written to an outbox table in the same transaction as the state change
  and deleted once the broker acknowledged them, so a crash or an outage never loses one.

Inbound acknowledgements never wait for outbound ones: a batch is acknowledged as soon as its
effects (outbox rows included) are committed, and the committed outbox is published on a second
connection of its own. Waiting for the PUBACK of an alert would stall every event behind it, and
on a shared connection even the PUBACK alone stalls the inbound stream: the aggregator has
nothing to send back for it, so its TCP acknowledgement is delayed, and a broker with Nagle's
algorithm on (Mosquitto's default) holds the next events until that acknowledgement arrives.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from schemas.decode import Reason, Rejected, decode
from schemas.messages import Alert, ClassificationEvent, Feedback, NodeState, NodeStatus
from schemas.topics import Topics
from services.aggregator.core import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.policy import Policy, load_policy
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import Publication, Store
from soundalert.lifecycle import (
    announced,
    cancel_until_done,
    handle_signals,
    metrics_server,
    service_link,
    service_status,
)
from soundalert.mqtt import BrokerUrl, ack, make_client, run_forever

__all__ = ["AggregatorService"]

log = logging.getLogger(__name__)

_MAX_BATCH = 256
_MAX_SENDING = 8  # alert messages awaiting their PUBACK at once (aiomqtt warns above 10)
_TRUNCATE = 200


@dataclass(slots=True)
class _Received:
    message: aiomqtt.Message
    started: float
    event_id: str | None


class AggregatorService:
    """Runs the aggregator until :meth:`stop` (or SIGTERM/SIGINT)."""

    def __init__(
        self,
        settings: AggregatorSettings,
        *,
        policy: Policy | None = None,
        metrics: AggregatorMetrics | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        on_processed: Callable[[str, float], None] | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.settings = settings
        self.broker = BrokerUrl.parse(settings.broker)
        self.topics = Topics(settings.topic_root)
        self.metrics = metrics or AggregatorMetrics()
        self.store = Store(settings.database)
        self.core = Aggregator(policy or load_policy(settings.policy_file), self.store,
                               self.metrics)  # fmt: skip
        self._on_alert = on_alert
        self._on_processed = on_processed
        self._handle_signals = handle_signals
        self._stop = asyncio.Event()
        # Outbox rows written since the last commit, and committed rows not yet handed to the
        # broker in this session; batches whose messages wait for those to be sent.
        self._staged: list[Publication] = []
        self._outbox: deque[Publication] = deque()
        self._outbox_ready = asyncio.Event()
        self._unsent_batches: list[list[_Received]] = []
        self._pending = len(self.store.pending_publications())
        self.metrics.outbox.set(self._pending)

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        if self._handle_signals:
            handle_signals(self.stop)
        with metrics_server(self.settings.metrics_port, self.settings.metrics_host,
                            self.metrics.registry):  # fmt: skip
            try:
                async with asyncio.TaskGroup() as group:
                    mqtt_task = group.create_task(self._mqtt())
                    outbound = group.create_task(self._mqtt_out())
                    ticker = group.create_task(self._ticker())
                    await self._stop.wait()
                    await cancel_until_done([mqtt_task, outbound, ticker])
            finally:
                self.store.commit()
                self.store.close()
                log.info("aggregator stopped")

    def _status(self, state: NodeState) -> bytes:
        return service_status("aggregator", state, heartbeat_s=self.settings.status_heartbeat_s,
                              capabilities=["fusion", "supervision"])  # fmt: skip

    async def _mqtt(self) -> None:
        await service_link(self.broker, self.settings.client_id,
                           self.topics.service_status("aggregator"), self._status, self._session,
                           on_lost=lambda: self.metrics.mqtt_connected.set(0))  # fmt: skip

    async def _mqtt_out(self) -> None:
        """The outbound connection: publishes the committed outbox, nothing else."""

        def connect() -> aiomqtt.Client:
            # A clean session: what is not yet acknowledged stays in the outbox table.
            return make_client(self.broker, f"{self.settings.client_id}-out")

        await run_forever(self.broker, connect, self._publish_session)

    async def _session(self, client: aiomqtt.Client) -> None:
        status_topic = self.topics.service_status("aggregator")
        try:
            await client.subscribe(
                [(self.topics.all_events, 1), (self.topics.all_status, 1),
                 (self.topics.all_feedback, 1)]
            )  # fmt: skip
            async with announced(client, status_topic, self._status,
                                 self.settings.status_heartbeat_s):  # fmt: skip
                self.metrics.mqtt_connected.set(1)
                log.info("subscribed under %s/; aggregator ready", self.topics.root)
                await self._consume(client)
        finally:
            self.metrics.mqtt_connected.set(0)

    async def _consume(self, client: aiomqtt.Client) -> None:
        batch: list[_Received] = []
        async for message in client.messages:
            batch.append(self._handle(message))
            if len(client.messages) == 0 or len(batch) >= _MAX_BATCH:
                self._commit_and_ack(client, batch)
                batch = []

    async def _publish_session(self, client: aiomqtt.Client) -> None:
        self._commit()
        # Everything committed and not yet acknowledged by the broker, in order: what was
        # committed while we were away, or sent on a connection that broke.
        self._outbox = deque(self.store.pending_publications())
        self._pending = len(self._outbox)
        self.metrics.outbox.set(self._pending)
        self._outbox_ready.set()
        try:
            await self._publish_outbox(client)
        except BaseExceptionGroup as errors:
            # run_forever reconnects on MqttError; let a lost connection reach it as such.
            lost, other = errors.split(aiomqtt.MqttError)
            if lost is not None and other is None:
                raise _first(lost) from None
            raise

    async def _publish_outbox(self, client: aiomqtt.Client) -> None:
        """Publish committed alert messages in commit order, a few awaiting PUBACK at a time."""
        sending: set[asyncio.Task[None]] = set()
        async with asyncio.TaskGroup() as sends:
            while True:
                await self._outbox_ready.wait()
                self._outbox_ready.clear()
                while self._outbox:
                    if len(sending) >= _MAX_SENDING:
                        await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                        continue
                    task = sends.create_task(self._send(client, self._outbox.popleft()))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                # Tasks start in creation order: after this yield each send has handed its
                # message to the client (same order on the wire) and waits for the PUBACK.
                await asyncio.sleep(0)
                sent, self._unsent_batches = self._unsent_batches, []
                for batch in sent:
                    self._processed(batch)

    async def _send(self, client: aiomqtt.Client, publication: Publication) -> None:
        await client.publish(publication.topic, publication.payload, qos=1,
                             retain=publication.retain)  # fmt: skip
        self.store.published([publication.id])
        self.store.commit()
        self._pending -= 1
        self.metrics.outbox.set(self._pending)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            try:
                self._enqueue(self.core.tick(time.time()))
            except Exception:  # a bug in one duty must not stop supervision for good
                log.exception("supervision tick failed")
            self._commit()
            try:
                await asyncio.to_thread(self.store.checkpoint)
            except sqlite3.Error as exc:
                log.warning("SQLite checkpoint failed (will retry): %s", exc)

    # -- one message -------------------------------------------------------------------------
    def _handle(self, message: aiomqtt.Message) -> _Received:
        started = time.perf_counter()
        now = time.time()
        topic = str(message.topic)
        raw = message.payload
        payload = raw if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        event_id = None
        try:
            event_id = self._dispatch(topic, bytes(payload), message.retain, now)
        except Rejected as rejected:
            self.metrics.rejected.labels(rejected.reason.value).inc()
            reason = rejected.reason.value
            excerpt = bytes(payload[:_TRUNCATE])
            log.warning("rejected message on %s (%s): %s; payload %r", topic, reason,
                        rejected.detail, excerpt)  # fmt: skip
        except Exception:  # never let one message stop the loop
            self.metrics.rejected.labels("internal_error").inc()
            log.exception("failed to process message on %s; payload %r", topic,
                          bytes(payload[:_TRUNCATE]))  # fmt: skip
        return _Received(message, started, event_id)

    def _dispatch(self, topic: str, payload: bytes, retained: bool, now: float) -> str | None:
        """Validate and hand one message to the core; returns the event id, if any."""
        parsed = self.topics.parse(topic)
        if parsed is None:
            raise Rejected(Reason.UNKNOWN_TOPIC, f"not a soundalert topic: {topic!r}")
        if parsed.kind == "events":
            event = decode(ClassificationEvent, payload, parsed)
            self._enqueue(self.core.handle_event(event, now))
            return event.event_id
        if parsed.kind == "status":
            status = decode(NodeStatus, payload, parsed)
            self._enqueue(self.core.handle_status(status, now, retained=retained))
        elif parsed.kind == "feedback":
            feedback = decode(Feedback, payload, parsed)
            if feedback.site is not None and feedback.site != parsed.site:
                detail = f"payload site {feedback.site!r}, topic {parsed.site!r}"
                raise Rejected(Reason.TOPIC_MISMATCH, detail)
            self._enqueue(self.core.handle_feedback(feedback, parsed.site, now))
        return None

    def _enqueue(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self._staged.append(self.store.enqueue(self.topics.alerts(alert.site),
                                                   alert.to_json(), retain=False))  # fmt: skip
            state = self.core.category_state(alert.site, alert.category, alert,
                                             alert.published_at.timestamp())  # fmt: skip
            self._staged.append(self.store.enqueue(
                self.topics.alert_state(alert.site, alert.category), state.to_json(), retain=True
            ))  # fmt: skip
            log.info("alert %s %s %s at %s (%s)", alert.alert_id, alert.category, alert.state,
                     alert.location, alert.site)  # fmt: skip
            if self._on_alert is not None:
                self._on_alert(alert)

    def _commit(self) -> bool:
        """Commit; hand what the commit queued to the outbox publisher. True if it queued any."""
        self.core.flush()
        self.store.commit()
        if not self._staged:
            return False
        self._pending += len(self._staged)
        self.metrics.outbox.set(self._pending)
        self._outbox.extend(self._staged)
        self._staged.clear()
        self._outbox_ready.set()
        return True

    def _commit_and_ack(self, client: aiomqtt.Client, batch: list[_Received]) -> None:
        """Commit the batch's effects, then acknowledge its messages."""
        queued = self._commit()
        for item in batch:
            ack(client, item.message)
        if queued:  # processed once the publisher has sent the batch's alerts
            self._unsent_batches.append(batch)
        else:
            self._processed(batch)

    def _processed(self, batch: list[_Received]) -> None:
        finished = time.perf_counter()
        wall = time.time()
        for item in batch:
            self.metrics.processing.observe(finished - item.started)
            if self._on_processed is not None and item.event_id is not None:
                self._on_processed(item.event_id, wall)


def _first(errors: BaseExceptionGroup[aiomqtt.MqttError]) -> aiomqtt.MqttError:
    error = errors.exceptions[0]
    return _first(error) if isinstance(error, BaseExceptionGroup) else error
