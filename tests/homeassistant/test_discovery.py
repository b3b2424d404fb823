"""Home Assistant MQTT discovery: the payloads, and that the sensors follow the alert state.

The templates are rendered with Jinja2 the way Home Assistant renders them (``value_json``
is the parsed payload), against the retained messages the real aggregator publishes.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest

from schemas.messages import NodeStatus
from schemas.topics import Topics
from services.aggregator.policy import load_policy
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.homeassistant.discovery import BINARY_SENSOR_DEVICE_CLASSES, Discovery
from services.notifier.config import NotifierSettings
from services.notifier.service import NotifierService
from tests.notifier.support import (
    MqttRecorder,
    event,
    publish,
    recording,
    running_aggregator,
    running_notifier,
)
from tests.support.mosquitto import Mosquitto
from tests.support.policy import quick_policy_file

_JINJA = jinja2.Environment(autoescape=False)  # noqa: S701 - renders sensor states, not HTML


def render(template: str, payload: bytes) -> str:
    return _JINJA.from_string(template).render(value_json=json.loads(payload),
                                               value=payload.decode()).strip()  # fmt: skip


def test_every_category_gets_a_valid_sensor() -> None:
    topics = Topics("soundalert/v1")
    discovery = Discovery(topics, version="1.2.3")
    policy = load_policy()
    configs = [discovery.category("home", name, cat.title)
               for name, cat in policy.categories.items()]  # fmt: skip
    configs.append(discovery.category("home", "node_offline", "Sensor stopped listening"))
    configs.append(discovery.node("home", "kitchen"))
    by_object = {topic.split("/")[-2]: config for topic, config in configs}
    assert by_object["alert_smoke_alarm"]["device_class"] == "smoke"
    assert by_object["alert_co_alarm"]["device_class"] == "carbon_monoxide"
    assert by_object["alert_doorbell"]["device_class"] == "sound"
    assert by_object["alert_node_offline"]["device_class"] == "problem"
    assert by_object["node_kitchen"]["device_class"] == "connectivity"
    assert len({c["unique_id"] for _, c in configs}) == len(configs)
    for topic, config in configs:
        assert topic.startswith("homeassistant/binary_sensor/soundalert_home/")
        assert topic.endswith("/config")
        assert config["device_class"] in BINARY_SENSOR_DEVICE_CLASSES
        for key in ("unique_id", "device", "state_topic", "availability_topic", "name"):
            assert config[key], key
        assert config["device"]["identifiers"]
    smoke = by_object["alert_smoke_alarm"]
    assert smoke["state_topic"] == "soundalert/v1/home/alerts/smoke_alarm/state"
    assert smoke["availability_topic"] == "soundalert/v1/_services/aggregator/status"
    assert by_object["node_kitchen"]["state_topic"] == "soundalert/v1/home/kitchen/status"


def _config(rec: MqttRecorder, site: str, obj: str) -> dict[str, Any] | None:
    payload = rec.latest(f"homeassistant/binary_sensor/soundalert_{site}/{obj}/config")
    return None if payload is None else dict(json.loads(payload))


def _state(rec: MqttRecorder, config: dict[str, Any], key: str = "value_template") -> str | None:
    payload = rec.latest(config["state_topic" if key == "value_template" else
                                "availability_topic"])  # fmt: skip
    return None if payload is None else render(config[key], payload)


@pytest.mark.integration
async def test_discovery_sensors_follow_the_alert_and_node_state(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    url = mosquitto.url("service")
    topics = Topics(topic_root)
    # The quick test policy: one Doorbell window confirms (the shipped policy needs two).
    agg = AggregatorSettings(broker=url, topic_root=topic_root, state_dir=tmp_path / "agg",
                             policy_file=quick_policy_file(tmp_path / "policy"),
                             tick_s=0.2, client_id=f"agg-{uuid.uuid4().hex[:8]}")  # fmt: skip
    settings = NotifierSettings.model_validate({
        "broker": url, "topic_root": topic_root, "state_dir": tmp_path / "notifier",
        "client_id": f"notifier-{uuid.uuid4().hex[:8]}", "homeassistant": {"sites": ["home"]},
    })  # fmt: skip
    async with recording(url, ["homeassistant/#", f"{topic_root}/#"]) as rec:
        aggregator = AggregatorService(agg)
        async with running_aggregator(aggregator), running_notifier(NotifierService(settings)):
            await rec.wait_until(lambda: _config(rec, "home", "alert_doorbell") is not None)
            door = _config(rec, "home", "alert_doorbell")
            smoke = _config(rec, "home", "alert_smoke_alarm")
            assert door is not None
            assert smoke is not None
            assert (door["device_class"], smoke["device_class"]) == ("sound", "smoke")
            assert door["state_topic"] == topics.alert_state("home", "doorbell")
            assert door["availability_topic"] == topics.service_status("aggregator")
            assert door["device"]["identifiers"] == ["soundalert_home"]
            await rec.wait_until(lambda: _state(rec, door, "availability_template") == "online")

            status = NodeStatus(site="home", node="hall", state="online", at=datetime.now(UTC),
                                heartbeat_s=15)  # fmt: skip
            await publish(url, [(topics.status("home", "hall"), status.to_json())], retain=True)
            await rec.wait_until(lambda: _config(rec, "home", "node_hall") is not None)
            node = _config(rec, "home", "node_hall")
            assert node is not None
            assert node["device_class"] == "connectivity"
            assert node["device"]["via_device"] == "soundalert_home"
            assert _state(rec, node) == "ON"
            await rec.wait_until(lambda: _state(rec, node, "availability_template") == "online")

            start = datetime.now(UTC)
            await publish(url, [event(topics, "home", "hall", 1, kind="yamnet",
                                      label="Doorbell", end=start)])  # fmt: skip
            await rec.wait_until(lambda: _state(rec, door) == "ON")
            attributes = render(door["json_attributes_template"],
                                rec.latest(door["state_topic"]) or b"")  # fmt: skip
            assert json.loads(attributes)["location"] == "hall"
            # The sound ends (by event time): the alert resolves and the sensor goes OFF.
            await publish(url, [event(topics, "home", "hall", 2, kind="yamnet", label="Speech",
                                      end=start + timedelta(seconds=4))])  # fmt: skip
            await rec.wait_until(lambda: _state(rec, door) == "OFF")
            assert _state(rec, smoke) is None  # never active, nothing retained yet

            offline = status.model_copy(update={"state": "offline"})
            await publish(url, [(topics.status("home", "hall"), offline.to_json())], retain=True)
            await rec.wait_until(lambda: _state(rec, node) == "OFF")
        # The aggregator stopped: its sensors become unavailable in Home Assistant.
        await rec.wait_until(lambda: _state(rec, door, "availability_template") == "offline")
