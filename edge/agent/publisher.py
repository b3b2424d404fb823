"""One node's MQTT link: outbox drain with end-to-end delivery, retained status, heartbeats.

Shared by the Pi agent and the RP2040 serial bridge. The producer queues events through
:meth:`NodePublisher.queue` (the :class:`~edge.outbox.Outbox`, which never refuses: on a full disk
it drops old unprotected events or holds new ones in memory); :meth:`NodePublisher.run` (the
documented aiomqtt reconnect loop, :func:`soundalert.mqtt.run_forever`) publishes them oldest
first, each once per connection.

Delivery (``delivery``):

* ``end-to-end`` (default): an event leaves the outbox only when the aggregator's retained
  :class:`~schemas.messages.DeliveryAck` on ``<root>/<site>/<node>/ack`` covers its seq. The
  publisher subscribes to that topic on every connect, so a broker that forgot everything (a
  crash before it saved, a lost session) loses nothing: after the reconnect every unacknowledged
  event is sent again, and the aggregator dedupes by event id. While events are outstanding and
  acks stop advancing, they are sent again after ``ack_timeout_s``, doubling up to
  ``ack_timeout_max_s`` while acks stay stuck (an aggregator outage is not a resend storm). An ack
  at or above the node's next seq belongs to an earlier life of the node (its queue was wiped) and
  is ignored.
* ``broker``: an event leaves on the broker's PUBACK, for aggregators that publish no acks.

Status is retained at the node's status topic: the current :attr:`NodePublisher.state` on connect
and on every change (:meth:`NodePublisher.set_state`), heartbeats with figures every
``heartbeat_s``, ``stopped`` on a clean exit, ``offline`` as the last will. Every status but the
will carries ``pending_from_seq`` and ``next_seq``, so the aggregator can step over the seqs the
node gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, get_args

import aiomqtt

from edge.agent.metrics import PublisherMetrics
from edge.outbox import DropReason, Outbox, OutboxMessage, Pending
from schemas.decode import Rejected, decode
from schemas.messages import ClassificationEvent, DeliveryAck, NodeState, NodeStatus
from schemas.topics import ParsedTopic, Topics
from soundalert.mqtt import Backoff, BrokerUrl, ConnectionProblem, make_client, run_forever

__all__ = [
    "DELIVERY_MODES",
    "PATTERN_PRIORITY",
    "Delivery",
    "FatalConnectError",
    "LinkTiming",
    "NodePublisher",
    "StatusFactory",
    "event_priority",
]

log = logging.getLogger(__name__)

Delivery = Literal["end-to-end", "broker"]
DELIVERY_MODES: Final[tuple[str, ...]] = get_args(Delivery)

_STATUS_TIMEOUT_S: Final = 2.0
PATTERN_PRIORITY: Final = 2
"""Outbox priority of pattern detections: protected when the disk is full."""
_PRIORITY_LABELLED: Final = 1
_PRIORITY_QUIET: Final = 0

Stats = dict[str, float | int | str]
StatusFactory = Callable[[NodeState, Stats | None], NodeStatus]
"""Builds the node's :class:`~schemas.messages.NodeStatus` in a state, with figures."""


class FatalConnectError(RuntimeError):
    """Before the first successful connection, the broker refused our credentials or TLS
    failed (untrusted certificate, not a TLS port): a configuration problem that retrying
    will not fix. A lost connection is never one."""


def event_priority(event: ClassificationEvent) -> int:
    """Outbox priority: pattern detections outlive labelled windows, which outlive quiet ones."""
    if event.source.kind == "pattern":
        return PATTERN_PRIORITY
    return _PRIORITY_LABELLED if event.labels else _PRIORITY_QUIET


@dataclass(frozen=True, slots=True)
class LinkTiming:
    heartbeat_s: float = 15.0
    publish_batch: int = 32
    publish_timeout_s: float = 10.0
    reconnect_max_s: float = 30.0
    ack_timeout_s: float = 30.0
    """End-to-end delivery: send outstanding events again when no ack advanced for this long."""
    ack_timeout_max_s: float = 600.0
    """... doubling while acks stay stuck, up to this."""


class NodePublisher:
    """Publishes one node's outbox and status until cancelled (or the producer is finished)."""

    def __init__(
        self,
        broker: BrokerUrl,
        client_id: str,
        outbox: Outbox,
        *,
        topics: Topics,
        site: str,
        node: str,
        status: StatusFactory,
        stats: Callable[[], Stats],
        metrics: PublisherMetrics,
        timing: LinkTiming,
        delivery: Delivery = "end-to-end",
        finished: Callable[[], bool] | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        if delivery not in DELIVERY_MODES:
            raise ValueError(f"delivery must be one of {', '.join(DELIVERY_MODES)}")
        self.broker = broker
        self.client_id = client_id
        self.status_topic = topics.status(site, node)
        self.ack_topic = topics.ack(site, node)
        self._ack_scope = ParsedTopic("ack", site, node)
        self.outbox = outbox
        self.metrics = metrics
        self.timing = timing
        self.delivery = delivery
        self.state: NodeState = "online"
        self.published = 0
        """Events delivered: deleted after the aggregator's ack (or the broker's PUBACK)."""
        self.connected = False
        self._status = status
        self._stats = stats
        self._finished = finished
        self._on_finished = on_finished
        self._subscriptions: list[tuple[str, Callable[[str, bytes], None]]] = []
        self.first_attempt = asyncio.Event()
        """Set once the first connection made its subscriptions, or failed."""
        self._wakeup = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._ever_connected = False
        self._cursor = 0  # id of the last row sent on this connection
        self._sent_high = 0  # highest row id ever sent by this process (what is resent)
        self._resend_wait = timing.ack_timeout_s
        self._last_progress = time.monotonic()
        self._said_waiting = False
        for reason in ("earlier_life", "malformed_json", "schema_violation", "topic_mismatch"):
            metrics.acks_ignored.labels(reason)
        self._update_gauges()

    def add_subscription(self, topic_filter: str, handler: Callable[[str, bytes], None]
                         ) -> None:  # fmt: skip
        """Subscribe to ``topic_filter`` on every connection and hand its messages (topic,
        payload; an empty payload is a cleared retained message) to ``handler``."""
        self._subscriptions.append((topic_filter, handler))

    # -- the producer's side -----------------------------------------------------------------
    def queue(self, messages: list[OutboxMessage], meta: dict[str, int] | None = None) -> None:
        """Queue events (never refused), count what the outbox had to drop, publish soon."""
        drops = self.outbox.put(messages, meta)
        self.metrics.queued.inc(len(messages))
        self._count_drops(drops)
        self._update_gauges()
        self.wakeup()

    def _count_drops(self, drops: dict[DropReason, int]) -> None:
        for reason, count in drops.items():
            if not count:
                continue
            self.metrics.dropped.labels(reason).inc(count)
            if reason == "outbox_full":
                log.warning("outbox full (%d events): dropped the %d oldest of lowest priority",
                            self.outbox.max_messages, count)  # fmt: skip

    def _update_gauges(self) -> None:
        self.metrics.outbox_depth.set(self.outbox.depth)
        self.metrics.outbox_memory.set(self.outbox.in_memory)
        self.metrics.outbox_writable.set(1 if self.outbox.writable else 0)

    def figures(self) -> Stats:
        """The outbox's heartbeat figures: depth, drops by reason, what waits in memory."""
        drops = self.outbox.drops
        stats: Stats = {
            "outbox_depth": self.outbox.depth,
            "outbox_dropped": sum(drops.values()),
            **{f"outbox_dropped_{reason}": count for reason, count in drops.items()},
            "outbox_in_memory": self.outbox.in_memory,
            "events_published": self.published,
        }
        problem = self.outbox.volatile or self.outbox.problem
        if problem is not None:
            stats["outbox_problem"] = problem[:200]
        return stats

    def wakeup(self) -> None:
        """New messages are in the outbox."""
        self._wakeup.set()

    def set_state(self, state: NodeState) -> None:
        """Change the retained status; published at once when connected, else on connect."""
        if state != self.state:
            self.state = state
            self._status_changed.set()

    def _status_json(self, state: NodeState, stats: Stats | None) -> bytes:
        status = self._status(state, stats).model_copy(update={
            "pending_from_seq": self.outbox.pending_from_seq, "next_seq": self.outbox.next_seq,
        })  # fmt: skip
        return status.to_json()

    # -- the link ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, reconnect with backoff, publish. Raises :class:`FatalConnectError` on a
        configuration problem (refused credentials, TLS) before the first successful
        connection."""
        will_json = self._status("offline", None).to_json()
        will = aiomqtt.Will(self.status_topic, will_json, qos=1, retain=True)

        def connect() -> aiomqtt.Client:
            return make_client(self.broker, self.client_id, will=will)

        def lost(problem: ConnectionProblem) -> None:
            self.first_attempt.set()
            self.connected = False
            self.metrics.mqtt_connected.set(0)
            if not self._ever_connected and problem.configuration:
                raise FatalConnectError(str(problem))

        backoff = Backoff(maximum=self.timing.reconnect_max_s)
        await run_forever(self.broker, connect, self._session, backoff=backoff, on_disconnect=lost)

    async def _session(self, client: aiomqtt.Client) -> None:
        self._ever_connected = True
        self.connected = True
        self.metrics.mqtt_connected.set(1)
        # heartbeat, subscribe, watch
        client.pending_calls_threshold = self.timing.publish_batch + 3
        self._cursor = 0  # a new connection: everything unacknowledged goes (again)
        self._last_progress = time.monotonic()
        timeout = self.timing.publish_timeout_s
        try:
            if self.delivery == "end-to-end":
                await client.subscribe(self.ack_topic, qos=1, timeout=timeout)
            for topic_filter, _ in self._subscriptions:
                await client.subscribe(topic_filter, qos=1, timeout=timeout)
            self.first_attempt.set()
            self._status_changed.clear()
            await client.publish(self.status_topic, self._status_json(self.state, None), qos=1,
                                 retain=True, timeout=timeout)  # fmt: skip
            await self._connected(client)
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(_STATUS_TIMEOUT_S):
                    await client.publish(self.status_topic,
                                         self._status_json("stopped", self._stats()),
                                         qos=1, retain=True)  # fmt: skip
            raise
        finally:
            self.connected = False
            self.metrics.mqtt_connected.set(0)

    async def _connected(self, client: aiomqtt.Client) -> None:
        """Drain, heartbeat and take acks until the connection drops (raises ``MqttError``)."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._receive(client))
                group.create_task(self._heartbeat(client))
                group.create_task(self._drain(client))
        except* aiomqtt.MqttError as group_error:
            raise group_error.exceptions[0] from None

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Takes acks; raises :class:`aiomqtt.MqttError` as soon as the connection drops."""
        async for message in client.messages:
            if not isinstance(message.payload, bytes):
                continue
            if message.topic.value == self.ack_topic:
                self.take_ack(message.payload)
                continue
            for topic_filter, handler in self._subscriptions:
                if message.topic.matches(topic_filter):
                    try:
                        handler(message.topic.value, message.payload)
                    except Exception:  # a handler's bug must not end the link
                        log.exception("handling a message on %s failed", message.topic.value)

    def take_ack(self, payload: bytes) -> None:
        """Apply one ack payload: delete what it covers, count what was wrong with it."""
        if not payload:
            return  # a cleared retained ack
        try:
            ack = decode(DeliveryAck, payload, self._ack_scope)
        except Rejected as rejected:
            self.metrics.acks_ignored.labels(rejected.reason.value).inc()
            log.warning("ignored an ack on %s (%s)", self.ack_topic, rejected)
            return
        if ack.seq >= self.outbox.next_seq:
            self.metrics.acks_ignored.labels("earlier_life").inc()
            log.warning("ignored the ack of seq %d on %s: this node's next seq is %d, so it is "
                        "from an earlier life of the node (its outbox was wiped)", ack.seq,
                        self.ack_topic, self.outbox.next_seq)  # fmt: skip
            return
        if ack.seq > self.outbox.acked_seq:
            self._last_progress = time.monotonic()
            self._resend_wait = self.timing.ack_timeout_s
        covered = self.outbox.acknowledge(ack.seq)
        self.metrics.acked_seq.set(ack.seq)
        self.published += covered
        self.metrics.published.inc(covered)
        self._count_drops(self.outbox.flush())  # their room may take what waits in memory
        self._update_gauges()
        self.wakeup()

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        """A heartbeat every ``heartbeat_s``, and at once whenever the state changes."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.heartbeat_s):
                    await self._status_changed.wait()
            self._status_changed.clear()
            self._count_drops(self.outbox.flush())  # retry the disk now and then
            self._update_gauges()
            state = self.state
            await client.publish(self.status_topic, self._status_json(state, self._stats()),
                                 qos=1, retain=True,
                                 timeout=self.timing.publish_timeout_s)  # fmt: skip

    def _resend_due_in(self) -> float | None:
        """Seconds until outstanding events are sent again; None when nothing waits for an
        ack on this connection."""
        if self.delivery != "end-to-end" or not self._cursor:
            return None
        first = self.outbox.pending(0, 1)
        if not first or first[0].id > self._cursor:
            return None
        return self._last_progress + self._resend_wait - time.monotonic()

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish what the outbox holds, oldest first, each once per connection; send it again
        when acks stop advancing."""
        while True:
            batch = self.outbox.pending(self._cursor, self.timing.publish_batch)
            if batch:
                if self._resend_due_in() is None:  # nothing outstanding: the wait starts now
                    self._last_progress = time.monotonic()
                await self._publish(client, batch)
                continue
            if self._finished is not None and self._finished() and self.outbox.depth == 0:
                log.info("source ended and every event was delivered: stopping")
                if self._on_finished is not None:
                    self._on_finished()
                return
            if self._finished is not None and self._finished() and not self._said_waiting:
                self._said_waiting = True
                log.info("source ended; waiting for the aggregator to acknowledge %d events",
                         self.outbox.depth)  # fmt: skip
            due = self._resend_due_in()
            if due is not None and due <= 0:
                self._resend()
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(due):
                    await self._wakeup.wait()

    def _resend(self) -> None:
        log.info("no ack for %.0f s with %d events outstanding: sending them again",
                 self._resend_wait, self.outbox.depth)  # fmt: skip
        self._cursor = 0
        self._last_progress = time.monotonic()
        self._resend_wait = min(2 * self._resend_wait, self.timing.ack_timeout_max_s)

    async def _publish(self, client: aiomqtt.Client, rows: list[Pending]) -> None:
        """Publish a batch and wait for its PUBACKs; raises the first failure (a reconnect)."""
        timeout = self.timing.publish_timeout_s
        results = await asyncio.gather(
            *(client.publish(p.topic, p.payload, qos=p.qos, retain=p.retain, timeout=timeout)
              for p in rows),
            return_exceptions=True,
        )  # fmt: skip
        sent = [p for p, result in zip(rows, results, strict=True) if result is None]
        self.metrics.sent.inc(len(sent))
        self.metrics.resent.inc(sum(1 for p in sent if p.id <= self._sent_high))
        self._sent_high = max([self._sent_high, *(p.id for p in sent)])
        # Broker delivery: the PUBACK is the end. End to end: only for what no ack can cover.
        done = [p.id for p in sent if self.delivery == "broker" or p.seq is None]
        if done:
            removed = self.outbox.remove(done)
            self.published += removed
            self.metrics.published.inc(removed)
        self._update_gauges()
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self._cursor = rows[-1].id
