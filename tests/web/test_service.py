"""The web service against a real Mosquitto and its real HTTP server (uvicorn + httpx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest

from schemas.messages import Feedback
from schemas.topics import Topics
from services.web.service import WebService
from services.web.settings import WebSettings
from tests.support.mosquitto import Mosquitto
from tests.support.nats import Broker
from tests.web.conftest import (
    SITE,
    TOKEN,
    alert,
    category_state,
    eventually,
    mqtt_client,
    running,
    wait_connected,
)

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def rejected(web: WebService, reason: str) -> float:
    value = web.metrics.registry.get_sample_value(
        "soundalert_messages_rejected_total", {"reason": reason}
    )
    return value or 0.0


async def sse_events(response: httpx.Response) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
    kind = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


async def test_bad_mqtt_input_is_counted_and_good_input_still_flows(
    mosquitto: Mosquitto, topic_root: str, web_settings: WebSettings
) -> None:
    topics = Topics(topic_root)
    web = WebService(web_settings, handle_signals=False)
    async with running(web), mqtt_client(mosquitto, "pub") as mqtt:
        await wait_connected(web)
        await mqtt.publish(topics.alerts(SITE), b"{definitely not json", qos=1)
        await mqtt.publish(topics.alerts(SITE), b'{"schema": "soundalert.alert/1"}', qos=1)
        await mqtt.publish(topics.status(SITE, "hall"), b"\xff\xfe", qos=1)
        await mqtt.publish(topics.alerts(SITE), alert("good-1").to_json(), qos=1)
        await eventually(lambda: web.store.alert("good-1") is not None)
        assert rejected(web, "malformed_json") == 2
        assert rejected(web, "schema_violation") == 1
        base = f"http://127.0.0.1:{web.port}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH) as http:
            alerts = (await http.get("/api/alerts", params={"site": SITE})).json()["alerts"]
            assert [r["alert"]["alert_id"] for r in alerts] == ["good-1"]
            health = (await http.get("/healthz")).json()
            assert health == {"ok": True, "mqtt_connected": True}


async def test_live_stream_and_feedback_round_trip(
    broker: Broker, topic_root: str, web_settings: WebSettings
) -> None:
    topics = Topics(topic_root)
    web = WebService(web_settings, handle_signals=False)
    async with (
        running(web),
        mqtt_client(broker, "pub") as mqtt,
        mqtt_client(broker, "listener") as listener,
    ):
        await listener.subscribe(topics.feedback(SITE), qos=1)
        await wait_connected(web)
        # An alert raised before any page is open is in the snapshot (SQLite history).
        await mqtt.publish(topics.alerts(SITE), alert("early-1").to_json(), qos=1)
        await eventually(lambda: web.store.alert("early-1") is not None)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web.port}") as http:
            ticket = (await http.post("/api/stream/ticket", headers=AUTH)).json()["ticket"]
            async with http.stream("GET", "/api/stream", params={"ticket": ticket}) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                events = sse_events(stream)
                kind, snapshot = await anext(events)
                assert kind == "snapshot"
                assert [r["alert"]["alert_id"] for r in snapshot["alerts"]] == ["early-1"]

                door = alert("door-7", category="doorbell", location="hall", priority="high")
                await mqtt.publish(topics.alerts(SITE), door.to_json(), qos=1)
                async with asyncio.timeout(2):
                    kind, record = await anext(events)
                assert kind == "alert"
                assert record["alert"]["alert_id"] == "door-7"
                assert record["active"] is True

                # The aggregator's category state ends it.
                state = category_state(SITE, "doorbell", [], door.model_copy(
                    update={"state": "resolved"}))  # fmt: skip
                await mqtt.publish(topics.alert_state(SITE, "doorbell"), state.to_json(), qos=1,
                                   retain=True)  # fmt: skip
                async with asyncio.timeout(2):
                    kind, record = await anext(events)
                assert record["active"] is False
                assert record["alert"]["state"] == "resolved"

                body = {"verdict": "false_alarm", "by": "Sam"}
                response = await http.post("/api/alerts/door-7/feedback", headers=AUTH, json=body)
                assert response.status_code == 202
                async with asyncio.timeout(2):
                    message = await anext(aiter(listener.messages))
                assert isinstance(message.payload, bytes)
                sent = Feedback.model_validate_json(message.payload)
                assert (sent.alert_id, sent.verdict, sent.by, sent.site) == (
                    "door-7", "false_alarm", "Sam", SITE)  # fmt: skip
                async with asyncio.timeout(2):
                    kind, record = await anext(events)
                assert record["handled"] is True
                await events.aclose()


async def test_feedback_with_the_broker_gone_is_refused_clearly(
    mosquitto: Mosquitto, topic_root: str, web_settings: WebSettings
) -> None:
    topics = Topics(topic_root)
    web = WebService(web_settings, handle_signals=False)
    async with running(web), mqtt_client(mosquitto, "pub") as mqtt:
        await wait_connected(web)
        await mqtt.publish(topics.alerts(SITE), alert("a-1").to_json(), qos=1)
        await eventually(lambda: web.store.alert("a-1") is not None)
        mosquitto.kill()
        await eventually(lambda: not web.context.connected())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web.port}") as http:
            response = await http.post("/api/alerts/a-1/feedback", headers=AUTH,
                                       json={"verdict": "acknowledged"})  # fmt: skip
            assert response.status_code == 503
            assert "not connected" in response.json()["message"]
            # The history still answers while the broker is away.
            alerts = (await http.get("/api/alerts", headers=AUTH)).json()["alerts"]
            assert [r["alert"]["alert_id"] for r in alerts] == ["a-1"]
        mosquitto.start()  # let the service's final status publish find a broker


async def test_alerts_raised_while_the_display_was_down_arrive_when_it_returns(
    broker: Broker, topic_root: str, web_settings: WebSettings
) -> None:
    topics = Topics(topic_root)
    first = WebService(web_settings, handle_signals=False)
    async with running(first):
        await wait_connected(first)  # registers the persistent session
    async with mqtt_client(broker, "pub") as mqtt:
        await mqtt.publish(topics.alerts(SITE), alert("while-down").to_json(), qos=1)
    second = WebService(web_settings, handle_signals=False)
    async with running(second):
        await eventually(lambda: second.store.alert("while-down") is not None)
