"""The aggregator's async shell: MQTT in and out, the clock, metrics, signals.

The shell owns all I/O; :class:`~services.aggregator.core.Aggregator` owns every decision.
Delivery guarantees:

* inbound QoS 1 messages are acknowledged (PUBACK) only after their effects are committed
  to SQLite, so a crash makes the broker redeliver them to our persistent session;
* outbound alerts are written to an outbox table in the same transaction as the state change
  and deleted once the broker acknowledged them, so a crash or an outage never loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
from prometheus_client import start_http_server

from schemas.common import utc_now
from schemas.decode import Reason, Rejected, decode
from schemas.messages import Alert, ClassificationEvent, Feedback, NodeState, NodeStatus
from schemas.topics import Topics
from services.aggregator.core import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.policy import Policy, load_policy
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import Store
from soundalert import __version__
from soundalert.mqtt import BrokerUrl, ack, make_client, run_forever

__all__ = ["AggregatorService"]

log = logging.getLogger(__name__)

_MAX_BATCH = 256
_TRUNCATE = 200


async def _cancel_until_done(tasks: list[asyncio.Task[None]], grace_s: float = 3.0) -> None:
    """Cancel, and cancel again if a task is still running after ``grace_s``.

    Python 3.11's ``asyncio.wait_for`` (used inside aiomqtt) can swallow a cancellation that
    races with the awaited result; a single ``cancel()`` could then leave the service running
    after SIGTERM.
    """
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=grace_s)


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
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self.metrics.outbox.set(len(self.store.pending_publications()))

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT) if self._handle_signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        server = None
        if self.settings.metrics_port is not None:
            server, _ = start_http_server(
                self.settings.metrics_port, self.settings.metrics_host, self.metrics.registry
            )
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host,
                     server.server_port)  # fmt: skip
        try:
            async with asyncio.TaskGroup() as group:
                mqtt_task = group.create_task(self._mqtt())
                ticker = group.create_task(self._ticker())
                await self._stop.wait()
                await _cancel_until_done([mqtt_task, ticker])
        finally:
            if server is not None:
                server.shutdown()
            self.store.commit()
            self.store.close()
            log.info("aggregator stopped")

    def _status(self, state: NodeState) -> bytes:
        return NodeStatus(
            site="_services",
            node="aggregator",
            state=state,
            at=utc_now(),
            heartbeat_s=self.settings.status_heartbeat_s,
            software=f"soundalert-aggregator {__version__}",
            capabilities=["fusion", "supervision"],
        ).to_json()

    async def _mqtt(self) -> None:
        will = aiomqtt.Will(self.topics.service_status("aggregator"), self._status("offline"),
                            qos=1, retain=True)  # fmt: skip

        def connect() -> aiomqtt.Client:
            return make_client(self.broker, self.settings.client_id, will=will,
                               persistent=True, manual_ack=True)  # fmt: skip

        def lost(_problem: str) -> None:
            self._client = None
            self.metrics.mqtt_connected.set(0)

        await run_forever(self.broker, connect, self._session, on_disconnect=lost)

    async def _session(self, client: aiomqtt.Client) -> None:
        status_topic = self.topics.service_status("aggregator")
        try:
            await client.subscribe(
                [(self.topics.all_events, 1), (self.topics.all_status, 1),
                 (self.topics.all_feedback, 1)]
            )  # fmt: skip
            await client.publish(status_topic, self._status("online"), qos=1, retain=True)
            self._client = client
            self.metrics.mqtt_connected.set(1)
            log.info("subscribed under %s/; aggregator ready", self.topics.root)
            await self._flush(client, [])  # anything committed while we were away
            batch: list[_Received] = []
            async for message in client.messages:
                batch.append(self._handle(message))
                if len(client.messages) == 0 or len(batch) >= _MAX_BATCH:
                    await self._flush(client, batch)
                    batch = []
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(2):
                    await client.publish(status_topic, self._status("stopped"), qos=1,
                                         retain=True)  # fmt: skip
            raise
        finally:
            self._client = None
            self.metrics.mqtt_connected.set(0)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            try:
                self._enqueue(self.core.tick(time.time()))
            except Exception:  # a bug in one duty must not stop supervision for good
                log.exception("supervision tick failed")
            client = self._client
            if client is not None:
                try:
                    await self._flush(client, [])
                except aiomqtt.MqttError as exc:
                    log.warning("could not publish from the ticker: %s", exc)
            else:
                async with self._lock:
                    self.core.flush()
                    self.store.commit()

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
            self.store.enqueue(self.topics.alerts(alert.site), alert.to_json(), retain=False)
            state = self.core.category_state(alert.site, alert.category, alert,
                                             alert.published_at.timestamp())  # fmt: skip
            self.store.enqueue(self.topics.alert_state(alert.site, alert.category),
                               state.to_json(), retain=True)  # fmt: skip
            log.info("alert %s %s %s at %s (%s)", alert.alert_id, alert.category, alert.state,
                     alert.location, alert.site)  # fmt: skip
            if self._on_alert is not None:
                self._on_alert(alert)

    async def _flush(self, client: aiomqtt.Client, batch: list[_Received]) -> None:
        """Commit, publish what the commit queued, then acknowledge the batch."""
        async with self._lock:
            self.core.flush()
            self.store.commit()
            pending = self.store.pending_publications()
            if pending:
                done: list[int] = []
                try:
                    for publication in pending:
                        await client.publish(publication.topic, publication.payload, qos=1,
                                             retain=publication.retain)  # fmt: skip
                        done.append(publication.id)
                finally:
                    self.store.published(done)
                    self.store.commit()
                    self.metrics.outbox.set(len(pending) - len(done))
        finished = time.perf_counter()
        wall = time.time()
        for item in batch:
            ack(client, item.message)
            self.metrics.processing.observe(finished - item.started)
            if self._on_processed is not None and item.event_id is not None:
                self._on_processed(item.event_id, wall)
