"""Web display settings (config file keys, or ``SOUNDALERT_<KEY>`` environment variables)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from edge.agent.publisher import Delivery
from schemas.common import ID_PATTERN
from services.web.agent import check_ws_url
from soundalert.settings import BrokerServiceSettings

__all__ = ["MIN_TOKEN_CHARS", "WebSettings"]

MIN_TOKEN_CHARS = 16


class WebSettings(BrokerServiceSettings):
    client_id: str = Field(
        default="soundalert-web",
        description="MQTT client id; the broker queues alerts for this id while the display is "
        "down. Give each web instance its own.",
    )
    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - phones and wall displays on the home network connect
        description="Address the HTTP server listens on.",
    )
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0: any free port).")
    token: SecretStr | None = Field(
        default=None,
        description="Access token for every site this display serves (sent as "
        "'Authorization: Bearer <token>'). When neither token nor site_tokens is set, a random "
        "token is generated at start and logged with the page address.",
    )
    site_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Per-site access tokens: site id -> token. A site token only sees and "
        "acknowledges that site's alerts.",
    )
    policy_file: Path | None = Field(
        default=None,
        description="Alert policy YAML, for category titles, colours and icons; the shipped "
        "defaults when unset.",
    )
    history_days: float = Field(
        default=90.0, gt=0, description="Alerts older than this are pruned from the history."
    )
    stream_ticket_s: float = Field(
        default=60.0, gt=0, le=3600, description="How long a live-stream ticket can be redeemed."
    )
    keepalive_s: float = Field(
        default=15.0, gt=0, le=300, description="Seconds between keep-alives on the live stream."
    )
    agent_broker_ws: str | None = Field(
        default=None,
        description="MQTT-over-WebSocket URL the phone agent page (/agent) publishes to, e.g. "
        "wss://hub.example/mqtt or ws://{host}:9001/ ({host}: the host name the page was opened "
        "with). Unset: /agent says that no broker websocket is configured.",
    )
    agent_broker_username: str | None = Field(
        default=None, description="MQTT user name handed to phone agents that hold a valid token."
    )
    agent_broker_password: SecretStr | None = Field(
        default=None, description="MQTT password handed to phone agents that hold a valid token."
    )
    agent_delivery: Delivery = Field(
        default="end-to-end",
        description="How phone agents deliver: end-to-end keeps each event in the phone's "
        "IndexedDB until the aggregator's ack covers it (sent again after a reconnect, a reload, "
        "or when acks stop advancing); broker deletes it on the broker's PUBACK.",
    )
    agent_ack_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="Phone agents send outstanding events again when no ack advanced for this "
        "long (doubling, up to 10 min, while acks stay stuck).",
    )  # fmt: skip
    agent_heartbeat_s: float = Field(
        default=15.0, gt=0, le=300, description="Seconds between a phone agent's status heartbeats."
    )
    agent_keepalive_s: int = Field(
        default=20,
        ge=5,
        le=300,
        description="MQTT keep-alive of phone agents: the broker fires their last will about "
        "1.5 x this after a phone goes silent without closing its socket.",
    )

    @field_validator("agent_broker_ws")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        return None if value is None else check_ws_url(value)

    @field_validator("token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"the token must have at least {MIN_TOKEN_CHARS} characters")
        return value

    @field_validator("site_tokens")
    @classmethod
    def _site_tokens_valid(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for site, token in value.items():
            if not re.fullmatch(ID_PATTERN, site):
                raise ValueError(f"site id {site!r} does not match {ID_PATTERN}")
            if len(token.get_secret_value()) < MIN_TOKEN_CHARS:
                raise ValueError(f"the token of site {site!r} is shorter than {MIN_TOKEN_CHARS}")
        return value

    @property
    def database(self) -> Path:
        return self.state_dir / "web.sqlite3"
