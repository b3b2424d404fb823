"""The notifier core: pure, synchronous decisions about who hears of an alert, and when.

No I/O and no clock reads: the shell passes ``now`` (epoch seconds) and the stored
:class:`Track` of the alert, and persists what comes back. Rules:

* routing is per site: every route that matches (category, priority, kind) adds its channels;
* snoozes and quiet hours hold back non-critical alerts; a ``critical`` alert is never held;
* escalation is keyed on ``alert_id``: one timer per alert, started when the alert is first
  seen (at the alert's ``raised_at`` if that is earlier), moved on by each escalation and
  cancelled by any clearing state. The aggregator's own reminders (``updated`` with ``repeat``
  incremented) go to the primary channels and never touch the timer, so escalation is the same
  with or without them and never fires twice for one interval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, time

from schemas.messages import Alert
from services.notifier.config import (
    WEEKDAYS,
    Kind,
    NotifierSettings,
    QuietHours,
    SiteConfig,
)

__all__ = [
    "CLEARING_STATES",
    "Decision",
    "Delivery",
    "Held",
    "NotifierCore",
    "Track",
    "classify",
    "in_quiet_hours",
    "recipient_key",
]

log = logging.getLogger(__name__)

CLEARING_STATES = frozenset({"acknowledged", "false_alarm", "resolved"})


@dataclass(slots=True)
class Track:
    """What the notifier knows about one alert (persisted; survives restarts)."""

    alert_id: str
    site: str
    category: str
    priority: str
    state: str
    repeat: int
    published_at: float
    cleared: bool = False
    escalate_at: float | None = None
    escalations: int = 0
    alert: Alert | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification for one channel of one site, or for one recipient (one URL) of a
    channel with several: each recipient is its own delivery, retried on its own, so a
    recipient that got it never gets it again because another was unreachable."""

    site: str
    channel: str
    kind: Kind
    alert: Alert
    escalation: int = 0
    recipient: int = 0
    """1-based URL number within an Apprise channel of several URLs; 0: the whole channel."""

    @property
    def channel_key(self) -> str:
        return recipient_key(self.site, self.channel, self.recipient)

    def to(self, recipient: int) -> Delivery:
        return replace(self, recipient=recipient)


def recipient_key(site: str, channel: str, recipient: int = 0) -> str:
    """The delivery worker's key (and metric label): ``site/channel`` or ``site/channel#2``."""
    return f"{site}/{channel}#{recipient}" if recipient else f"{site}/{channel}"


@dataclass(frozen=True, slots=True)
class Held:
    """A notification held back by a snooze or quiet hours."""

    site: str
    channel: str
    reason: str  # "snoozed" | "quiet_hours"

    @property
    def channel_key(self) -> str:
        return f"{self.site}/{self.channel}"


@dataclass(slots=True)
class Decision:
    kind: Kind | None
    track: Track
    deliveries: list[Delivery] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    stale: bool = False


def classify(alert: Alert, track: Track | None) -> Kind | None:
    """What this state change means, given what was seen of the alert before."""
    if track is None:
        # First sight. A state change of an alert already over tells nobody anything new.
        return None if alert.state in CLEARING_STATES else "raise"
    if track.cleared:
        return "update"
    if alert.state in CLEARING_STATES:
        return "clear"
    if alert.state == "updated" and alert.repeat > track.repeat:
        return "reminder"
    return "update"


def _covers(categories: list[str], category: str) -> bool:
    return "*" in categories or category in categories


def _time_in(start: time, end: time, now: time) -> tuple[bool, bool]:
    """(in the part of the window on its start day, in the part after midnight)."""
    if start == end:
        return True, False
    if start < end:
        return start <= now < end, False
    return now >= start, now < end


def in_quiet_hours(windows: list[QuietHours], channel: str, category: str, local: datetime
                   ) -> bool:  # fmt: skip
    """Whether ``channel`` is quiet for ``category`` at the local time ``local``."""
    day = WEEKDAYS[local.weekday()]
    previous = WEEKDAYS[(local.weekday() - 1) % 7]
    clock = local.time().replace(tzinfo=None)
    for window in windows:
        if window.channels is not None and channel not in window.channels:
            continue
        if not _covers(window.categories, category):
            continue
        same_day, after_midnight = _time_in(window.start, window.end, clock)
        if (same_day and day in window.days) or (after_midnight and previous in window.days):
            return True
    return False


class NotifierCore:
    """Routing, holding back and escalation, for every configured site."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings

    def site(self, site: str) -> SiteConfig | None:
        return self.settings.sites.get(site)

    # -- one alert state change --------------------------------------------------------------
    def on_alert(self, alert: Alert, track: Track | None, snoozes: dict[str, float], now: float
                 ) -> Decision:  # fmt: skip
        """Decide what one (not duplicate) state change causes. ``snoozes`` maps the site's
        snoozed categories to the epoch second each snooze ends."""
        published = alert.published_at.timestamp()
        if track is not None and published < track.published_at:
            return Decision(None, track, stale=True)  # an older state arriving late
        kind = classify(alert, track)
        cfg = self.site(alert.site)
        if track is None:
            track = Track(alert.alert_id, alert.site, alert.category, alert.priority,
                          alert.state, alert.repeat, published)  # fmt: skip
        decision = Decision(kind, track)
        track.state, track.repeat, track.published_at = alert.state, alert.repeat, published
        track.priority, track.alert = alert.priority, alert
        if kind is None:
            track.cleared = True
            return decision
        if cfg is not None:
            self._route(cfg, alert, kind, snoozes=snoozes, now=now, decision=decision)
        if kind == "clear":
            track.cleared = True
            if track.escalations and cfg and cfg.escalation and cfg.escalation.notify_clear:
                for channel in cfg.escalation.channels:
                    decision.deliveries.append(
                        Delivery(alert.site, channel, "clear", alert, track.escalations)
                    )
            track.escalate_at = None
        elif (
            kind == "raise"
            and cfg is not None
            and cfg.escalation is not None
            and alert.priority in cfg.escalation.priorities
        ):
            start = min(alert.raised_at.timestamp(), now)
            track.escalate_at = start + cfg.escalation.after_s
        return decision

    def _route(self, cfg: SiteConfig, alert: Alert, kind: Kind, *, snoozes: dict[str, float],
               now: float, decision: Decision) -> None:  # fmt: skip
        names: list[str] = []
        for route in cfg.routes:
            if route.matches(alert.category, alert.priority, kind):
                names += [name for name in route.channels if name not in names]
        for name in names:
            reason = self._held(cfg, name, alert, kind, snoozes=snoozes, now=now)
            if reason is not None:
                decision.held.append(Held(alert.site, name, reason))
            else:
                decision.deliveries.append(Delivery(alert.site, name, kind, alert))

    def _held(self, cfg: SiteConfig, channel: str, alert: Alert, kind: Kind, *,
              snoozes: dict[str, float], now: float) -> str | None:  # fmt: skip
        if alert.priority == "critical" or kind == "clear":
            return None  # never hold back a critical alert; always let a light stop
        until = snoozes.get(alert.category)
        if until is not None and now < until:
            return "snoozed"
        local = datetime.fromtimestamp(now, cfg.zone())
        if in_quiet_hours(cfg.quiet_hours, channel, alert.category, local):
            return "quiet_hours"
        return None

    # -- time --------------------------------------------------------------------------------
    def due(self, tracks: list[Track], snoozes: dict[tuple[str, str], float], now: float
            ) -> list[Decision]:  # fmt: skip
        """Escalations due at ``now`` among tracks with a pending timer."""
        out: list[Decision] = []
        for track in tracks:
            if track.escalate_at is None or track.escalate_at > now:
                continue
            cfg = self.site(track.site)
            if track.cleared or cfg is None or cfg.escalation is None or track.alert is None:
                track.escalate_at = None
                out.append(Decision(None, track))
                continue
            esc = cfg.escalation
            track.escalations += 1
            track.escalate_at = now + esc.repeat_s
            decision = Decision("escalation", track)
            site_snoozes = {cat: until for (site, cat), until in snoozes.items()
                            if site == track.site}  # fmt: skip
            for channel in esc.channels:
                reason = self._held(cfg, channel, track.alert, "escalation",
                                    snoozes=site_snoozes, now=now)  # fmt: skip
                if reason is not None:
                    decision.held.append(Held(track.site, channel, reason))
                else:
                    delivery = Delivery(track.site, channel, "escalation", track.alert,
                                        track.escalations)  # fmt: skip
                    decision.deliveries.append(delivery)
            log.info("escalation %d of alert %s (%s) to %s", track.escalations, track.alert_id,
                     track.category, ", ".join(esc.channels))  # fmt: skip
            out.append(decision)
        return out

    def static_snoozes(self, now: float) -> dict[tuple[str, str], float]:
        """Snoozes from the config file that have not yet ended."""
        out: dict[tuple[str, str], float] = {}
        for site, cfg in self.settings.sites.items():
            for snooze in cfg.snoozes:
                until = snooze.until.timestamp()
                if until > now:
                    out[(site, snooze.category)] = max(until, out.get((site, snooze.category), 0))
        return out
