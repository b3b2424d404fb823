"""`soundalert up` end to end: the README's first command, driven as a person would."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import subprocess
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


async def _start_up(state: Path, *flags: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundalert", "up", "--state", str(state), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(60):
        while not any("Alerts appear below" in line for line in lines):
            raw = await process.stdout.readline()
            assert raw, f"soundalert up exited early:\n{''.join(lines)}"
            lines.append(raw.decode())
    return process, lines


def _addresses(lines: list[str]) -> dict[str, str]:
    text = "".join(lines)
    found = {
        "broker": re.search(r"MQTT broker   : mqtt://127\.0\.0\.1:(\d+)", text),
        "display": re.search(r"alert display : http://127\.0\.0\.1:(\d+)/\?token=(\S+)", text),
        "metrics": re.search(r"metrics       : http://127\.0\.0\.1:(\d+)/", text),
    }
    assert all(found.values()), text
    return {
        "broker": found["broker"].group(1),  # type: ignore[union-attr]
        "display": found["display"].group(1),  # type: ignore[union-attr]
        "token": found["display"].group(2),  # type: ignore[union-attr]
        "metrics": found["metrics"].group(1),  # type: ignore[union-attr]
    }


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _linger(port: int, request: bytes) -> socket.socket:
    """A client connection that stays open across the server's restart."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request)
    sock.recv(1)
    return sock


async def test_up_keeps_its_ports_and_token_across_restarts(tmp_path: Path) -> None:
    """Issue 14, acceptance 2: ports and token are kept in the state directory; clients of the
    old run lingering on them (connections open, and closed ones in TIME_WAIT) do not move
    the new run elsewhere. A port really taken by another program is said plainly."""
    state = tmp_path / "state"
    ports = [free_port() for _ in range(4)]
    flags = ("--mqtt-port", "--ws-port", "--web-port", "--metrics-port")
    first = [arg for pair in zip(flags, map(str, ports), strict=True) for arg in pair]
    seen: list[dict[str, str]] = []
    lingering: list[socket.socket] = []
    try:
        for run in range(3):
            process, lines = await _start_up(state, *(first if run == 0 else ()))
            try:
                seen.append(_addresses(lines))
                assert "already in use" not in "".join(lines), lines
                got = seen[-1]
                # An MQTT client and a browser (HTTP keep-alive) stay connected; another
                # browser connection is closed by the client after the server's, leaving
                # TIME_WAIT sockets on the server's side.
                connect = bytes([0x10, 16, 0, 4, *b"MQTT", 4, 2, 0, 60, 0, 4, *b"ling"])
                lingering.append(_linger(int(got["broker"]), connect))
                page = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                lingering.append(_linger(int(got["display"]), page))
                closing = _linger(int(got["display"]), page)
            finally:
                await _stop(process)
            closing.close()
        assert seen[0]["broker"] == str(ports[0])
        assert seen[0]["display"] == str(ports[2])
        assert seen[0] == seen[1] == seen[2], seen
        # The display's port is really taken now: the new address is printed, the token kept.
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the TIME_WAITs
        holder.bind(("127.0.0.1", int(seen[0]["display"])))
        holder.listen()
        try:
            process, lines = await _start_up(state)
            await _stop(process)
        finally:
            holder.close()
        moved = _addresses(lines)
        text = "".join(lines)
        assert f"port {seen[0]['display']} on 127.0.0.1 is already in use" in text, text
        assert f"the alert display uses port {moved['display']} instead" in text, text
        assert moved["display"] != seen[0]["display"]
        assert {**moved, "display": seen[0]["display"]} == seen[0]
        assert (state / "up.json").stat().st_mode & 0o077 == 0, "the token file is private"
    finally:
        for sock in lingering:
            sock.close()


def test_up_with_a_config_typo_says_so_before_any_banner(tmp_path: Path) -> None:
    config = tmp_path / "soundalert.yaml"
    config.write_text("brokr: mqtt://127.0.0.1:1883\n")
    result = subprocess.run(
        [sys.executable, "-m", "soundalert", "up", "--config", str(config),
         "--state", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert "is running" not in result.stdout + result.stderr
    assert "brokr" in result.stderr, result.stderr
