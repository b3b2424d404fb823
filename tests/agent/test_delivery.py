"""Finding 3 of issue 11: a broker that forgets everything must not lose events.

The agent runs as a subprocess on ``--stdin`` (the test decides when it hears what) with a node
login, against a real Mosquitto. The test plays the aggregator: it records every event on the
node's topic and publishes real retained DeliveryAcks. Then the broker is SIGKILLed and started
again with an empty persistence directory (it forgets its sessions, queued messages and retained
acks), while the agent holds events the old broker had acknowledged with PUBACKs. Today's agent
deleted those on PUBACK: they were gone.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from schemas.topics import Topics
from tests.agent.conftest import feed, pcm, stdin_agent, wait_until
from tests.support.acks import AckingAggregator, acking_aggregator
from tests.support.mosquitto import Mosquitto
from tests.support.nats import Broker

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_reconnect")]

ACK_TIMEOUT_S = 3.0
ENV = {"SOUNDALERT_ACK_TIMEOUT_S": str(ACK_TIMEOUT_S)}


def outbox_seqs(path: Path) -> list[int]:
    """The seqs the outbox file holds (read from the payloads, as any version stores them)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT payload FROM outbox ORDER BY id").fetchall()
    return [int(json.loads(payload)["seq"]) for (payload,) in rows]


def latest_status(agg: AckingAggregator) -> Callable[[], dict[str, object]]:
    return lambda: agg.statuses[-1] if agg.statuses else {}


@asynccontextmanager
async def node_and_aggregator(
    mosquitto: Mosquitto, topic_root: str, outbox: Path, *extra: str
) -> AsyncIterator[tuple[AckingAggregator, asyncio.subprocess.Process]]:
    """The test's aggregator, then the agent on stdin."""
    topics = Topics(topic_root)
    async with (
        acking_aggregator(mosquitto.url("service"), topics, "home", "kitchen") as agg,
        # One model, so that seqs count windows (delivery is what these tests are about).
        stdin_agent(mosquitto, topic_root, outbox, "--model", "yamnet", *extra, env=ENV) as agent,
    ):
        yield agg, agent


async def test_a_broker_that_forgets_everything_loses_nothing_and_only_acks_delete(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    async with node_and_aggregator(mosquitto, topic_root, outbox) as (agg, agent):
        await feed(agent, pcm(6.0))  # 11 windows: seq 0..10
        await wait_until(lambda: len(agg.events) >= 11, 30, "the first events")
        assert agg.seqs() == list(range(11)), "each sent once"
        await agg.ack(3)
        await wait_until(lambda: outbox_seqs(outbox) == list(range(4, 11)), 10,
                         "the ack to delete seq 0..3")  # fmt: skip
        await asyncio.sleep(1.0)
        assert outbox_seqs(outbox) == list(range(4, 11)), "PUBACKs deleted nothing"
        assert agg.seqs() == list(range(11)), "nothing sent twice while acks advance"

        mosquitto.forget_everything()  # sessions, queued messages and the retained ack: gone
        before = len(agg.events)
        await wait_until(lambda: set(agg.seqs(before)) >= set(range(4, 11)), 30,
                         "the unacknowledged events sent again after the reconnect")  # fmt: skip
        assert not set(agg.seqs(before)) & set(range(4)), "what was acked is not sent again"
        assert outbox_seqs(outbox) == list(range(4, 11)), "kept until an ack covers them"

        # Acks stay stuck: after the ack timeout they are sent again (and again, backing off).
        again = len(agg.events)
        await wait_until(lambda: set(agg.seqs(again)) >= set(range(4, 11)),
                         ACK_TIMEOUT_S * 4, "a resend when acks stop advancing")  # fmt: skip
        status = latest_status(agg)
        await wait_until(lambda: status().get("pending_from_seq") == 4, 10, "a heartbeat")
        assert status()["next_seq"] == 11

        await feed(agent, pcm(1.0, seed=1))  # two more windows: seq 11, 12
        await wait_until(lambda: {11, 12} <= set(agg.seqs()), 10, "new events")
        await agg.ack(12)
        await wait_until(lambda: outbox_seqs(outbox) == [], 10, "the ack to delete the rest")
        await wait_until(lambda: status().get("pending_from_seq") == 13, 10, "pending_from_seq")
        stats = status()["stats"]
        assert isinstance(stats, dict)
        assert stats["outbox_depth"] == 0
        assert stats["events_published"] == 13, "delivered = acknowledged, each counted once"
        # What the aggregator stored: every seq, nothing lost.
        assert set(agg.seqs()) == set(range(13))


async def test_an_ack_from_an_earlier_life_of_the_node_is_ignored(
    broker: Broker, topic_root: str, tmp_path: Path
) -> None:
    """The node's outbox was wiped (a new SD card): it counts from 0 again, and the retained
    ack of its earlier life (seq 500) must not delete its new, undelivered events."""
    outbox = tmp_path / "outbox.sqlite3"
    topics = Topics(topic_root)
    async with acking_aggregator(broker.url("service"), topics, "home", "kitchen") as agg:
        await agg.ack(500)
        async with stdin_agent(broker, topic_root, outbox, env=ENV) as agent:
            await feed(agent, pcm(3.0))
            await wait_until(lambda: len(agg.events) >= 5, 30, "events")
            await asyncio.sleep(1.0)
            held = outbox_seqs(outbox)
            assert held[:5] == list(range(5)), "the earlier life's ack deleted nothing"
            await agg.ack(2)
            await wait_until(lambda: outbox_seqs(outbox)[:1] == [3], 10, "a real ack")


async def test_broker_delivery_deletes_on_puback_for_aggregators_without_acks(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    async with node_and_aggregator(mosquitto, topic_root, outbox, "--delivery", "broker") as (
        agg,
        agent,
    ):
        await feed(agent, pcm(3.0))
        await wait_until(lambda: len(agg.events) >= 5, 30, "events")
        await wait_until(lambda: outbox_seqs(outbox) == [], 10, "PUBACKs to delete them")
        status = latest_status(agg)
        await wait_until(lambda: status().get("pending_from_seq") == 5, 10, "a heartbeat")
