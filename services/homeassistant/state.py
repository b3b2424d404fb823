"""What Home Assistant's soundalert entities show (pure: the notifier's shell publishes it).

The notifier is the one writer of these retained state topics, so every entity has a defined
state from the moment it is discovered (OFF until something is active, never ``unknown``):

* a category sensor is ON while an alert of its category needs attention: active and not
  acknowledged (an acknowledged smoke alarm that still sounds is OFF, with
  ``alert_state: acknowledged`` in its attributes);
* a node's connectivity sensor is ON while the node listens: its last status said
  ``online`` and its heartbeats keep coming. A node the aggregator knows only from its events
  (it never sent a status, so nothing supervises it) is ON while its events were stored in
  the last :data:`EVENTS_ONLY_FRESH_S`;
* the acknowledge button acknowledges every alert of the site that needs attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.messages import CategoryState, DeliveryAck, Feedback, NodeStatus

__all__ = ["ACK_BY", "EVENTS_ONLY_FRESH_S", "HEARTBEAT_MISSES", "HaState", "NodeSeen"]

ACK_BY = "Home Assistant"
"""Who acknowledged, in the alert's ``by``, when the button in Home Assistant was pressed."""
HEARTBEAT_MISSES = 3
EVENTS_ONLY_FRESH_S = 300.0
_CLEARED = frozenset({"acknowledged", "false_alarm", "resolved"})


@dataclass
class NodeSeen:
    site: str
    node: str
    status: NodeStatus | None = None
    status_heard: float = 0.0
    """Wall time the status was heard (a retained one: when it was produced)."""
    stored_at: float | None = None
    """When the aggregator last stored one of its events (its delivery ack)."""


def _handled(state: CategoryState, alert_id: str) -> bool:
    latest = state.latest
    if latest is None or latest.alert_id != alert_id:
        return False
    return latest.by is not None or latest.state in _CLEARED


@dataclass
class HaState:
    categories: dict[tuple[str, str], CategoryState] = field(default_factory=dict)
    nodes: dict[tuple[str, str], NodeSeen] = field(default_factory=dict)

    # -- input -------------------------------------------------------------------------------
    def category_state(self, state: CategoryState) -> None:
        self.categories[(state.site, state.category)] = state

    def node_status(self, status: NodeStatus, now: float, *, retained: bool) -> NodeSeen:
        seen = self.nodes.setdefault((status.site, status.node), NodeSeen(status.site, status.node))
        seen.status = status
        live = not retained and status.state == "online"
        seen.status_heard = now if live else min(status.at.timestamp(), now)
        return seen

    def node_ack(self, ack: DeliveryAck) -> NodeSeen:
        seen = self.nodes.setdefault((ack.site, ack.node), NodeSeen(ack.site, ack.node))
        stored = ack.at.timestamp()
        seen.stored_at = stored if seen.stored_at is None else max(seen.stored_at, stored)
        return seen

    # -- output ------------------------------------------------------------------------------
    def needing_attention(self, site: str) -> list[str]:
        """Alert ids of ``site`` that are active and not acknowledged."""
        out: list[str] = []
        for (state_site, _), state in sorted(self.categories.items()):
            if state_site == site:
                out += [a for a in state.active_alerts if not _handled(state, a)]
        return out

    def category_payload(self, site: str, category: str) -> dict[str, object]:
        state = self.categories.get((site, category))
        on = state is not None and any(not _handled(state, a) for a in state.active_alerts)
        latest = state.latest if state is not None else None
        return _shape(on, {
            "alert_id": latest.alert_id if latest else None,
            "alert_state": latest.state if latest else None,
            "location": latest.location if latest else None,
            "priority": latest.priority if latest else None,
            "acknowledged_by": latest.by if latest else None,
            "active_alerts": list(state.active_alerts) if state is not None else [],
        })  # fmt: skip

    def node_payload(self, site: str, node: str, now: float) -> dict[str, object]:
        seen = self.nodes.get((site, node))
        if seen is None:
            return _shape(False, {"node_state": None, "supervised": False})
        status = seen.status
        if status is None:
            fresh = seen.stored_at is not None and now - seen.stored_at <= EVENTS_ONLY_FRESH_S
            return _shape(fresh, {"node_state": "events only", "supervised": False,
                                  "last_heard": _iso(seen.stored_at)})  # fmt: skip
        silent = now - seen.status_heard
        listening = status.state == "online" and silent <= HEARTBEAT_MISSES * status.heartbeat_s
        return _shape(listening, {
            **{k: v for k, v in status.stats.items() if k not in _BLOCKED_ATTRIBUTES},
            "node_state": status.state if status.state != "online" or listening else "silent",
            "supervised": True,
            "last_heard": _iso(seen.status_heard),
        })  # fmt: skip

    def acknowledge(self, site: str, at: datetime) -> list[Feedback]:
        """What the site's acknowledge button sends: one feedback per alert needing it."""
        return [Feedback(alert_id=alert_id, verdict="acknowledged", by=ACK_BY, at=at, site=site)
                for alert_id in self.needing_attention(site)]  # fmt: skip


# Attribute names Home Assistant's MQTT integration drops (it warns, and keeps the rest).
_BLOCKED_ATTRIBUTES = frozenset({
    "assumed_state", "available", "device_class", "entity_picture", "friendly_name", "icon",
    "state", "supported_features", "unit_of_measurement", "value",
})  # fmt: skip


def _shape(on: bool, attributes: dict[str, object]) -> dict[str, object]:
    """The state topic's payload: ``value`` for the entity, ``attributes`` (none of them
    named ``state``, which Home Assistant drops)."""
    return {"value": "ON" if on else "OFF", "attributes": attributes}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()
