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
from tests.support.nats import Broker
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
    configs.append(discovery.node("home", "living_room"))
    by_object = {topic.split("/")[-2]: config for topic, config in configs}
    assert by_object["alert_smoke_alarm"]["device_class"] == "smoke"
    assert by_object["alert_co_alarm"]["device_class"] == "carbon_monoxide"
    assert by_object["alert_doorbell"]["device_class"] == "sound"
    assert by_object["alert_node_offline"]["device_class"] == "problem"
    node = by_object["node_living_room"]
    assert node["device_class"] == "connectivity"
    # Named once: "Living room sensor" (device) + "Listening" (entity).
    assert (node["device"]["name"], node["name"]) == ("Living room sensor", "Listening")
    assert len({c["unique_id"] for _, c in configs}) == len(configs)
    for topic, config in configs:
        assert topic.startswith("homeassistant/binary_sensor/soundalert_home/")
        assert topic.endswith("/config")
        assert config["device_class"] in BINARY_SENSOR_DEVICE_CLASSES
        for key in ("unique_id", "device", "state_topic", "availability", "name"):
            assert config[key], key
        assert config["availability_mode"] == "all"
        assert config["device"]["identifiers"]
    smoke = by_object["alert_smoke_alarm"]
    assert smoke["state_topic"] == "homeassistant/soundalert/home/alert_smoke_alarm/state"
    assert [a["topic"] for a in smoke["availability"]] == [
        "soundalert/v1/_services/aggregator/status",
        "soundalert/v1/_services/notifier/status",
    ]
    topic, button = discovery.button("home")
    assert topic == "homeassistant/button/soundalert_home/acknowledge/config"
    assert button["command_topic"] == "homeassistant/soundalert/home/acknowledge"
    assert button["payload_press"] == "ACKNOWLEDGE"


def _config(rec: MqttRecorder, site: str, obj: str) -> dict[str, Any] | None:
    payload = rec.latest(f"homeassistant/binary_sensor/soundalert_{site}/{obj}/config")
    return None if payload is None else dict(json.loads(payload))


def _state(rec: MqttRecorder, config: dict[str, Any]) -> str | None:
    payload = rec.latest(config["state_topic"])
    return None if payload is None else render(config["value_template"], payload)


def _attributes(rec: MqttRecorder, config: dict[str, Any]) -> dict[str, Any]:
    payload = rec.latest(config["json_attributes_topic"]) or b"{}"
    return dict(json.loads(render(config["json_attributes_template"], payload)))


def _available(rec: MqttRecorder, config: dict[str, Any]) -> bool:
    """Home Assistant's availability_mode 'all': every availability topic says online."""
    for entry in config["availability"]:
        payload = rec.latest(entry["topic"])
        if payload is None or render(entry["value_template"], payload) != "online":
            return False
    return True


@pytest.mark.integration
async def test_discovery_sensors_follow_the_alert_and_node_state(
    broker: Broker, topic_root: str, tmp_path: Path
) -> None:
    url = broker.url("service")
    topics = Topics(topic_root)
    # The quick test policy: one Doorbell window confirms (the shipped policy needs two).
    agg = AggregatorSettings(broker=url, topic_root=topic_root, state_dir=tmp_path / "agg",
                             policy_file=quick_policy_file(tmp_path / "policy"),
                             tick_s=0.2, client_id=f"agg-{uuid.uuid4().hex[:8]}")  # fmt: skip
    settings = NotifierSettings.model_validate({
        "broker": url, "topic_root": topic_root, "state_dir": tmp_path / "notifier",
        "client_id": f"notifier-{uuid.uuid4().hex[:8]}", "homeassistant": {"sites": ["home"]},
        "tick_s": 0.2,
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
            assert door["device"]["identifiers"] == ["soundalert_home"]
            # Defined from the start: OFF, not unknown, before anything was ever active.
            await rec.wait_until(lambda: _state(rec, smoke) == "OFF" and _available(rec, smoke))
            await rec.wait_until(lambda: _state(rec, door) == "OFF")

            status = NodeStatus(site="home", node="hall", state="online", at=datetime.now(UTC),
                                heartbeat_s=15)  # fmt: skip
            await publish(url, [(topics.status("home", "hall"), status.to_json())], retain=True)
            await rec.wait_until(lambda: _config(rec, "home", "node_hall") is not None)
            node = _config(rec, "home", "node_hall")
            assert node is not None
            assert node["device_class"] == "connectivity"
            assert node["device"]["via_device"] == "soundalert_home"
            await rec.wait_until(lambda: _state(rec, node) == "ON")

            start = datetime.now(UTC)
            await publish(url, [event(topics, "home", "hall", 1, kind="yamnet",
                                      label="Doorbell", end=start)])  # fmt: skip
            await rec.wait_until(lambda: _state(rec, door) == "ON")
            attributes = _attributes(rec, door)
            assert attributes["location"] == "hall"
            assert attributes["alert_state"] == "raised"
            assert "state" not in attributes  # Home Assistant drops that name
            # The sound ends (by event time): the alert resolves and the sensor goes OFF.
            await publish(url, [event(topics, "home", "hall", 2, kind="yamnet", label="Speech",
                                      end=start + timedelta(seconds=4))])  # fmt: skip
            await rec.wait_until(lambda: _state(rec, door) == "OFF")
            assert _state(rec, smoke) == "OFF"

            # A node that only publishes events gets an entity too.
            await publish(url, [event(topics, "home", "porch", 0, kind="yamnet",
                                      label="Speech")])  # fmt: skip
            await rec.wait_until(lambda: _config(rec, "home", "node_porch") is not None)
            porch = _config(rec, "home", "node_porch")
            assert porch is not None
            await rec.wait_until(lambda: _state(rec, porch) == "ON")
            assert _attributes(rec, porch)["supervised"] is False

            offline = status.model_copy(update={"state": "offline"})
            await publish(url, [(topics.status("home", "hall"), offline.to_json())], retain=True)
            await rec.wait_until(lambda: _state(rec, node) == "OFF")
        # The aggregator stopped: its sensors become unavailable in Home Assistant.
        await rec.wait_until(lambda: not _available(rec, door))
