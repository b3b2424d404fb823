"""Home Assistant MQTT discovery payloads (pure: the notifier's shell publishes them).

Per site and category a ``binary_sensor``, per node the aggregator knows a ``connectivity``
``binary_sensor``, and per site an acknowledge ``button``. The sensors read retained states
the notifier keeps (``<prefix>/<instance>/<site>/<object_id>/state``, see ``state.py``), so
each has a defined state from its discovery on; they are available while the aggregator and
the notifier are online. Discovery topics follow
``<prefix>/<component>/<node_id>/<object_id>/config`` and are published retained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.topics import Topics

__all__ = [
    "ATTRIBUTES_TEMPLATE",
    "AVAILABILITY_TEMPLATE",
    "BINARY_SENSOR_DEVICE_CLASSES",
    "PRESS",
    "VALUE_TEMPLATE",
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

VALUE_TEMPLATE = "{{ value_json.value }}"
ATTRIBUTES_TEMPLATE = "{{ value_json.attributes | tojson }}"
AVAILABILITY_TEMPLATE = "{{ 'online' if value_json.state == 'online' else 'offline' }}"
PRESS = "ACKNOWLEDGE"


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

    def _availability(self) -> dict[str, Any]:
        """Available while both the aggregator (it decides) and the notifier (it publishes
        these states and takes the button) are online."""
        return {
            "availability": [
                {"topic": self.topics.service_status(service),
                 "value_template": AVAILABILITY_TEMPLATE}
                for service in ("aggregator", "notifier")
            ],
            "availability_mode": "all",
            "payload_available": "online",
            "payload_not_available": "offline",
        }  # fmt: skip

    def state_topic(self, site: str, object_id: str) -> str:
        """The retained state the notifier keeps for one entity (``alert_<category>`` or
        ``node_<node>``): ``{"value": "ON"|"OFF", "attributes": {...}}``."""
        return f"{self.prefix}/{self.instance}/{site}/{object_id}/state"

    def command_topic(self, site: str) -> str:
        """Where the site's acknowledge button publishes :data:`PRESS`."""
        return f"{self.prefix}/{self.instance}/{site}/acknowledge"

    def _sensor(self, site: str, object_id: str) -> dict[str, Any]:
        state_topic = self.state_topic(site, object_id)
        return {
            "unique_id": f"{self.instance}_{site}_{object_id}",
            "state_topic": state_topic,
            "value_template": VALUE_TEMPLATE,
            "payload_on": "ON",
            "payload_off": "OFF",
            "json_attributes_topic": state_topic,
            "json_attributes_template": ATTRIBUTES_TEMPLATE,
            **self._availability(),
            "qos": 1,
            "origin": self._origin(),
        }

    def category(self, site: str, category: str, title: str) -> tuple[str, dict[str, Any]]:
        """(discovery topic, config) of a site's category sensor: ON while an alert of the
        category needs attention."""
        object_id = f"alert_{category}"
        return (
            f"{self.prefix}/binary_sensor/{self.instance}_{site}/{object_id}/config",
            {
                **self._sensor(site, object_id),
                "name": title,
                "device_class": category_device_class(category),
                "device": self._site_device(site),
            },
        )

    def node(self, site: str, node: str) -> tuple[str, dict[str, Any]]:
        """(discovery topic, config) of a node's connectivity sensor: ON while it listens.
        Named once: the device is "Hall sensor", the entity "Listening"."""
        room = node.replace("_", " ").replace("-", " ").strip()
        return (
            f"{self.prefix}/binary_sensor/{self.instance}_{site}/node_{node}/config",
            {
                **self._sensor(site, f"node_{node}"),
                "name": "Listening",
                "device_class": "connectivity",
                "device": {
                    "identifiers": [f"{self.instance}_{site}_{node}"],
                    "name": f"{room[:1].upper()}{room[1:]} sensor",
                    "manufacturer": "soundalert",
                    "model": "Listening node",
                    "via_device": f"{self.instance}_{site}",
                },
            },
        )

    def button(self, site: str) -> tuple[str, dict[str, Any]]:
        """(discovery topic, config) of the site's button that acknowledges every alert that
        needs attention, recorded as acknowledged by Home Assistant."""
        return (
            f"{self.prefix}/button/{self.instance}_{site}/acknowledge/config",
            {
                "name": "Acknowledge alerts",
                "unique_id": f"{self.instance}_{site}_acknowledge",
                "command_topic": self.command_topic(site),
                "payload_press": PRESS,
                "icon": "mdi:check-circle",
                **self._availability(),
                "qos": 1,
                "device": self._site_device(site),
                "origin": self._origin(),
            },
        )
