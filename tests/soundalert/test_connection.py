"""Honest connection errors, against a real Mosquitto: refused credentials, a lost connection
(paho's own codes are not CONNACK codes), a connection closed before CONNACK, and a session
taken over by a second client with the same client id."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge.agent.demo import write_wav
from soundalert.connection import TakeoverWatch, describe_drop
from soundalert.mqtt import BrokerUrl, ConnectionProblem, make_client, run_forever
from tests.agent.conftest import AGENT
from tests.support.mosquitto import Mosquitto

SOUNDALERT = str(Path(sys.executable).with_name("soundalert"))


async def _connect_failure(url: str) -> ConnectionProblem:
    """The problem ``run_forever`` reports for the first failed attempt on ``url``."""
    broker = BrokerUrl.parse(url)
    problems: list[ConnectionProblem] = []

    def give_up(problem: ConnectionProblem) -> None:
        problems.append(problem)
        raise asyncio.CancelledError

    async def session(_client: aiomqtt.Client) -> None:
        raise AssertionError("connected")

    with contextlib.suppress(asyncio.CancelledError):
        await run_forever(broker, lambda: make_client(broker, "probe"), session,
                          on_disconnect=give_up)  # fmt: skip
    [problem] = problems
    return problem


# -- pure: the takeover signature ----------------------------------------------------------------
def test_a_flapping_network_is_not_a_takeover() -> None:
    """Drops with a failed attempt in between, or after long connections, are 'lost'."""
    watch = TakeoverWatch()
    now = 0.0
    for _ in range(10):
        watch.connected(now)
        now += 5.0
        assert not watch.dropped(now)
        watch.failed()  # the network is away: the first reconnect fails
        now += 1.0
    for _ in range(10):
        watch.connected(now)
        now += 3600.0  # an hour, then a broker restart that is back before the first retry
        assert not watch.dropped(now)


def test_timeouts_are_no_evidence_of_a_takeover() -> None:
    """A broker too slow to acknowledge: we drop the connection ourselves, again and again."""
    watch = TakeoverWatch()
    now = 0.0
    for _ in range(10):
        watch.connected(now)
        now += 10.0
        assert not watch.dropped(now, by_broker=False)
        now += 0.3


def test_instant_reconnects_that_are_dropped_again_are_a_takeover() -> None:
    watch = TakeoverWatch()
    seen = []
    now = 0.0
    for _ in range(4):
        watch.connected(now)
        now += 0.4
        seen.append(watch.dropped(now))
        now += 0.3
    assert seen == [False, False, True, True]


def test_mqtt5_session_taken_over_names_the_client_id() -> None:
    """MQTT 5 brokers say it: DISCONNECT reason 142 (as aiomqtt raises it when iterating)."""
    broker = BrokerUrl.parse("mqtt://127.0.0.1:1883?version=5")
    reason = ReasonCode(PacketTypes.DISCONNECT, "Session taken over")
    exc = aiomqtt.MqttError("Disconnected during message iteration")
    exc.__cause__ = aiomqtt.MqttCodeError(reason, "Unexpected disconnection")
    problem = describe_drop(exc, broker, "soundalert-aggregator", taken_over=False)
    assert problem.kind == "taken_over"
    assert "client id 'soundalert-aggregator'" in str(problem)
    assert "reason 142" in str(problem)


# -- real Mosquitto ------------------------------------------------------------------------------
@pytest.mark.integration
async def test_a_wrong_password_is_refused_credentials(mosquitto: Mosquitto) -> None:
    problem = await _connect_failure(f"mqtt://service:wrong@127.0.0.1:{mosquitto.port}")
    assert problem.kind == "refused_credentials"
    assert problem.configuration
    assert "refused the credentials (user 'service')" in str(problem)
    assert "wrong" not in str(problem)


@pytest.mark.integration
async def test_a_dropped_connection_is_lost_not_refused_credentials(mosquitto: Mosquitto) -> None:
    """paho's MQTT_ERR_NO_CONN (4) on a publish after the broker died is not CONNACK code 4."""
    broker = BrokerUrl.parse(mosquitto.url("service"))
    async with make_client(broker, "dropped") as client:
        await client.publish("t/x", b"1", qos=1)
        mosquitto.kill()

        async def until_disconnected() -> None:
            async for _ in client.messages:
                pass

        with pytest.raises(aiomqtt.MqttError) as iterating:
            await until_disconnected()
        with pytest.raises(aiomqtt.MqttCodeError) as publishing:
            await client.publish("t/x", b"2", qos=1)
    assert publishing.value.rc == 4  # paho's MQTT_ERR_NO_CONN, as it raises it
    for raised in (iterating, publishing):
        problem = describe_drop(raised.value, broker, "dropped", taken_over=False)
        assert problem.kind == "lost", problem
        assert not problem.configuration
        assert "the connection to the broker at 127.0.0.1" in str(problem)
        assert "was lost" in str(problem)
        assert "credentials" not in str(problem)


def _established(port: int) -> bool:
    """A TCP connection to 127.0.0.1:``port`` is established (the kernel completes the
    handshake for a listening socket whose process is stopped)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2].endswith(f":{port:04X}") and fields[3] == "01":
            return True
    return False


def _until(check: Callable[[], object], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {within_s} s")
        time.sleep(0.05)


@pytest.mark.integration
def test_a_connection_closed_before_connack_is_lost_and_not_fatal(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A broker that crashes while an agent connects for the first time: the agent says the
    broker closed the connection before accepting it, retries, and delivers everything once
    the broker is back (a dropped connection once read as 'refused the credentials', which
    is fatal before the first connection)."""
    assert mosquitto.process is not None
    wav = write_wav(tmp_path / "in.wav", 0.1 * np.sin(np.arange(16000 * 3) / 5.0))
    os.kill(mosquitto.process.pid, signal.SIGSTOP)  # accepts TCP (the kernel), answers nothing
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        agent = subprocess.Popen(
            [*AGENT, "--broker", mosquitto.url("service"), "--input", str(wav), "--speed", "0",
             "--outbox", str(tmp_path / "o.sqlite3"), "--node", "kitchen",
             "--log-level", "warning", "--delivery", "broker"],  # no aggregator here
            stderr=out,
        )  # fmt: skip
    try:
        _until(lambda: _established(mosquitto.port), 60, "the agent's CONNECT to the broker")
        mosquitto.kill()  # the kernel resets the connection: closed before CONNACK
        _until(lambda: "retrying" in log.read_text(), 20, "the agent's first failure")
        assert agent.poll() is None, log.read_text()
        mosquitto.start()
        assert agent.wait(timeout=60) == 0, log.read_text()
    finally:
        if agent.poll() is None:
            agent.kill()
    text = log.read_text()
    first = next(line for line in text.splitlines() if "retrying" in line)
    assert "closed the connection before accepting it" in first, text
    assert "credentials" not in text
    assert "error:" not in text


@pytest.mark.integration
def test_two_aggregators_with_one_client_id_say_so_and_back_off(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    """Two aggregators with the same client id take each other's session over (MQTT 3.1.1:
    the broker just closes the older connection). Each says which client id and what to do,
    and then waits instead of taking the session back twice a second."""
    client_id = f"agg-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "SOUNDALERT_CLIENT_ID": client_id, "SOUNDALERT_TOPIC_ROOT": topic_root}
    logs = [tmp_path / f"aggregator-{i}.log" for i in (1, 2)]
    processes = []
    try:
        for i, log in enumerate(logs):
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [SOUNDALERT, "aggregator", "--broker", mosquitto.url("service"), "--state",
                     str(tmp_path / f"state-{i}"), "--log-level", "info"],
                    env=env, stderr=out,
                ))  # fmt: skip
        marker = f"another client is connected with the same client id {client_id!r}"
        _until(lambda: any(marker in log.read_text() for log in logs), 90, "the takeover message")
        # From now on the two take turns at most every 15-30 s, not every 0.5 s.
        before = sum(log.read_text().count("connected to MQTT broker") for log in logs)
        time.sleep(8)
        after = sum(log.read_text().count("connected to MQTT broker") for log in logs)
        assert all(p.poll() is None for p in processes), "an aggregator exited"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)
    text = "\n".join(log.read_text() for log in logs)
    line = next(line for line in text.splitlines() if marker in line)
    assert "ERROR" in line
    assert "Stop the other instance, or give each its own client id" in line
    assert after - before <= 4, text[-3000:]
