"""The aggregator's async shell: MQTT in and out, the clock, metrics, signals.

The shell owns all I/O; :class:`~services.aggregator.core.Aggregator` owns every decision.
Delivery guarantees:

* inbound QoS 1 messages are acknowledged (PUBACK) only after their effects are committed
  to SQLite, so a crash makes the broker redeliver them to our persistent session;
* outbound alerts are written to an outbox table in the same transaction as the state change
  and deleted once the broker acknowledged them, so a crash or an outage never loses one;
* once a node's events are committed, a retained :class:`~schemas.messages.DeliveryAck` tells
  the node it may delete them, so a broker that forgets (a crash, a lost session) loses nothing.

No message can stop the service. Each message's effects run in a savepoint: one whose
processing fails after validation is undone alone, dead-lettered with its reason, counted
(``soundalert_messages_rejected_total{reason="internal_error"}``) and acknowledged, and the core
is rebuilt from the store. A commit that fails (a full disk) does not stop alerting either:
alerts go out from memory, a ``storage_trouble`` alert says so, the commit is retried with
everything since the last good one, and no delivery ack is sent until it succeeds, so the nodes
keep what the aggregator could not save.

Inbound acknowledgements never wait for outbound ones: a batch is acknowledged as soon as its
effects (outbox rows included) are committed, and the committed outbox is published on a second
connection of its own. Waiting for the PUBACK of an alert would stall every event behind it, and
on a shared connection even the PUBACK alone stalls the inbound stream: the aggregator has
nothing to send back for it, so its TCP acknowledgement is delayed, and a broker with Nagle's
algorithm on (Mosquitto's default) holds the next events until that acknowledgement arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from schemas.common import utc_now
from schemas.decode import Reason, Rejected, decode
from schemas.messages import (
    Alert,
    ClassificationEvent,
    DeliveryAck,
    Feedback,
    NodeState,
    NodeStatus,
)
from schemas.topics import Topics
from services.aggregator.core import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.personal import LearnedSounds
from services.aggregator.policy import Policy, load_policy
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import NodeRow, Publication, StorageError, Store
from soundalert.exposition import ForkedExposition
from soundalert.lifecycle import (
    announced,
    cancel_until_done,
    handle_signals,
    metrics_server,
    open_state,
    service_link,
    service_status,
)
from soundalert.mqtt import Backoff, BrokerUrl, ack, make_client, run_forever

__all__ = ["AggregatorService", "open_store"]

log = logging.getLogger(__name__)

_MAX_BATCH = 256
_PRUNE_EVERY_S = 600.0
_PRUNE_CHUNK = 2000
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
        self._storage_problem: str | None = None
        # A database that cannot even be opened: state in memory, and a trouble alert.
        self.store, self._memory_only = open_store(settings, self.metrics)
        base = policy or load_policy(settings.policy_file)
        self.learned = LearnedSounds(base)
        self.core = Aggregator(base, self.store, self.metrics)
        if self.core.storage_trouble_sites and self._storage_problem is None:
            self._storage_problem = "not saved before the last restart"  # resolved once saved
        self._on_alert = on_alert
        self._on_processed = on_processed
        self._handle_signals = handle_signals
        self._stop = asyncio.Event()
        # Outbox rows written since the last commit, and committed rows not yet handed to the
        # broker in this session; batches whose messages wait for those to be sent.
        self._staged: list[Publication] = []
        self._staged_alerts: list[Alert] = []
        self._retry = Backoff(initial=1.0, maximum=30.0)
        self._retry_at = 0.0
        self._acks_last: dict[tuple[str, str], float] = {}
        self._acks_waiting: set[tuple[str, str]] = set()
        self._outbox: deque[Publication] = deque()
        self._outbox_ready = asyncio.Event()
        self._prune_more = False
        self._unsent_batches: list[list[_Received]] = []
        self._pending = len(self.store.pending_publications())
        self.metrics.outbox.set(self._pending)

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        if self._handle_signals:
            handle_signals(self.stop)
        port, host, every = (self.settings.metrics_port, self.settings.metrics_host,
                             self.settings.metrics_every_s)  # fmt: skip
        forked: ForkedExposition | None = None
        server: contextlib.AbstractContextManager[int | None]
        if port is not None and every is not None:
            forked = ForkedExposition(self.metrics.registry, every)
            server = forked.serve(port, host)
        else:
            server = metrics_server(port, host, self.metrics.registry)
        with server:
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(self._mqtt()), group.create_task(self._mqtt_out()),
                             group.create_task(self._ticker())]  # fmt: skip
                    if forked is not None:
                        tasks.append(group.create_task(forked.run()))
                    await self._stop.wait()
                    await cancel_until_done(tasks)
            finally:
                try:
                    self.store.commit()
                except StorageError as exc:
                    log.error("stopping with %d writes that could not be saved: %s",  # noqa: TRY400 - expected, no traceback
                              self.store.uncommitted, exc)  # fmt: skip
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
                 (self.topics.all_feedback, 1), (self.topics.all_sound_packs, 1)]
            )  # fmt: skip
            with self.store.isolated():
                self.core.resume_supervision(time.time())
                self.core.flush()
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
        # committed while we were away, or sent on a connection that broke; then every node's
        # delivery ack again (retained, so a broker that lost them has them back).
        self._outbox = deque(self.store.pending_publications())
        self._pending = len(self._outbox)
        self.metrics.outbox.set(self._pending)
        if self._storage_problem is None:
            self._outbox.extend(self._ack(node) for node in self.core.ack_all())
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
        if publication.id is None:
            return
        self.store.published([publication.id])
        self._pending -= 1
        self.metrics.outbox.set(self._pending)
        self._commit()

    def _retention(self, now: float) -> None:
        """Prune a bounded chunk of what is older than the retention horizon (a backlog is
        worked off a chunk a tick, so no tick holds the event loop for long)."""
        before = now - self.settings.retention_days * 86400
        retryable: tuple[type[Exception], ...] = (*self.store.errors, OSError)
        try:
            with self.store.isolated():
                deleted = self.store.prune(before, limit=_PRUNE_CHUNK)
            for table, count in deleted.items():
                self.metrics.pruned.labels(table).inc(count)
            self._prune_more = any(count >= _PRUNE_CHUNK for count in deleted.values())
            for table, count in self.store.row_counts().items():
                self.metrics.state_rows.labels(table).set(count)
            self.metrics.state_bytes.set(self.store.used_bytes())
        except retryable:
            log.exception("retention pass failed (will retry)")

    async def _ticker(self) -> None:
        last_prune = -_PRUNE_EVERY_S
        last_review = float("-inf")
        while True:
            await asyncio.sleep(self.settings.tick_s)
            now = time.time()
            if self._prune_more or time.monotonic() - last_prune >= _PRUNE_EVERY_S:
                last_prune = time.monotonic()
                self._retention(now)
            if time.monotonic() - last_review >= self.settings.review_s:
                last_review = time.monotonic()
                try:
                    self.core.review_false_alarms(now)
                except self.store.errors:
                    log.exception("false-alarm review failed (will retry)")
            try:
                with self.store.isolated():
                    self._enqueue(self.core.tick(now))
                    self.core.flush()
            except Exception:  # a bug in one duty must not stop supervision for good
                log.exception("supervision tick failed")
                self._rebuild_core()
            self._commit()
            try:
                await asyncio.to_thread(self.store.checkpoint)
            except self.store.errors as exc:
                log.warning("SQLite checkpoint failed (will retry): %s", exc)

    # -- one message -------------------------------------------------------------------------
    def _handle(self, message: aiomqtt.Message) -> _Received:
        started = time.perf_counter()
        now = time.time()
        topic = str(message.topic)
        raw = message.payload
        payload = bytes(raw if isinstance(raw, bytes | bytearray) else str(raw or "").encode())
        event_id = None
        staged, staged_alerts = len(self._staged), len(self._staged_alerts)
        try:
            with self.store.isolated():
                event_id = self._dispatch(topic, payload, message.retain, now)
                self.core.flush()
        except Rejected as rejected:
            self.metrics.rejected.labels(rejected.reason.value).inc()
            reason = rejected.reason.value
            excerpt = payload[:_TRUNCATE]
            log.warning("rejected message on %s (%s): %s; payload %r", topic, reason,
                        rejected.detail, excerpt)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - never let one message stop the loop
            del self._staged[staged:], self._staged_alerts[staged_alerts:]  # rolled back
            self._dead_letter(topic, payload, now, exc)
        return _Received(message, started, event_id)

    def _dead_letter(self, topic: str, payload: bytes, now: float, exc: Exception) -> None:
        """A valid message whose processing failed: its writes were rolled back; keep it with
        its reason, count it, and carry on with a core rebuilt from the store."""
        self.metrics.rejected.labels(Reason.INTERNAL_ERROR.value).inc()
        log.error("failed to process message on %s (dead-lettered); payload %r", topic,
                  payload[:_TRUNCATE], exc_info=exc)  # fmt: skip
        event = self._event_of(topic, payload)
        self._rebuild_core(forget=event.event_id if event is not None else None)
        try:
            with self.store.isolated():
                self.store.dead_letter(topic, payload, reason=Reason.INTERNAL_ERROR.value,
                                       detail=f"{type(exc).__name__}: {exc}",
                                       received=now)  # fmt: skip
        except Exception:
            log.exception("could not dead-letter the message on %s either", topic)
            return
        if event is None:
            return
        try:  # stored, if only as a dead letter: the node may stop sending it
            with self.store.isolated():
                self.core.delivered(event.site, event.node, event.seq, now)
                self.core.flush()
        except Exception:
            log.exception("could not count the dead-lettered event as delivered")
            self._rebuild_core()

    def _event_of(self, topic: str, payload: bytes) -> ClassificationEvent | None:
        parsed = self.topics.parse(topic)
        if parsed is None or parsed.kind != "events":
            return None
        try:
            return decode(ClassificationEvent, payload, parsed)
        except Rejected:
            return None

    def _rebuild_core(self, *, forget: str | None = None, policy: Policy | None = None) -> None:
        """Rebuild the core from the store, which holds everything up to the failed message:
        the old core may hold half of that message's effects. With ``policy``: the policy
        changed (a sound learned or removed)."""
        previous = self.core
        self.core = Aggregator(policy or previous.policy, self.store, self.metrics)
        self.core.adopt(previous, forget=forget)

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
        elif parsed.kind == "sound_pack":
            policy = self.learned.take(parsed, payload)
            if policy is not None:
                log.info("learned sounds changed (sounds/%s on site %s): %d learned",
                         parsed.category, parsed.site, len(self.learned))  # fmt: skip
                self._rebuild_core(policy=policy)
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
            self._staged_alerts.append(alert)

    def _commit(self) -> bool:
        """Commit; hand what the commit queued to the outbox publisher. True if it queued any.

        Never raises. When the state cannot be saved, the alerts go out all the same (a smoke
        alarm must reach the person), and delivery acks wait until it can."""
        saved = self._save()
        for alert in self._staged_alerts:
            log.info("alert %s %s %s at %s (%s)", alert.alert_id, alert.category, alert.state,
                     alert.location, alert.site)  # fmt: skip
            if self._on_alert is not None:
                self._on_alert(alert)
        self._staged_alerts.clear()
        queued = bool(self._staged)
        if queued:
            self._pending += len(self._staged)
            self.metrics.outbox.set(self._pending)
            self._outbox.extend(self._staged)
            self._staged.clear()
        if saved:
            self._acks_waiting.update((n.site, n.node) for n in self.core.take_ack_due())
            self._queue_acks()
        if self._outbox:
            self._outbox_ready.set()
        return queued

    def _save(self) -> bool:
        """Commit the store; on failure raise the trouble alert and schedule a retry."""
        if self._storage_problem is not None and time.monotonic() < self._retry_at:
            return False  # writes go on piling up in the open transaction until the retry
        try:
            self.store.commit()
        except StorageError as exc:
            self._storage_failed(str(exc))
            return False
        if self._memory_only is not None:  # committed, but only to memory: not saved
            self._storage_failed(self._memory_only)
            return False
        if self._storage_problem is not None:
            log.warning("state saved again (%s is over)", self._storage_problem)
            self._storage_problem = None
            self._retry.reset()
            self.metrics.state_saved.set(1)
            with self.store.isolated():
                self._enqueue(self.core.storage_recovered(time.time()))
            return self._save()
        self.metrics.uncommitted.set(0)
        return True

    def _storage_failed(self, problem: str) -> None:
        if self._memory_only is None:
            self.metrics.commit_failures.inc()
        self.metrics.state_saved.set(0)
        self.metrics.uncommitted.set(self.store.uncommitted)
        if self._storage_problem is None:
            log.error("cannot save the aggregator's state (%s): alerting from memory, retrying",
                      problem)  # fmt: skip
        self._storage_problem = problem
        if self._memory_only is None:
            self._retry_at = time.monotonic() + self._retry.next_delay()
        try:
            with self.store.isolated():
                self._enqueue(self.core.storage_trouble(time.time(), problem))
        except Exception:
            log.exception("could not raise the storage trouble alert")

    def _ack(self, node: NodeRow) -> Publication:
        ack_message = DeliveryAck(site=node.site, node=node.node, seq=node.acked_seq,
                                  at=utc_now())  # fmt: skip
        return Publication(None, self.topics.ack(node.site, node.node), ack_message.to_json(),
                           retain=True)  # fmt: skip

    def _queue_acks(self) -> None:
        """Publish waiting delivery acks, at most one per node per ``ack_interval_s``."""
        if not self._acks_waiting:
            return
        clock = time.monotonic()
        interval = self.settings.ack_interval_s
        nodes = {(n.site, n.node): n for n in self.core.nodes()}
        for key in list(self._acks_waiting):
            if clock - self._acks_last.get(key, -interval) < interval:
                continue
            self._acks_waiting.discard(key)
            node = nodes.get(key)
            if node is not None:
                self._acks_last[key] = clock
                self._outbox.append(self._ack(node))

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


def open_store(
    settings: AggregatorSettings, metrics: AggregatorMetrics
) -> tuple[Store, str | None]:
    """SQLite in the state directory, or PostgreSQL when ``database_url`` is set; returns the
    store and, if the configured one could not be opened, why (the state is then in memory)."""
    if settings.database_url is None:
        return open_state(Store, settings.database, metrics)
    from services.aggregator.store_pg import PostgresStore, redact  # noqa: PLC0415 - optional

    try:
        return PostgresStore(settings.database_url, schema=settings.database_schema), None
    except PostgresStore.errors as exc:
        where = redact(settings.database_url)
        log.exception("cannot open %s; keeping state in memory until a restart", where)
        metrics.state_saved.set(0)
        return Store(":memory:"), f"cannot open {where}: {exc}"


def _first(errors: BaseExceptionGroup[aiomqtt.MqttError]) -> aiomqtt.MqttError:
    error = errors.exceptions[0]
    return _first(error) if isinstance(error, BaseExceptionGroup) else error
