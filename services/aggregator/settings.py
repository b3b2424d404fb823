"""Aggregator settings (config file keys, or ``SOUNDALERT_<KEY>`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from soundalert.settings import BrokerServiceSettings

__all__ = ["AggregatorSettings"]


class AggregatorSettings(BrokerServiceSettings):
    client_id: str = Field(
        default="soundalert-aggregator",
        description="MQTT client id; the broker keeps this id's session and queued messages.",
    )
    policy_file: Path | None = Field(
        default=None, description="Alert policy YAML; the shipped defaults when unset."
    )
    metrics_every_s: float | None = Field(
        default=None,
        gt=0,
        description="While /metrics is scraped, render it this often in a forked child and "
        "serve the latest rendering, so a scrape never holds the GIL against event handling "
        "(for thousands of nodes; values are then up to a scrape interval plus this old). "
        "Unset: rendered on each request in a thread of the service, which at 10,000 nodes "
        "stalls event handling.",
    )
    tick_s: float = Field(
        default=1.0, gt=0, le=10, description="How often supervision and reminders run."
    )
    status_heartbeat_s: float = Field(
        default=15.0, gt=0, description="How often the service re-publishes its own status."
    )
    retention_days: float = Field(
        default=90.0,
        gt=0,
        le=36500,
        description="Keep the event log, closed alerts (with their history, evidence and "
        "feedback), late events and dead letters this long; open alerts are kept however old.",
    )
    review_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How often each node's false-alarm ratio over the last day is recomputed.",
    )
    ack_interval_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="At most one delivery ack per node this often (nodes delete their events "
        "once acknowledged; acks are retained, so a later one covers what an earlier said).",
    )

    database_url: str | None = Field(
        default=None,
        description="postgresql://user@host/dbname: keep the state in PostgreSQL (the hosted "
        "mode, needs the 'hosted' extra) instead of SQLite in state_dir. A home leaves it unset.",
    )
    database_schema: str = Field(
        default="public",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The PostgreSQL schema holding this aggregator's tables (one per partition "
        "in the hosted mode).",
    )

    @property
    def database(self) -> Path:
        return self.state_dir / "aggregator.sqlite3"
