"""The embedded broker: retained messages only to matching subscriptions, loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from pathlib import Path

import aiomqtt

from soundalert.broker import start_embedded_broker
from soundalert.mqtt import BrokerUrl, make_client
from tests.support.mosquitto import free_port


async def test_retained_messages_reach_only_matching_subscriptions() -> None:
    broker = await start_embedded_broker(port=free_port())
    url = BrokerUrl.parse(broker.url)
    try:
        async with make_client(url, "holder") as holder:
            # Another client holds a subscription that matches a retained status...
            await holder.subscribe("soundalert/v1/+/+/status", qos=1)
            await holder.publish("soundalert/v1/home/kitchen/status", b"online", qos=1,
                                 retain=True)  # fmt: skip
            await holder.publish("soundalert/v1/home/alerts/smoke_alarm/state", b"{}", qos=1,
                                 retain=True)  # fmt: skip
            # ...a new client subscribed to something else must not receive it.
            async with make_client(url, "display") as display:
                await display.subscribe("soundalert/v1/+/alerts/+/state", qos=1)
                topics: list[str] = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        async for message in display.messages:
                            topics.append(str(message.topic))  # noqa: PERF401 - ends by timeout
        assert topics == ["soundalert/v1/home/alerts/smoke_alarm/state"]
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await broker.stop()


def _listening_on(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on ``port`` (IPv4 and IPv6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    raw = bytes.fromhex(address)
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                    found.add(str(ipaddress.ip_address(words)))
    return found


async def test_the_embedded_broker_listens_on_loopback_only() -> None:
    """It takes anonymous clients in plain MQTT: nothing beyond this machine may reach it."""
    broker = await start_embedded_broker(port=free_port(), ws_port=free_port())
    try:
        assert broker.ws_port is not None
        assert _listening_on(broker.port) == {"127.0.0.1"}
        assert _listening_on(broker.ws_port) == {"127.0.0.1"}
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await broker.stop()
