"""Finding 3 of the issue "Never lose a fire alarm", end to end with the real aggregator.

A broker that crashes before it saved the aggregator's session forgets what it queued for it.
The agent had the broker's PUBACK for those events: with delete-at-PUBACK they were gone for
good (51 of 317 events in the failure-injection run). With end-to-end delivery the agent keeps
every event until the aggregator's ack covers it, so a broker that forgets loses nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest

from tests.agent.conftest import feed, pcm, running_aggregator, stdin_agent, wait_until
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration


def _stored_seqs(state_dir: Path) -> set[int]:
    with sqlite3.connect(state_dir / "aggregator.sqlite3") as db:
        return {seq for (seq,) in db.execute("SELECT seq FROM events WHERE node='kitchen'")}


def _next_seq(outbox: Path) -> int:
    with sqlite3.connect(outbox) as db:
        row = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
    return int(row[0]) if row else 0


async def test_a_broker_that_forgets_the_aggregators_queue_loses_no_event(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    state, outbox = tmp_path / "agg", tmp_path / "outbox.sqlite3"
    client_id = f"aggregator-{uuid.uuid4().hex[:8]}"
    env = {"SOUNDALERT_ACK_TIMEOUT_S": "2"}
    async with stdin_agent(mosquitto, topic_root, outbox, "--model", "yamnet", env=env) as agent:
        async with running_aggregator(mosquitto, topic_root, state, client_id=client_id) as agg:
            await feed(agent, pcm(3.0))
            await wait_until(lambda: len(agg.processed) >= 5, 30, "the first events")
        # The aggregator is away; its persistent session queues what the agent sends, and the
        # agent gets the broker's PUBACK for each.
        await feed(agent, pcm(6.0, seed=1))
        await asyncio.sleep(3.0)
        sent = _next_seq(outbox)
        assert sent >= 15
        mosquitto.forget_everything()  # a crash before the broker saved its sessions
        async with running_aggregator(mosquitto, topic_root, state, client_id=client_id):
            await wait_until(lambda: _stored_seqs(state) >= set(range(sent)), 60,
                             "every event the agent made to be stored")  # fmt: skip
        assert agent.returncode is None, "the agent kept listening"
    assert _stored_seqs(state) == set(range(sent)), "each exactly once, none lost"
