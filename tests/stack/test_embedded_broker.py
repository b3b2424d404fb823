"""The embedded broker delivers retained messages only to matching subscriptions."""

from __future__ import annotations

import asyncio
import contextlib

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
