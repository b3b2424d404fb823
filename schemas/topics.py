"""The one place that names soundalert's MQTT topics.

Layout under a root (default ``soundalert/v1``)::

    <root>/<site>/<node>/events|features|status
    <root>/<site>/<node>/ack                  retained DeliveryAck, aggregator -> node
    <root>/<site>/alerts                      every alert state change
    <root>/<site>/alerts/<category>/state     retained CategoryState
    <root>/<site>/feedback                    Feedback from people
    <root>/<site>/sounds/<sound>              retained SoundPack (a learned sound); empty: removed
    <root>/<site>/<node>/learn                LearnRequest, display -> node ("this was my ...")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from schemas.common import ID_PATTERN, RESERVED_NODE_IDS

__all__ = ["DEFAULT_ROOT", "SERVICES_LEVEL", "ParsedTopic", "TopicKind", "Topics"]

DEFAULT_ROOT = "soundalert/v1"
TopicKind = Literal[
    "events",
    "features",
    "status",
    "ack",
    "alerts",
    "alert_state",
    "feedback",
    "service_status",
    "sound_pack",
    "learn",
]
SERVICES_LEVEL = "_services"
_ID = re.compile(ID_PATTERN)
_NODE_KINDS: frozenset[str] = frozenset({"events", "features", "status", "ack", "learn"})


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: TopicKind
    site: str
    node: str | None = None
    category: str | None = None


def _check(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f"{what} id {value!r} does not match {ID_PATTERN}")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    root: str = DEFAULT_ROOT

    def events(self, site: str, node: str) -> str:
        return f"{self.root}/{_check(site, 'site')}/{_check(node, 'node')}/events"

    def features(self, site: str, node: str) -> str:
        return f"{self.root}/{_check(site, 'site')}/{_check(node, 'node')}/features"

    def status(self, site: str, node: str) -> str:
        return f"{self.root}/{_check(site, 'site')}/{_check(node, 'node')}/status"

    def ack(self, site: str, node: str) -> str:
        """Retained end-to-end delivery acknowledgement for one node (see DeliveryAck)."""
        return f"{self.root}/{_check(site, 'site')}/{_check(node, 'node')}/ack"

    def alerts(self, site: str) -> str:
        return f"{self.root}/{_check(site, 'site')}/alerts"

    def alert_state(self, site: str, category: str) -> str:
        return f"{self.root}/{_check(site, 'site')}/alerts/{_check(category, 'category')}/state"

    def feedback(self, site: str) -> str:
        return f"{self.root}/{_check(site, 'site')}/feedback"

    def learn(self, site: str, node: str) -> str:
        """:class:`~schemas.soundpack.LearnRequest` for one node ("this was my ...")."""
        return f"{self.root}/{_check(site, 'site')}/{_check(node, 'node')}/learn"

    def sound_pack(self, site: str, sound: str) -> str:
        """Retained :class:`~schemas.soundpack.SoundPack` of one learned sound of a site."""
        return f"{self.root}/{_check(site, 'site')}/sounds/{_check(sound, 'sound')}"

    def sound_packs(self, site: str) -> str:
        """Subscription filter: every learned sound of one site."""
        return f"{self.root}/{_check(site, 'site')}/sounds/+"

    def service_status(self, service: str) -> str:
        """Retained online/offline status of a soundalert service (aggregator, notifier)."""
        return f"{self.root}/{SERVICES_LEVEL}/{_check(service, 'service')}/status"

    # Subscription filters across every site and node.
    @property
    def all_events(self) -> str:
        return f"{self.root}/+/+/events"

    @property
    def all_status(self) -> str:
        return f"{self.root}/+/+/status"

    @property
    def all_feedback(self) -> str:
        return f"{self.root}/+/feedback"

    @property
    def all_sound_packs(self) -> str:
        return f"{self.root}/+/sounds/+"

    @property
    def all_alerts(self) -> str:
        return f"{self.root}/+/alerts"

    def parse(self, topic: str) -> ParsedTopic | None:
        """Classify a topic under this root; ``None`` for anything that is not ours."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if not parts or not _ID.fullmatch(parts[0]):
            return None
        site = parts[0]
        if site == SERVICES_LEVEL:
            if len(parts) == 3 and parts[2] == "status" and _ID.fullmatch(parts[1]):
                return ParsedTopic("service_status", site, node=parts[1])
            return None
        match parts[1:]:
            case ["alerts"]:
                return ParsedTopic("alerts", site)
            case ["feedback"]:
                return ParsedTopic("feedback", site)
            case ["alerts", category, "state"] if _ID.fullmatch(category):
                return ParsedTopic("alert_state", site, category=category)
            case ["sounds", sound] if _ID.fullmatch(sound):
                return ParsedTopic("sound_pack", site, category=sound)
            case [node, kind] if (
                kind in _NODE_KINDS and _ID.fullmatch(node) and node not in RESERVED_NODE_IDS
            ):
                return ParsedTopic(kind, site, node=node)  # type: ignore[arg-type]
        return None
