"""Notifier settings: where alerts go, per site, and when they may be held back.

Config file keys (YAML) or ``SOUNDALERT_<KEY>`` environment variables for the top-level
fields; the per-site routing lives in the file. Secrets (Apprise URLs carry tokens, webhook
signing keys) are :class:`~pydantic.SecretStr` and never logged.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from schemas.common import ID_PATTERN
from schemas.messages import Priority
from soundalert.settings import BrokerServiceSettings

__all__ = [
    "DEFAULT_LIGHT_COLORS",
    "PRIORITY_RANK",
    "AppriseChannel",
    "ChannelConfig",
    "EscalationConfig",
    "HomeAssistantConfig",
    "Kind",
    "MqttAction",
    "MqttChannel",
    "NotifierSettings",
    "QuietHours",
    "RetryConfig",
    "Route",
    "SiteConfig",
    "Snooze",
    "WebhookChannel",
]

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
HexColor = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
Kind = Literal["raise", "reminder", "update", "clear", "escalation"]
"""What a state change means to a channel: a new alert, a reminder (``repeat`` went up),
another update, the end of it (acknowledged, false alarm, resolved), or an escalation."""
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PRIORITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "normal": 2}

# Colour codes that DHH households know from RF alerters (Bellman, lisa): fire and smoke red,
# door green, phone yellow, baby orange. Saturated hues, because they drive bulbs and strobes.
DEFAULT_LIGHT_COLORS: dict[str, str] = {
    "smoke_alarm": "#ff0000",
    "possible_smoke_alarm": "#ff0000",
    "co_alarm": "#ff0000",
    "doorbell": "#00ff00",
    "knock": "#00ff00",
    "phone_ring": "#ffff00",
    "baby_cry": "#ff8000",
    "siren": "#ff00ff",
    "glass_break": "#ff00ff",
    "node_offline": "#0000ff",
}
DEFAULT_LIGHT_COLOR = "#ffffff"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Config):
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="Limit for one attempt.")
    attempts: int = Field(default=10, ge=1, le=1000, description="Attempts before giving up.")
    initial_s: float = Field(default=1.0, gt=0, le=600, description="First retry delay.")
    max_s: float = Field(default=60.0, gt=0, le=3600, description="Cap on the retry delay.")
    give_up_after_s: float = Field(
        default=900.0,
        gt=0,
        description="A notification still undelivered this long after it was queued is "
        "dropped (counted as outcome 'expired'); later reminders supersede it.",
    )


class AppriseChannel(_Config):
    type: Literal["apprise"] = Field(description="Apprise notification URLs.")
    urls: list[SecretStr] = Field(
        min_length=1,
        description="Apprise URLs (ntfy://, pover://, tgram://, mailto://, json://, ...). "
        "Priority parameters are added per alert where the scheme has them, unless set here.",
    )
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retries and timeouts.")


class MqttAction(_Config):
    topic: str = Field(min_length=1, description="Topic to publish to, e.g. zigbee2mqtt/lamp/set.")
    payload: dict[str, Any] | list[Any] | str = Field(
        description="JSON payload (or a string). Strings inside may use {color}, {category}, "
        "{title}, {site}, {location}, {priority}, {state}, {alert_id}."
    )
    qos: Literal[0, 1] = Field(default=1, description="MQTT QoS of the publish.")
    retain: bool = Field(default=False, description="Publish retained.")


class MqttChannel(_Config):
    type: Literal["mqtt"] = Field(description="Publishes for lights, strobes and bed shakers.")
    actions: list[MqttAction] = Field(
        default_factory=list, description="Publishes for any category without its own list."
    )
    categories: dict[Id, list[MqttAction]] = Field(
        default_factory=dict, description="Per-category publishes, replacing 'actions'."
    )
    clear: list[MqttAction] = Field(
        default_factory=list,
        description="Publishes when an alert is acknowledged, a false alarm or resolved "
        "(e.g. stop the blinking); used for routes that include kind 'clear'.",
    )
    colors: dict[Id, HexColor] = Field(
        default_factory=dict, description="Light colour per category, over the RF defaults."
    )
    retry: RetryConfig = Field(
        default_factory=lambda: RetryConfig(timeout_s=5.0, give_up_after_s=120.0),
        description="Retries and timeouts.",
    )

    def color_for(self, category: str) -> str:
        return self.colors.get(category, DEFAULT_LIGHT_COLORS.get(category, DEFAULT_LIGHT_COLOR))


class WebhookChannel(_Config):
    type: Literal["webhook"] = Field(description="HTTP POST of the alert JSON, HMAC-signed.")
    url: SecretStr = Field(description="http(s) URL to POST to (may carry a token).")
    secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key; the body's signature is sent as "
        "'X-Soundalert-Signature: sha256=<hex>'.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retries and timeouts.")

    @field_validator("url")
    @classmethod
    def _http(cls, value: SecretStr) -> SecretStr:
        if not re.match(r"^https?://", value.get_secret_value()):
            raise ValueError("webhook url must start with http:// or https://")
        return value


ChannelConfig = Annotated[
    AppriseChannel | MqttChannel | WebhookChannel, Field(discriminator="type")
]


class Route(_Config):
    channels: list[Id] = Field(min_length=1, description="Channel names of this site.")
    categories: list[str] = Field(
        default_factory=lambda: ["*"], description="Category ids, or '*' for every category."
    )
    exclude_categories: list[Id] = Field(default_factory=list, description="Never these.")
    min_priority: Priority = Field(default="normal", description="Lowest priority routed.")
    kinds: list[Kind] = Field(
        default_factory=lambda: list[Kind](["raise", "reminder"]),
        description="Which state changes: raise, reminder, update, clear.",
    )

    def matches(self, category: str, priority: str, kind: Kind) -> bool:
        if kind not in self.kinds or category in self.exclude_categories:
            return False
        if "*" not in self.categories and category not in self.categories:
            return False
        return PRIORITY_RANK[priority] <= PRIORITY_RANK[self.min_priority]


class QuietHours(_Config):
    start: time = Field(description="Local start time, e.g. '22:00'.")
    end: time = Field(description="Local end time, e.g. '07:00' (the next day if earlier).")
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS), description="Days on which a window starts."
    )
    categories: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Categories held back ('*': all). Critical alerts are never held back.",
    )
    channels: list[Id] | None = Field(
        default=None, description="Channels that are quiet (default: all of the site's)."
    )


class Snooze(_Config):
    category: Id = Field(description="Category to snooze; critical alerts ignore snoozes.")
    until: datetime = Field(description="Timezone-aware end of the snooze.")

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("snooze 'until' needs a timezone, e.g. 2025-01-01T08:00:00+01:00")
        return value.astimezone(UTC)


class EscalationConfig(_Config):
    after_s: float = Field(
        default=300.0, gt=0, description="Escalate an alert not acknowledged this long."
    )
    repeat_s: float = Field(
        default=300.0, gt=0, description="Then repeat to the secondary list this often."
    )
    channels: list[Id] = Field(
        min_length=1, description="Secondary contacts (caregiver, neighbour): channel names."
    )
    priorities: list[Priority] = Field(
        default_factory=lambda: list[Priority](["critical"]),
        description="Priorities that escalate.",
    )
    notify_clear: bool = Field(
        default=True, description="Tell the secondary list once an escalated alert is handled."
    )


class SiteConfig(_Config):
    timezone: str | None = Field(
        default=None, description="IANA zone for quiet hours and message times (default: host)."
    )
    channels: dict[Id, ChannelConfig] = Field(
        default_factory=dict, description="Named channels of this site."
    )
    routes: list[Route] = Field(default_factory=list, description="Which alerts go where.")
    quiet_hours: list[QuietHours] = Field(
        default_factory=list, description="Windows when non-critical alerts are held back."
    )
    snoozes: list[Snooze] = Field(
        default_factory=list, description="Category snoozes; never apply to critical alerts."
    )
    escalation: EscalationConfig | None = Field(
        default=None, description="Secondary contacts for unacknowledged alerts."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {value!r} (use an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _channels_exist(self) -> SiteConfig:
        names = set(self.channels)
        used = [name for route in self.routes for name in route.channels]
        used += [name for qh in self.quiet_hours for name in qh.channels or []]
        used += self.escalation.channels if self.escalation else []
        missing = sorted(set(used) - names)
        if missing:
            raise ValueError(f"unknown channel(s) {missing}; defined: {sorted(names)}")
        return self

    def zone(self) -> tzinfo:
        if self.timezone is not None:
            return ZoneInfo(self.timezone)
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC


class HomeAssistantConfig(_Config):
    enabled: bool = Field(default=True, description="Publish Home Assistant MQTT discovery.")
    prefix: str = Field(default="homeassistant", description="Discovery topic prefix.")
    instance: Id = Field(
        default="soundalert", description="Prefix of unique ids and discovery node ids."
    )
    sites: list[Id] = Field(
        default_factory=list, description="Sites announced at start (others once heard from)."
    )


class NotifierSettings(BrokerServiceSettings):
    client_id: str = Field(
        default="soundalert-notifier",
        description="MQTT client id; the broker keeps this id's session and queued alerts.",
    )
    tick_s: float = Field(default=1.0, gt=0, le=10, description="How often escalations run.")
    status_heartbeat_s: float = Field(
        default=15.0, gt=0, description="How often the service re-publishes its own status."
    )
    policy_file: Path | None = Field(
        default=None,
        description="The aggregator's policy YAML, for Home Assistant's category list "
        "(the shipped defaults when unset).",
    )
    homeassistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig, description="Home Assistant MQTT discovery."
    )
    sites: dict[Id, SiteConfig] = Field(
        default_factory=dict, description="Per site: channels, routes, quiet hours, escalation."
    )
    display_url: str | None = Field(
        default=None,
        description="Address of the alert display as the recipients reach it (e.g. "
        "http://hub.local:8080/). Messages then end with a link that opens the alert there; "
        "the token is not in the link (the display asks for it once per device).",
    )

    @field_validator("display_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("display_url must start with http:// or https://")
        return value

    @property
    def database(self) -> Path:
        return self.state_dir / "notifier.sqlite3"
