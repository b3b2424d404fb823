"""`soundalert up` end to end: the README's first command, driven as a person would."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.messages import Alert
from services.aggregator.policy import load_policy
from soundalert.mqtt import BrokerUrl, make_client
from tests.support.mosquitto import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="needs mosquitto_pub"),
]


def _t3_event(now: datetime) -> str:
    """The README's example: one T3 pattern detection, as an agent, phone or board reports it."""
    return json.dumps(
        {
            "schema": "soundalert.event/1",
            "event_id": f"kitchen-t3-{int(now.timestamp())}",
            "site": "home",
            "node": "kitchen",
            "seq": 0,
            "window_start": (now - timedelta(seconds=4)).isoformat(),
            "window_end": now.isoformat(),
            "source": {"kind": "pattern", "model": "soundalert-patterns", "version": "1"},
            "labels": [{"label": "t3", "score": 0.95}],
            "level_dbfs": None,
        }
    )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, list[str]]]:
    # Hold the requested MQTT port, as a system Mosquitto holds 1883 on a user's machine.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    wanted = taken.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundalert", "up", "--state", str(tmp_path / "state"),
        "--mqtt-port", str(wanted), "--ws-port", str(free_port()),
        "--metrics-port", str(free_port()), "--web-port", str(free_port()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not any("Alerts appear below" in line for line in lines):
                raw = await process.stdout.readline()
                assert raw, f"soundalert up exited early:\n{''.join(lines)}"
                lines.append(raw.decode())
        port_line = next(line for line in lines if "MQTT broker   :" in line)
        match = re.search(r"mqtt://127\.0\.0\.1:(\d+)", port_line)
        assert match is not None
        port = int(match.group(1))
        reader = asyncio.create_task(_collect(process, lines))
        yield process, port, lines
        reader.cancel()
    finally:
        taken.close()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _collect(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert process.stdout is not None
    while raw := await process.stdout.readline():
        lines.append(raw.decode())


async def test_up_says_the_port_is_taken_and_raises_a_published_smoke_alarm_within_1_s(
    stack: tuple[asyncio.subprocess.Process, int, list[str]],
) -> None:
    process, port, lines = stack
    text = "".join(lines)
    assert "already in use" in text, text
    assert f"uses port {port} instead" in text
    received: list[tuple[float, Alert]] = []
    got_alert = asyncio.Event()
    async with make_client(BrokerUrl.parse(f"mqtt://127.0.0.1:{port}"), "readme-sub") as client:
        await client.subscribe("soundalert/v1/home/alerts", qos=1)

        async def listen() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append((time.monotonic(), Alert.model_validate_json(message.payload)))
                got_alert.set()

        listener = asyncio.create_task(listen())
        # The shipped policy: one T3 detection is a smoke alarm.
        assert load_policy().categories["smoke_alarm"].confirm.windows == 1
        published = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
            "-t", "soundalert/v1/home/kitchen/events", "-m", _t3_event(datetime.now(UTC)),
        )  # fmt: skip
        assert await published.wait() == 0
        sent = time.monotonic()
        await asyncio.wait_for(got_alert.wait(), 5)
        listener.cancel()
    arrived, alert = received[0]
    assert (alert.category, alert.state, alert.location) == ("smoke_alarm", "raised", "kitchen")
    assert arrived - sent < 1.0, f"alert took {arrived - sent:.3f} s after the last event"
    deadline = time.monotonic() + 5
    while not any("RAISED" in line and "Smoke alarm" in line for line in lines):
        assert time.monotonic() < deadline, "the alert was not printed on the terminal"
        await asyncio.sleep(0.05)  # the terminal is read by another task
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 20) == 0
