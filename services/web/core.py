"""The display's pure core: turn MQTT messages into history rows and live updates.

No I/O besides the store it is given; the shell (``service.py``) feeds it messages and
broadcasts what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from schemas.decode import Reason, Rejected, decode
from schemas.messages import Alert, CategoryState, Feedback, NodeStatus
from schemas.soundpack import SoundPack
from schemas.topics import SERVICES_LEVEL, Topics
from services.web.palette import text_colour
from services.web.store import AlertEntry, NodeEntry, WebStore

__all__ = [
    "INFORMATIONAL_CATEGORIES",
    "MIC_LEVEL_KEYS",
    "Update",
    "WebCore",
    "alert_record",
    "iso",
    "node_problems",
    "node_record",
    "storage_trouble",
]

log = logging.getLogger(__name__)

INFORMATIONAL_CATEGORIES = frozenset({"node_online", "node_stopped"})
"""Categories the aggregator raises as notices, never active (a sensor listening again, or
stopped on purpose: the quiet screen says that one is not listening)."""

MIC_LEVEL_KEYS = ("mic_dbfs", "level_dbfs", "mic_level_dbfs", "rms_dbfs")
"""``NodeStatus.stats`` keys read as the node's microphone level, first found wins."""

OFFLINE_AFTER_HEARTBEATS = 3


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def alert_record(entry: AlertEntry) -> dict[str, Any]:
    """The JSON the API and the live stream send for one alert."""
    return {
        "alert": entry.alert.model_dump(mode="json", by_alias=True),
        "active": entry.active,
        "handled": entry.handled,
        "received_at": iso(entry.received_at),
        "feedback": [{"verdict": f.verdict, "by": f.by, "at": iso(f.at)} for f in entry.feedback],
    }


def mic_level(status: NodeStatus) -> float | None:
    for key in MIC_LEVEL_KEYS:
        value = status.stats.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _count(stats: dict[str, float | int | str], key: str) -> int:
    value = stats.get(key, 0)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def storage_trouble(stats: dict[str, float | int | str]) -> str | None:
    """What a node's heartbeat says about events it could not keep (issue 11), in words for the
    sensor list: held in memory because its disk refuses, dropped for a full disk or queue."""
    parts = []
    waiting = _count(stats, "outbox_in_memory")
    if waiting or "outbox_problem" in stats:
        parts.append(f"cannot save events ({waiting} waiting in memory)")
    disk = _count(stats, "outbox_dropped_disk_full") + _count(stats, "outbox_dropped_storage_error")
    if disk:
        parts.append(f"{disk} events dropped: storage full")
    queue = _count(stats, "outbox_dropped_outbox_full")
    if queue:
        parts.append(f"{queue} events dropped: queue full")
    return "; ".join(parts) or None


CLOCK_WARN_S = 60.0
"""A node's clock this far off ours is shown: its events are judged by it."""


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if (minutes := round(seconds / 60)) < 60:
        return f"{minutes} min"
    if (hours := round(seconds / 3600)) < 48:
        return f"{hours} h"
    return f"{round(seconds / 86400)} days"


def node_problems(status: NodeStatus, clock_offset_s: float | None) -> list[str]:
    """What is wrong with a node that its online state does not say, in words."""
    problems = []
    if clock_offset_s is not None and abs(clock_offset_s) >= CLOCK_WARN_S:
        way = "ahead" if clock_offset_s > 0 else "behind"
        problems.append(f"clock {_span(abs(clock_offset_s))} {way}")
    storage = storage_trouble(status.stats)
    if storage is not None:
        problems.append(storage)
    return problems


def node_record(entry: NodeEntry, now: float) -> dict[str, Any]:
    status = entry.status
    silent = now - entry.last_heard
    # A live status was heard when it came: the difference is the node's clock offset.
    offset = status.at.timestamp() - entry.last_heard if status.state == "online" else None
    service = status.site == SERVICES_LEVEL
    # Services announce themselves once and rely on their last will; nodes heartbeat.
    online = status.state == "online" and (
        service or silent <= OFFLINE_AFTER_HEARTBEATS * status.heartbeat_s
    )
    return {
        "site": status.site,
        "node": status.node,
        "service": service,
        "state": status.state,
        "online": online,
        "last_heard": iso(entry.last_heard),
        "heartbeat_s": status.heartbeat_s,
        "software": status.software,
        "capabilities": status.capabilities,
        "mic_dbfs": mic_level(status),
        "stats": status.stats,
        "clock_offset_s": None if offset is None else round(offset, 1),
        "problems": node_problems(status, offset),
    }


@dataclass(frozen=True, slots=True)
class Update:
    """Something the live stream should send: an alert or a node changed."""

    kind: Literal["alert", "node"]
    site: str
    record: dict[str, Any]


class WebCore:
    def __init__(self, store: WebStore, topics: Topics) -> None:
        self.store = store
        self.topics = topics
        self.sounds: dict[tuple[str, str], dict[str, Any]] = {}
        """(site, sound) -> what the display shows of a learned sound (its sound pack's
        title, version, priority, node and quality; never its weights)."""

    def handle(self, topic: str, payload: bytes, *, retained: bool, now: float) -> list[Update]:
        """Apply one MQTT message; raises :class:`Rejected` for bad input."""
        parsed = self.topics.parse(topic)
        if parsed is None:
            raise Rejected(Reason.UNKNOWN_TOPIC, f"not a soundalert topic: {topic!r}")
        match parsed.kind:
            case "alerts":
                alert = decode(Alert, payload, parsed)
                return self._alert(alert, now, active=None)
            case "alert_state":
                state = decode(CategoryState, payload, parsed)
                if state.site != parsed.site or state.category != parsed.category:
                    raise Rejected(
                        Reason.TOPIC_MISMATCH,
                        f"payload {state.site}/{state.category}, topic "
                        f"{parsed.site}/{parsed.category}",
                    )
                return self._category_state(state, now)
            case "status" | "service_status":
                status = decode(NodeStatus, payload, parsed)
                if parsed.kind == "service_status" and status.node != parsed.node:
                    raise Rejected(Reason.TOPIC_MISMATCH, f"payload node {status.node!r}")
                # A live heartbeat was heard now; a retained one or a last will says when
                # the node last spoke for itself.
                live = not retained and status.state == "online"
                heard = now if live else min(status.at.timestamp(), now)
                if not self.store.upsert_node(status, heard):
                    return []
                entry = NodeEntry(status, heard)
                return [Update("node", status.site, node_record(entry, now))]
            case "sound_pack":
                key = (parsed.site, parsed.category or "")
                if not payload:
                    self.sounds.pop(key, None)
                    return []
                pack = decode(SoundPack, payload, parsed)
                self.sounds[key] = {
                    "site": pack.site, "sound": pack.sound, "title": pack.title,
                    "version": pack.version, "priority": pack.priority,
                    "color": pack.color.lower(), "text": text_colour(pack.color),
                    "icon": pack.icon, "learned_on": pack.learned_on,
                    "learned_at": pack.learned_at.isoformat(), "quality": dict(pack.quality),
                }  # fmt: skip
                return []
            case "feedback":
                feedback = decode(Feedback, payload, parsed)
                if feedback.site is not None and feedback.site != parsed.site:
                    raise Rejected(Reason.TOPIC_MISMATCH, f"payload site {feedback.site!r}")
                return self.record_feedback(feedback)
        raise Rejected(Reason.UNKNOWN_TOPIC, f"the display does not read {parsed.kind} topics")

    def record_feedback(self, feedback: Feedback) -> list[Update]:
        if not self.store.add_feedback(feedback):
            return []
        return self._changed(feedback.alert_id)

    def _alert(self, alert: Alert, now: float, *, active: bool | None) -> list[Update]:
        if active is None:
            known = self.store.alert(alert.alert_id)
            if alert.state in {"resolved", "false_alarm"}:
                active = False
            elif known is not None:
                active = known.active
            else:  # the category state that follows corrects this within milliseconds
                active = alert.category not in INFORMATIONAL_CATEGORIES
        if not self.store.upsert_alert(alert, active=active, received_at=now):
            return []
        return self._changed(alert.alert_id)

    def _category_state(self, state: CategoryState, now: float) -> list[Update]:
        out: list[Update] = []
        wanted = set(state.active_alerts)
        if state.latest is not None:
            out += self._alert(state.latest, now, active=state.latest.alert_id in wanted)
        for alert_id in sorted(self.store.active_ids(state.site, state.category) - wanted):
            if self.store.set_active(alert_id, False):
                out += self._changed(alert_id)
        for alert_id in sorted(wanted):
            if self.store.set_active(alert_id, True):
                out += self._changed(alert_id)
        return out

    def _changed(self, alert_id: str) -> list[Update]:
        entry = self.store.alert(alert_id)
        if entry is None:
            return []
        return [Update("alert", entry.alert.site, alert_record(entry))]
