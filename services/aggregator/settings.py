"""Aggregator settings (config file keys, or ``SOUNDALERT_<KEY>`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from schemas.topics import DEFAULT_ROOT
from soundalert.mqtt import BrokerUrl
from soundalert.settings import ServiceSettings

__all__ = ["AggregatorSettings"]


class AggregatorSettings(ServiceSettings):
    broker: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker URL: mqtt://[user[:password]@]host[:port][?version=5].",
    )
    topic_root: str = Field(default=DEFAULT_ROOT, description="Root of every soundalert topic.")
    client_id: str = Field(
        default="soundalert-aggregator",
        description="MQTT client id; the broker keeps this id's session and queued messages.",
    )
    state_dir: Path = Field(default=Path("state"), description="Directory for the SQLite state.")
    policy_file: Path | None = Field(
        default=None, description="Alert policy YAML; the shipped defaults when unset."
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve Prometheus /metrics on this port."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address for /metrics.")
    tick_s: float = Field(
        default=1.0, gt=0, le=10, description="How often supervision and reminders run."
    )
    status_heartbeat_s: float = Field(
        default=15.0, gt=0, description="How often the service re-publishes its own status."
    )

    @field_validator("broker")
    @classmethod
    def _broker_parses(cls, value: str) -> str:
        BrokerUrl.parse(value)
        return value

    @property
    def database(self) -> Path:
        return self.state_dir / "aggregator.sqlite3"
