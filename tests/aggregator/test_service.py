"""The aggregator service against a real Mosquitto: delivery, bad input, supervision,
broker outages."""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from schemas.messages import NodeStatus
from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from soundalert.mqtt import BrokerUrl, make_client
from tests.aggregator.conftest import listening, running
from tests.aggregator.factories import event, status
from tests.support.mosquitto import Mosquitto
from tests.support.nats import Broker

pytestmark = pytest.mark.integration


async def _publish(url: str, items: list[tuple[str, bytes]], *, retain: bool = False) -> None:
    async with make_client(BrokerUrl.parse(url), f"pub-{time.monotonic_ns()}") as client:
        for topic, payload in items:
            await client.publish(topic, payload, qos=1, retain=retain)


def _events(topics: Topics, indices: list[int], **kw: object) -> list[tuple[str, bytes]]:
    out = []
    for i in indices:
        ev = event(i, **kw)  # type: ignore[arg-type]
        out.append((topics.events(ev.site, ev.node), ev.to_json()))
    return out


async def test_events_raise_one_alert_and_duplicates_do_not(
    broker: Broker, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    service = AggregatorService(agg_settings)
    async with running(service), listening(broker.url("service"), topics) as listener:
        batch = _events(topics, [0, 1, 2, 3])
        await _publish(broker.url("kitchen"), batch + batch)
        alert = await listener.wait_for(lambda a: a.category == "smoke_alarm")
        await asyncio.sleep(0.5)
    raised = [a for a in listener.alerts if a.category == "smoke_alarm"]
    assert [a.state for a in raised] == ["raised"]
    assert alert.location == "kitchen"
    assert service.metrics.registry.get_sample_value("soundalert_events_duplicate_total") == 4


async def test_reverse_order_gives_the_same_alert(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings, tmp_path: Path
) -> None:
    topics = Topics(agg_settings.topic_root)
    finals = []
    for name, order in (("forward", [0, 1, 2, 3, 4]), ("reverse", [4, 3, 2, 1, 0])):
        settings = agg_settings.model_copy(
            update={"state_dir": tmp_path / name, "client_id": f"{agg_settings.client_id}-{name}"}
        )
        # Each run on its own site, so retained state and alerts never mix.
        site = f"site{name}"
        async with (
            running(AggregatorService(settings)),
            listening(mosquitto.url("service"), topics) as listener,
        ):
            await _publish(mosquitto.url("kitchen"), _events(topics, order, site=site))
            await listener.wait_for(lambda a: a.category == "smoke_alarm")
            await asyncio.sleep(0.5)
        alerts = [a for a in listener.alerts if a.site == site]
        assert len({a.alert_id for a in alerts}) == 1
        finals.append(alerts[-1].model_dump(
            exclude={"alert_id", "published_at", "state", "site", "evidence", "delay_s"}
        ))  # fmt: skip
        finals[-1]["evidence"] = [e.replace(site, "") for e in alerts[-1].evidence]
    assert finals[0] == finals[1]


BAD_INPUTS: list[tuple[str, str, bytes]] = [
    ("malformed_json", "kitchen", b"{not json"),
    ("schema_violation", "kitchen", b'{"schema": "soundalert.event/1", "seq": 1}'),
    ("unknown_schema_version", "kitchen",
     event(50).to_json().replace(b"soundalert.event/1", b"soundalert.event/9")),
    ("payload_too_large", "kitchen", b"{" + b" " * 70_000 + b"}"),
    ("score_out_of_range", "kitchen", event(51).to_json().replace(b'"score":0.7', b'"score":NaN')),
    ("score_out_of_range", "kitchen", event(52).to_json().replace(b'"score":0.7', b'"score":7')),
    ("invalid_id", "kitchen", event(53).to_json().replace(b'"site":"home"', b'"site":"h/x"')),
    ("topic_mismatch", "hall", event(54).to_json()),
]  # fmt: skip


async def test_bad_inputs_are_rejected_by_reason_and_the_next_event_still_alerts(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    service = AggregatorService(agg_settings)
    async with running(service), listening(mosquitto.url("service"), topics) as listener:
        bad = [(topics.events("home", node), payload) for _, node, payload in BAD_INPUTS]
        await _publish(mosquitto.url("service"), bad + _events(topics, [0, 1, 2]))
        await listener.wait_for(lambda a: a.category == "smoke_alarm")
        url = f"http://127.0.0.1:{agg_settings.metrics_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
    expected: dict[str, int] = {}
    for reason, _, _ in BAD_INPUTS:
        expected[reason] = expected.get(reason, 0) + 1
    for reason, count in expected.items():
        line = f'soundalert_messages_rejected_total{{reason="{reason}"}} {float(count)}'
        assert line in text, f"missing {line!r} in /metrics"


async def test_metrics_rendered_in_a_forked_child_show_what_the_service_counted(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    settings = agg_settings.model_copy(update={"metrics_every_s": 0.1})
    topics = Topics(settings.topic_root)
    reason, node, payload = BAD_INPUTS[0]
    line = f'soundalert_messages_rejected_total{{reason="{reason}"}} 1.0'
    url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    text = ""
    async with running(AggregatorService(settings)):
        await _publish(mosquitto.url("service"), [(topics.events("home", node), payload)])
        async with asyncio.timeout(10):
            while line not in text:
                await asyncio.sleep(0.05)
                text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
    assert line in text


async def test_feedback_from_mqtt_acknowledges_and_is_counted(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    service = AggregatorService(agg_settings)
    async with running(service), listening(mosquitto.url("service"), topics) as listener:
        await _publish(mosquitto.url("kitchen"), _events(topics, [0, 1, 2]))
        alert = await listener.wait_for(lambda a: a.state == "raised")
        feedback = (
            b'{"schema": "soundalert.feedback/1", "alert_id": "' + alert.alert_id.encode()
            + b'", "verdict": "acknowledged", "by": "anna", "at": "2026-11-21T10:00:05Z"}'
        )  # fmt: skip
        await _publish(mosquitto.url("service"), [(topics.feedback("home"), feedback)])
        acked = await listener.wait_for(lambda a: a.state == "acknowledged")
    assert (acked.alert_id, acked.by) == (alert.alert_id, "anna")
    value = service.metrics.registry.get_sample_value(
        "soundalert_alert_feedback_total", {"category": "smoke_alarm", "verdict": "acknowledged"}
    )
    assert value == 1


async def test_stopped_heartbeats_raise_node_offline(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    async with (
        running(AggregatorService(agg_settings)),
        listening(mosquitto.url("service"), topics) as listener,
    ):
        beat = status(at=time.time(), heartbeat_s=1.0, node="hall")
        await _publish(mosquitto.url("hall"), [(topics.status("home", "hall"), beat.to_json())])
        started = time.monotonic()
        offline = await listener.wait_for(lambda a: a.category == "node_offline", within_s=10)
        took = time.monotonic() - started
        assert offline.location == "hall"
        assert 2.5 <= took <= 5.0  # three missed 1 s heartbeats, plus a tick
        beat = status(at=time.time(), heartbeat_s=1.0, node="hall")
        await _publish(mosquitto.url("hall"), [(topics.status("home", "hall"), beat.to_json())])
        await listener.wait_for(lambda a: a.category == "node_online", within_s=5)


LAST_WILL_NODE = """
import asyncio, sys, time
import aiomqtt
from schemas.messages import NodeStatus
from schemas.topics import Topics
from soundalert.mqtt import BrokerUrl, make_client
url, root = sys.argv[1], sys.argv[2]
topic = Topics(root).status("home", "bedroom")
def status(state):
    return NodeStatus(site="home", node="bedroom", state=state, at=time.time(),
                      heartbeat_s=15).to_json()
async def main():
    will = aiomqtt.Will(topic, status("offline"), qos=1, retain=True)
    async with make_client(BrokerUrl.parse(url), "bedroom-node", will=will, keepalive=5) as c:
        await c.publish(topic, status("online"), qos=1, retain=True)
        print("online", flush=True)
        await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_last_will_raises_node_offline(
    broker: Broker, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    async with (
        running(AggregatorService(agg_settings)),
        listening(broker.url("service"), topics) as listener,
    ):
        node = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LAST_WILL_NODE, broker.url("bedroom"), topics.root,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert node.stdout is not None
        assert (await asyncio.wait_for(node.stdout.readline(), 10)).strip() == b"online"
        await asyncio.sleep(0.5)
        started = time.monotonic()
        node.kill()  # a crash: no DISCONNECT, so the broker sends the will
        await node.wait()
        offline = await listener.wait_for(lambda a: a.category == "node_offline", within_s=10)
        assert time.monotonic() - started < 3
        assert offline.reason is not None
        assert "last will" in offline.reason


async def test_broker_restart_reconnects_and_resubscribes(
    broker: Broker, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    service = AggregatorService(agg_settings)
    async with running(service):
        broker.kill()
        await asyncio.sleep(1.0)
        assert service.metrics.registry.get_sample_value("soundalert_mqtt_connected") == 0
        broker.start()
        for _ in range(100):
            if service.metrics.registry.get_sample_value("soundalert_mqtt_connected") == 1:
                break
            await asyncio.sleep(0.1)
        async with listening(broker.url("service"), topics) as listener:
            await _publish(broker.url("kitchen"), _events(topics, [0, 1, 2]))
            await listener.wait_for(lambda a: a.category == "smoke_alarm", within_s=10)


async def test_events_sent_while_the_aggregator_is_down_are_delivered_later(
    broker: Broker, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    async with running(AggregatorService(agg_settings)):
        pass  # registers the persistent session and its subscriptions, then stops
    await _publish(broker.url("kitchen"), _events(topics, [0, 1, 2]))
    async with (
        listening(broker.url("service"), topics) as listener,
        running(AggregatorService(agg_settings)),
    ):
        alert = await listener.wait_for(lambda a: a.category == "smoke_alarm", within_s=10)
    assert alert.state == "raised"


async def test_service_publishes_its_own_status(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    async with running(AggregatorService(agg_settings)):
        pass
    url = BrokerUrl.parse(mosquitto.url("service"))
    async with make_client(url, "status-reader") as client:
        await client.subscribe(topics.service_status("aggregator"), qos=1)
        async with asyncio.timeout(5):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                assert message.retain
                assert NodeStatus.model_validate_json(message.payload).state == "stopped"
                break


async def test_service_status_is_a_heartbeat(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    settings = agg_settings.model_copy(update={"status_heartbeat_s": 0.3})
    async with (
        running(AggregatorService(settings)),
        make_client(BrokerUrl.parse(mosquitto.url("service")), "beat-reader") as client,
    ):
        await client.subscribe(topics.service_status("aggregator"), qos=1)
        seen: list[float] = []
        async with asyncio.timeout(5):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                status = NodeStatus.model_validate_json(message.payload)
                assert status.state == "online"
                seen.append(status.at.timestamp())
                if len(seen) == 4:
                    break
    assert seen == sorted(seen)
    assert len(set(seen)) == 4, "each heartbeat carries a fresh timestamp"
