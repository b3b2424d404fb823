"""The aggregator's side of end-to-end delivery, played by a test: it records every event a node
publishes (over a real broker, reconnecting when the broker restarts) and publishes retained
:class:`~schemas.messages.DeliveryAck` messages when told to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from schemas.common import utc_now
from schemas.messages import DeliveryAck
from schemas.topics import Topics
from soundalert.mqtt import Backoff, BrokerUrl, ConnectionProblem, make_client, run_forever

__all__ = ["AckingAggregator", "acking_aggregator"]


@dataclass
class AckingAggregator:
    broker: BrokerUrl
    topics: Topics
    site: str
    node: str
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every event received, in arrival order (repeats included)."""
    statuses: list[dict[str, Any]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def seqs(self, since: int = 0) -> list[int]:
        """The seqs of the events received from index ``since`` on."""
        return [int(e["seq"]) for e in self.events[since:]]

    async def run(self) -> None:
        async def session(client: aiomqtt.Client) -> None:
            await client.subscribe(self.topics.events(self.site, self.node), qos=1)
            await client.subscribe(self.topics.status(self.site, self.node), qos=1)
            self.connected.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                if not message.payload:
                    continue
                doc = json.loads(message.payload)
                kind = message.topic.value.rsplit("/", 1)[-1]
                (self.events if kind == "events" else self.statuses).append(doc)

        def lost(_problem: ConnectionProblem) -> None:
            self.connected.clear()

        client_id = f"test-aggregator-{uuid.uuid4().hex[:8]}"
        backoff = Backoff(initial=0.1, maximum=0.5)
        await run_forever(self.broker, lambda: make_client(self.broker, client_id), session,
                          backoff=backoff, on_disconnect=lost)  # fmt: skip

    async def ack(self, seq: int) -> None:
        """Publish the retained ack: every event of the node up to ``seq`` is stored."""
        ack = DeliveryAck(site=self.site, node=self.node, seq=seq, at=utc_now())
        client_id = f"test-acker-{uuid.uuid4().hex[:8]}"
        async with make_client(self.broker, client_id) as client:
            await client.publish(self.topics.ack(self.site, self.node), ack.to_json(), qos=1,
                                 retain=True)  # fmt: skip


@asynccontextmanager
async def acking_aggregator(
    broker_url: str, topics: Topics, site: str, node: str
) -> AsyncIterator[AckingAggregator]:
    aggregator = AckingAggregator(BrokerUrl.parse(broker_url), topics, site, node)
    task = asyncio.create_task(aggregator.run())
    try:
        async with asyncio.timeout(10):
            await aggregator.connected.wait()
        yield aggregator
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
