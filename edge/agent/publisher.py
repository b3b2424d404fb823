"""One node's MQTT link: durable outbox drain, retained status with a last will, heartbeats.

Shared by the Pi agent and the RP2040 serial bridge. The producer commits events to the
:class:`~edge.outbox.Outbox` and calls :meth:`NodePublisher.wakeup`; :meth:`NodePublisher.run`
(the documented aiomqtt reconnect loop, :func:`soundalert.mqtt.run_forever`) drains the outbox
oldest first and deletes each message only after its PUBACK. Status is retained at the node's
status topic: the current :attr:`NodePublisher.state` on connect and on every change
(:meth:`NodePublisher.set_state`, e.g. a bridge whose board was unplugged says ``offline``
while the process is alive), heartbeats with figures every ``heartbeat_s``, ``stopped`` on a
clean exit, ``offline`` as the last will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import aiomqtt

from edge.agent.metrics import PublisherMetrics
from edge.outbox import Outbox
from schemas.messages import ClassificationEvent, NodeState
from soundalert.mqtt import Backoff, BrokerUrl, ConnectionProblem, make_client, run_forever

__all__ = ["FatalConnectError", "LinkTiming", "NodePublisher", "StatusFactory", "event_priority"]

log = logging.getLogger(__name__)

_STATUS_TIMEOUT_S: Final = 2.0
_PRIORITY_PATTERN: Final = 2
_PRIORITY_LABELLED: Final = 1
_PRIORITY_QUIET: Final = 0

Stats = dict[str, float | int | str]
StatusFactory = Callable[[NodeState, Stats | None], bytes]
"""Builds the JSON of a :class:`~schemas.messages.NodeStatus` in a state, with figures."""


class FatalConnectError(RuntimeError):
    """Before the first successful connection, the broker refused our credentials or TLS
    failed (untrusted certificate, not a TLS port): a configuration problem that retrying
    will not fix. A lost connection is never one."""


def event_priority(event: ClassificationEvent) -> int:
    """Outbox priority: pattern detections outlive labelled windows, which outlive quiet ones."""
    if event.source.kind == "pattern":
        return _PRIORITY_PATTERN
    return _PRIORITY_LABELLED if event.labels else _PRIORITY_QUIET


@dataclass(frozen=True, slots=True)
class LinkTiming:
    heartbeat_s: float = 15.0
    publish_batch: int = 32
    publish_timeout_s: float = 10.0
    reconnect_max_s: float = 30.0


class NodePublisher:
    """Publishes one node's outbox and status until cancelled (or the producer is finished)."""

    def __init__(
        self,
        broker: BrokerUrl,
        client_id: str,
        status_topic: str,
        outbox: Outbox,
        *,
        status: StatusFactory,
        stats: Callable[[], Stats],
        metrics: PublisherMetrics,
        timing: LinkTiming,
        finished: Callable[[], bool] | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.status_topic = status_topic
        self.outbox = outbox
        self.metrics = metrics
        self.timing = timing
        self.state: NodeState = "online"
        self.published = 0
        self.connected = False
        self._status = status
        self._stats = stats
        self._finished = finished
        self._on_finished = on_finished
        self._wakeup = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._ever_connected = False

    def wakeup(self) -> None:
        """New messages are in the outbox."""
        self._wakeup.set()

    def set_state(self, state: NodeState) -> None:
        """Change the retained status; published at once when connected, else on connect."""
        if state != self.state:
            self.state = state
            self._status_changed.set()

    async def run(self) -> None:
        """Connect, reconnect with backoff, publish. Raises :class:`FatalConnectError` on a
        configuration problem (refused credentials, TLS) before the first successful
        connection."""
        will = aiomqtt.Will(self.status_topic, self._status("offline", None), qos=1, retain=True)

        def connect() -> aiomqtt.Client:
            return make_client(self.broker, self.client_id, will=will)

        def lost(problem: ConnectionProblem) -> None:
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
        client.pending_calls_threshold = self.timing.publish_batch + 2  # heartbeat, watch
        try:
            self._status_changed.clear()
            await client.publish(self.status_topic, self._status(self.state, None), qos=1,
                                 retain=True, timeout=self.timing.publish_timeout_s)  # fmt: skip
            await self._connected(client)
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(_STATUS_TIMEOUT_S):
                    await client.publish(self.status_topic, self._status("stopped", self._stats()),
                                         qos=1, retain=True)  # fmt: skip
            raise
        finally:
            self.connected = False
            self.metrics.mqtt_connected.set(0)

    async def _connected(self, client: aiomqtt.Client) -> None:
        """Drain and heartbeat until the connection drops (raises ``MqttError``)."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch(client))
                group.create_task(self._heartbeat(client))
                group.create_task(self._drain(client))
        except* aiomqtt.MqttError as group_error:
            raise group_error.exceptions[0] from None

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Raises :class:`aiomqtt.MqttError` as soon as the connection drops."""
        async for _ in client.messages:
            pass

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        """A heartbeat every ``heartbeat_s``, and at once whenever the state changes."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.heartbeat_s):
                    await self._status_changed.wait()
            self._status_changed.clear()
            state = self.state
            await client.publish(self.status_topic, self._status(state, self._stats()), qos=1,
                                 retain=True, timeout=self.timing.publish_timeout_s)  # fmt: skip

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish the outbox oldest first; delete each message once the broker acknowledged it."""
        while True:
            batch = self.outbox.peek(self.timing.publish_batch)
            if not batch:
                if self._finished is not None and self._finished():
                    log.info("source ended and the outbox is empty: stopping")
                    if self._on_finished is not None:
                        self._on_finished()
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            timeout = self.timing.publish_timeout_s
            results = await asyncio.gather(
                *(client.publish(p.topic, p.payload, qos=p.qos, retain=p.retain, timeout=timeout)
                  for p in batch),
                return_exceptions=True,
            )  # fmt: skip
            acked = [p.id for p, result in zip(batch, results, strict=True) if result is None]
            self.outbox.remove(acked)
            self.published += len(acked)
            self.metrics.published.inc(len(acked))
            self.metrics.outbox_depth.set(self.outbox.depth)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
