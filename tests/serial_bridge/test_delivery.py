"""End-to-end delivery through the serial bridge (issue 11): it shares the agent's outbox and
publisher, so a board's detections also wait for the aggregator's ack, survive a broker that
forgot everything, and the bridge's heartbeats carry pending_from_seq."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.topics import Topics
from tests.serial_bridge.conftest import Board, bridge_settings, running_bridge, wait_until
from tests.support.acks import acking_aggregator
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_reconnect")]


async def test_board_detections_wait_for_the_ack_and_survive_a_broker_that_forgot(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    board = Board(tmp_path / "ttyACM0")
    board.plug()
    settings = bridge_settings(mosquitto, topic_root, tmp_path, board.path, ack_timeout_s=60.0)
    topics = Topics(topic_root)
    async with (
        acking_aggregator(mosquitto.url("service"), topics, "home", "kitchen") as agg,
        running_bridge(settings) as bridge,
    ):
        await board.wait_for_reader()
        board.boot()
        for _ in range(4):
            board.detection()
        await wait_until(lambda: sorted(agg.seqs()) == [0, 1, 2, 3], 10, "four detections")
        outbox = bridge.outbox
        assert outbox is not None
        assert [p.seq for p in outbox.peek()] == [0, 1, 2, 3], "PUBACKs deleted nothing"
        await agg.ack(1)
        await wait_until(lambda: [p.seq for p in outbox.peek()] == [2, 3], 10, "the ack")

        mosquitto.forget_everything()
        before = len(agg.events)
        await wait_until(lambda: sorted(agg.seqs(before)) == [2, 3], 20,
                         "the unacknowledged detections sent again")  # fmt: skip
        await agg.ack(3)
        await wait_until(lambda: outbox.depth == 0, 10, "the second ack")
        await wait_until(lambda: any(s.get("pending_from_seq") == 4 for s in agg.statuses), 10,
                         "a heartbeat with the floor")  # fmt: skip
    board.unplug()
