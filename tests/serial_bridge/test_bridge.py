"""Acceptance 3 and 4 through real pseudo-terminals and a real Mosquitto (and aggregator)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from edge.dsp.protocol import crc16
from tests.agent.conftest import running_aggregator
from tests.serial_bridge.conftest import (
    Board,
    bridge_settings,
    counter,
    rejected,
    running_bridge,
    wait_until,
    watching,
)
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_reconnect")]


async def test_bad_input_is_counted_by_reason_and_the_next_frame_is_published(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    board = Board(tmp_path / "ttyACM0")
    board.plug()
    settings = bridge_settings(mosquitto, topic_root, tmp_path, board.path)
    async with watching(mosquitto, topic_root) as mqtt, running_bridge(settings) as bridge:
        await board.wait_for_reader()
        board.boot()
        board.heartbeat()
        await wait_until(lambda: mqtt.last_state() == "online", 5, "the node to be online")

        board.write(b"\x00\xff\xfe line noise \x07\x1b[0m\r\n")  # garbage
        board.write(b"$SA1,2,2000,HB,125,0\r\n")  # truncated: no *CRC trailer
        body = b"SA1,3,2500,HB,156,0"
        board.write(b"$" + body + b"*%04X\r\n" % (crc16(body) ^ 0x0101))  # bad CRC
        board.write(b"$SA1,4,3000,LEVEL," + b"-42.00," * 1460)  # 10 KB, no newline
        board.seq = 5
        det = board.detection()  # the next valid frame, straight after the long line

        await wait_until(lambda: len(mqtt.events()) == 1, 5, "the detection to be published")
        reasons = rejected(bridge)
        assert reasons == {"garbage": 1, "truncated": 1, "bad_crc": 1, "line_too_long": 1}
        event = mqtt.events()[0]
        assert event["source"]["kind"] == "pattern"
        assert event["labels"] == [{"label": "t3", "score": det.confidence}]
        assert event["node"] == "kitchen"
        assert event["features"] == {"tone_hz": 3125, "cycle": 1}
        assert bridge.board_up
        # Lines 2-4 consumed sequence numbers: the gap is seen (and counted), not fatal.
        assert counter(bridge, "lost") == 3
        board.heartbeat()
        await asyncio.sleep(0.2)
        assert mqtt.last_state() == "online"
        sys.stderr.write(f"rejections by reason: {reasons}\n")
    board.unplug()


async def test_unplug_is_offline_within_5_s_and_a_replug_resumes_without_a_restart(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    board = Board(tmp_path / "ttyACM0")
    board.plug()
    settings = bridge_settings(mosquitto, topic_root, tmp_path, board.path)
    async with (
        running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg,
        watching(mosquitto, topic_root) as mqtt,
        running_bridge(settings) as bridge,
    ):
        await board.wait_for_reader()
        board.boot()
        board.heartbeat()
        await wait_until(lambda: mqtt.last_state() == "online", 5, "the node to be online")

        unplugged = time.monotonic()
        board.unplug()
        await wait_until(lambda: mqtt.last_state() == "offline", 5, "offline after the unplug")
        to_offline = mqtt.states()[-1][0] - unplugged
        await wait_until(lambda: bool(agg.raised("node_offline")), 5, "node_offline raised")

        await asyncio.sleep(1.0)  # unplugged for a while: the bridge keeps trying to reopen
        replugged = time.monotonic()
        board.plug()
        await board.wait_for_reader()
        board.boot()  # a replugged board has rebooted: HELLO, seq 0
        board.detection()
        await wait_until(lambda: mqtt.last_state() == "online", 5, "online after the replug")
        to_online = mqtt.states()[-1][0] - replugged
        await wait_until(lambda: len(mqtt.events()) == 1, 5, "events to flow again")
        assert any(a.category == "node_offline" and a.state == "resolved" for a in agg.alerts)
        assert counter(bridge, "port_opens") == 2
        assert counter(bridge, "resets") == 1
        assert agg.raised("smoke_alarm"), "the detection after the replug reached the aggregator"
        sys.stderr.write(f"offline {to_offline:.3f} s after unplug; "
                         f"online {to_online:.3f} s after replug\n")  # fmt: skip
        assert to_offline < 5.0
    board.unplug()


async def test_a_board_that_goes_silent_is_offline_and_back_when_frames_resume(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    board = Board(tmp_path / "ttyACM0")
    board.plug()
    settings = bridge_settings(mosquitto, topic_root, tmp_path, board.path, silence_s=1.0)
    async with watching(mosquitto, topic_root) as mqtt, running_bridge(settings):
        await board.wait_for_reader()
        board.boot()
        await wait_until(lambda: mqtt.last_state() == "online", 5, "online")
        await wait_until(lambda: mqtt.last_state() == "offline", 3, "offline when silent")
        board.heartbeat()
        await wait_until(lambda: mqtt.last_state() == "online", 3, "online again")
    board.unplug()
