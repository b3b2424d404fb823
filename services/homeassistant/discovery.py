"""Home Assistant MQTT discovery payloads (pure: the notifier's shell publishes them).

Per site and category a ``binary_sensor`` that reads the aggregator's retained
``CategoryState`` (``<root>/<site>/alerts/<category>/state``) and is available while the
aggregator's retained service status says ``online``; per node a ``connectivity``
``binary_sensor`` reading the node's retained ``NodeStatus``. Discovery topics follow
``<prefix>/binary_sensor/<node_id>/<object_id>/config`` and are published retained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.topics import Topics

__all__ = [
    "AVAILABILITY_TEMPLATE",
    "BINARY_SENSOR_DEVICE_CLASSES",
    "CATEGORY_VALUE_TEMPLATE",
    "NODE_VALUE_TEMPLATE",
    "Discovery",
    "category_device_class",
]

# Home Assistant's binary_sensor device classes (homeassistant.components.binary_sensor).
BINARY_SENSOR_DEVICE_CLASSES = frozenset({
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
})  # fmt: skip
_DEVICE_CLASS = {"smoke_alarm": "smoke", "co_alarm": "carbon_monoxide", "node_offline": "problem"}

CATEGORY_VALUE_TEMPLATE = "{{ 'ON' if value_json.active else 'OFF' }}"
CATEGORY_ATTRIBUTES_TEMPLATE = (
    "{{ {'alert_id': value_json.latest.alert_id if value_json.latest else none,"
    " 'state': value_json.latest.state if value_json.latest else none,"
    " 'location': value_json.latest.location if value_json.latest else none,"
    " 'priority': value_json.latest.priority if value_json.latest else none,"
    " 'active_alerts': value_json.active_alerts} | tojson }}"
)
NODE_VALUE_TEMPLATE = "{{ 'ON' if value_json.state == 'online' else 'OFF' }}"
AVAILABILITY_TEMPLATE = "{{ 'online' if value_json.state == 'online' else 'offline' }}"


def category_device_class(category: str) -> str:
    """``smoke`` for smoke alarms, ``carbon_monoxide`` for CO, ``problem`` for a sensor that
    stopped listening, ``sound`` for everything else."""
    return _DEVICE_CLASS.get(category, "sound")


@dataclass(frozen=True, slots=True)
class Discovery:
    topics: Topics
    prefix: str = "homeassistant"
    instance: str = "soundalert"
    version: str = "0"

    def _site_device(self, site: str) -> dict[str, Any]:
        return {
            "identifiers": [f"{self.instance}_{site}"],
            "name": f"soundalert {site}",
            "manufacturer": "soundalert",
            "model": "Sound alerts",
            "sw_version": self.version,
        }

    def _origin(self) -> dict[str, str]:
        return {"name": "soundalert", "sw_version": self.version}

    def category(self, site: str, category: str, title: str) -> tuple[str, dict[str, Any]]:
        """(discovery topic, config) of a site's category sensor."""
        state_topic = self.topics.alert_state(site, category)
        return (
            f"{self.prefix}/binary_sensor/{self.instance}_{site}/alert_{category}/config",
            {
                "name": title,
                "unique_id": f"{self.instance}_{site}_alert_{category}",
                "device_class": category_device_class(category),
                "state_topic": state_topic,
                "value_template": CATEGORY_VALUE_TEMPLATE,
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": state_topic,
                "json_attributes_template": CATEGORY_ATTRIBUTES_TEMPLATE,
                "availability_topic": self.topics.service_status("aggregator"),
                "availability_template": AVAILABILITY_TEMPLATE,
                "payload_available": "online",
                "payload_not_available": "offline",
                "qos": 1,
                "device": self._site_device(site),
                "origin": self._origin(),
            },
        )

    def node(self, site: str, node: str) -> tuple[str, dict[str, Any]]:
        """(discovery topic, config) of a node's connectivity sensor. Its availability is the
        notifier's own status: the notifier keeps these configs."""
        return (
            f"{self.prefix}/binary_sensor/{self.instance}_{site}/node_{node}/config",
            {
                "name": f"{node} listening",
                "unique_id": f"{self.instance}_{site}_node_{node}",
                "device_class": "connectivity",
                "state_topic": self.topics.status(site, node),
                "value_template": NODE_VALUE_TEMPLATE,
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": self.topics.status(site, node),
                "json_attributes_template": "{{ value_json.stats | tojson }}",
                "availability_topic": self.topics.service_status("notifier"),
                "availability_template": AVAILABILITY_TEMPLATE,
                "payload_available": "online",
                "payload_not_available": "offline",
                "qos": 1,
                "device": {
                    "identifiers": [f"{self.instance}_{site}_{node}"],
                    "name": f"soundalert {site} {node}",
                    "manufacturer": "soundalert",
                    "model": "Listening node",
                    "via_device": f"{self.instance}_{site}",
                },
                "origin": self._origin(),
            },
        )
