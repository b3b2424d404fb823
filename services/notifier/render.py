"""What each channel is sent: text, Apprise priority, light payloads, signed webhook bodies.

Pure functions; the channel senders in :mod:`services.notifier.channels` do the I/O.

Priority mapping (Apprise). Every URL gets the alert's Apprise ``NotifyType``
(critical -> ``failure``, high -> ``warning``, normal -> ``info``, a clear -> ``success``).
Where a scheme has a priority parameter and the configured URL does not set it already, it is
added per alert:

============================  ===========  ===========  ==========
scheme                        critical     high         normal
============================  ===========  ===========  ==========
ntfy, ntfys (``priority``)    max          high         default
pover (Pushover)              emergency    high         normal
gotify, gotifys               emergency    high         normal
prowl                         emergency    high         normal
json(s), form(s), xml(s)      payload field ``priority``: critical / high / normal
mailto(s)                     header ``X-Priority``: 1 / 2 / 3
============================  ===========  ===========  ==========

Pushover's ``emergency`` repeats on the phone until someone acknowledges it there, which is
what a smoke alarm needs. Escalations always go out at the critical level of the channel, and
all-clears (acknowledged, false alarm, over) at the normal level.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import tzinfo
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from schemas.messages import Alert
from services.notifier.config import MqttAction, MqttChannel
from services.notifier.core import Delivery

__all__ = [
    "SIGNATURE_HEADER",
    "alert_link",
    "apprise_url",
    "effective_priority",
    "message",
    "mqtt_publishes",
    "notify_type",
    "sign",
    "webhook_request",
]

SIGNATURE_HEADER = "X-Soundalert-Signature"

_LEVELS: dict[str, dict[str, str]] = {
    "named": {"critical": "emergency", "high": "high", "normal": "normal"},
    "ntfy": {"critical": "max", "high": "high", "normal": "default"},
    "same": {"critical": "critical", "high": "high", "normal": "normal"},
    "mail": {"critical": "1", "high": "2", "normal": "3"},
}
_SCHEMES: dict[str, tuple[str, str]] = {
    "ntfy": ("priority", "ntfy"),
    "ntfys": ("priority", "ntfy"),
    "pover": ("priority", "named"),
    "gotify": ("priority", "named"),
    "gotifys": ("priority", "named"),
    "prowl": ("priority", "named"),
    "json": (":priority", "same"),
    "jsons": (":priority", "same"),
    "form": (":priority", "same"),
    "forms": (":priority", "same"),
    "xml": (":priority", "same"),
    "xmls": (":priority", "same"),
    "mailto": ("+X-Priority", "mail"),
    "mailtos": ("+X-Priority", "mail"),
}
_NOTIFY_TYPES = {"critical": "failure", "high": "warning", "normal": "info"}


def effective_priority(delivery: Delivery) -> str:
    """Escalations go out at the channel's critical level; an all-clear (acknowledged,
    false alarm, over) at normal, so it never buzzes like the alarm it clears."""
    if delivery.kind == "escalation":
        return "critical"
    return "normal" if delivery.kind == "clear" else delivery.alert.priority


def notify_type(delivery: Delivery) -> str:
    """Apprise's NotifyType value for a delivery."""
    if delivery.kind == "clear":
        return "success"
    return _NOTIFY_TYPES[effective_priority(delivery)]


def apprise_url(url: str, priority: str) -> str:
    """``url`` with the scheme's priority parameter for ``priority`` (see the module doc),
    unless the URL sets that parameter itself or the scheme has none."""
    scheme = urlsplit(url).scheme.lower()
    entry = _SCHEMES.get(scheme)
    if entry is None:
        return url
    key, table = entry
    query = urlsplit(url).query
    if any(name.lower() == key.lower() for name, _ in parse_qsl(query, keep_blank_values=True)):
        return url
    value = _LEVELS[table][priority]
    base, _, fragment = url.partition("#")
    joiner = "&" if "?" in base else "?"
    added = f"{base}{joiner}{quote(key, safe=':+')}={quote(value)}"
    return f"{added}#{fragment}" if fragment else added


def _when(alert: Alert, zone: tzinfo) -> str:
    return alert.raised_at.astimezone(zone).strftime("%H:%M:%S")


def room(node: str) -> str:
    """A node id as a person reads it: ``living_room`` -> ``living room``."""
    return node.replace("_", " ").replace("-", " ").strip()


_SENSOR_CATEGORIES = frozenset({"node_offline", "node_online", "node_stopped"})
_TODO = {
    "smoke_alarm": "Check for smoke or fire now; if there is any, get everyone out.",
    "possible_smoke_alarm": "Check for smoke or fire now; if there is any, get everyone out.",
    "co_alarm": "Get everyone into fresh air now and call for help if anyone feels unwell.",
    "node_offline": "Check the sensor's power and network: sounds there are not being heard.",
    "node_stopped": "Start it again when it should listen: sounds there are not being heard.",
    "storage_trouble": "Free disk space on the soundalert server.",
}


def alert_link(display_url: str | None, alert: Alert) -> str | None:
    """The display's address that opens this alert (the token stays on the device)."""
    if not display_url:
        return None
    return f"{display_url.rstrip('/')}/#alert={quote(alert.alert_id)}"


def message(delivery: Delivery, zone: tzinfo, display_url: str | None = None
            ) -> tuple[str, str]:  # fmt: skip
    """(title, body) for a person: what, where, when, what to do, and a link that opens the
    alert on the display."""
    alert = delivery.alert
    what = alert.title or alert.category.replace("_", " ")
    # A sensor's alert names its room already ("Kitchen sensor stopped listening").
    place = room(alert.location) if alert.location else ""
    where = f" in {place}" if place and alert.category not in _SENSOR_CATEGORIES else ""
    when = _when(alert, zone)
    link = alert_link(display_url, alert)
    if delivery.kind == "escalation":
        title = f"NOT ACKNOWLEDGED: {what}{where} ({alert.site})"
        body = (
            f"{what}{where} at {alert.site} since {when} has not been acknowledged "
            f"(escalation {delivery.escalation}). Please check on them now."
        )
        if link:
            body += f" Acknowledge it here: {link}"
        return title, body
    if delivery.kind == "clear":
        verdict = {"acknowledged": "acknowledged", "false_alarm": "marked a false alarm",
                   "resolved": "over"}.get(alert.state, alert.state)  # fmt: skip
        by = f" by {alert.by}" if alert.by else ""
        return (
            f"{what}{where}: {verdict}",
            f"{what}{where} at {alert.site} (since {when}) {verdict}{by}. Nothing more to do.",
        )
    title = f"{what.upper() if alert.priority == 'critical' else what}{where}"
    parts = [f"{what}{where} at {alert.site}, {when}"]
    if alert.ended_at is None and alert.state in {"raised", "updated"} \
            and alert.category not in _SENSOR_CATEGORIES:  # fmt: skip
        parts[0] += " (still sounding)"
    if alert.delay_s:
        parts.append(f"Heard {alert.delay_s:.0f} s before this message")
    if alert.reason:
        parts.append(alert.reason[:1].upper() + alert.reason[1:])
    if delivery.kind == "reminder":
        parts.append(f"Reminder {alert.repeat}: not yet acknowledged")
    todo = _TODO.get(alert.category, f"Check {place} when you can." if place else "")
    body = ". ".join(parts) + "."
    if todo:
        body += f" {todo}"
    if link and alert.category not in {"node_online", "node_stopped"}:
        body += f" Acknowledge it here: {link}"
    return title, body


def _fill(value: Any, fields: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in fields.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, fields) for v in value]
    return value


def mqtt_publishes(channel: MqttChannel, delivery: Delivery
                   ) -> list[tuple[str, bytes, int, bool]]:  # fmt: skip
    """(topic, payload, qos, retain) for each publish a delivery causes on a light channel."""
    alert = delivery.alert
    actions: list[MqttAction]
    if delivery.kind == "clear":
        actions = channel.clear
    else:
        actions = channel.categories.get(alert.category, channel.actions)
    fields = {
        "color": channel.color_for(alert.category),
        "category": alert.category,
        "title": alert.title or alert.category,
        "site": alert.site,
        "location": alert.location or "",
        "priority": effective_priority(delivery),
        "state": alert.state,
        "alert_id": alert.alert_id,
    }
    out: list[tuple[str, bytes, int, bool]] = []
    for action in actions:
        payload = _fill(action.payload, fields)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        out.append((str(_fill(action.topic, fields)), data, action.qos, action.retain))
    return out


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def webhook_request(delivery: Delivery, secret: bytes | None, extra: dict[str, str]
                    ) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    """The POST body (the Alert JSON, exactly as the contract serialises it) and headers."""
    body = delivery.alert.to_json()
    headers = {
        **extra,
        "Content-Type": "application/json",
        "X-Soundalert-Kind": delivery.kind,
        "X-Soundalert-Escalation": str(delivery.escalation),
        "X-Soundalert-Delivery": f"{delivery.alert.alert_id}:{delivery.alert.state}:"
        f"{delivery.alert.repeat}:{delivery.kind}:{delivery.escalation}",
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return body, headers
