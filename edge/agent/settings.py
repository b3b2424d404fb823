"""Agent settings (config file keys, ``SOUNDALERT_<KEY>`` environment variables, or flags)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from edge.agent.models import DEFAULT_CHOICE, ModelChoice
from edge.agent.pipeline import PipelineConfig
from edge.agent.publisher import PATTERN_PRIORITY, Delivery, LinkTiming
from edge.outbox import Outbox
from schemas.common import ID_PATTERN, RESERVED_NODE_IDS
from schemas.topics import DEFAULT_ROOT
from soundalert.mqtt import BROKER_URL_HELP, BrokerUrl
from soundalert.settings import ServiceSettings

__all__ = ["AgentSettings", "NodeLinkSettings", "default_node_id"]

_ACK_TIMEOUT_MAX_S = 600.0


def default_node_id() -> str:
    """The host name, cut down to a valid node id."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64].strip("-")
    return name if name and name not in RESERVED_NODE_IDS else "agent"


class NodeLinkSettings(ServiceSettings):
    """What every node process (agent, serial bridge) needs to publish through its outbox."""

    broker: SecretStr = Field(
        default=SecretStr("mqtt://127.0.0.1:1883"),
        description=BROKER_URL_HELP,
    )
    topic_root: str = Field(default=DEFAULT_ROOT, description="Root of every soundalert topic.")
    site: str = Field(default="home", pattern=ID_PATTERN, description="Site id (the home).")
    state_dir: Path = Field(default=Path("state"), description="Directory for the outbox.")
    outbox_max_messages: int = Field(
        default=50_000, ge=1, description="Outbox bound (about 7 h of windows at 2 per second)."
    )
    outbox_sync: Literal["full", "normal"] = Field(
        default="full",
        description="full: fsync every event (survives power loss); normal: survives crashes.",
    )
    outbox_memory_messages: int = Field(
        default=5_000, ge=1,
        description="Events held in memory while the disk refuses to store them (full or "
        "failing); beyond it the oldest of lowest priority are dropped and counted.",
    )  # fmt: skip
    delivery: Delivery = Field(
        default="end-to-end",
        description="end-to-end: keep each event until the aggregator's ack covers it, sending "
        "it again after a reconnect or when acks stop advancing; broker: delete it on the "
        "broker's PUBACK (for aggregators that publish no acks).",
    )
    ack_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="End-to-end delivery: send outstanding events again when no ack advanced "
        "for this long (doubling, up to 10 min, while acks stay stuck).",
    )  # fmt: skip
    publish_batch: int = Field(
        default=32, ge=1, le=1000, description="Outbox messages in flight at once."
    )
    publish_timeout_s: float = Field(
        default=10.0, gt=0, description="Wait this long for a PUBACK before reconnecting."
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait between reconnection attempts."
    )
    heartbeat_s: float = Field(
        default=15.0, gt=0, le=3600, description="Seconds between status heartbeats."
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve Prometheus /metrics on this port."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address for /metrics.")

    @field_validator("broker")
    @classmethod
    def _broker_parses(cls, value: SecretStr) -> SecretStr:
        BrokerUrl.parse(value.get_secret_value())
        return value

    def open_outbox(self, path: Path) -> Outbox:
        """The node's outbox at ``path``; pattern detections are kept when the disk is full."""
        return Outbox(path, max_messages=self.outbox_max_messages, synchronous=self.outbox_sync,
                      memory_messages=self.outbox_memory_messages,
                      protected_priority=PATTERN_PRIORITY)  # fmt: skip

    def timing(self) -> LinkTiming:
        return LinkTiming(
            heartbeat_s=self.heartbeat_s,
            publish_batch=self.publish_batch,
            publish_timeout_s=self.publish_timeout_s,
            reconnect_max_s=self.reconnect_max_s,
            ack_timeout_s=self.ack_timeout_s,
            ack_timeout_max_s=max(_ACK_TIMEOUT_MAX_S, self.ack_timeout_s),
        )


class AgentSettings(NodeLinkSettings):
    node: str = Field(
        default_factory=default_node_id, pattern=ID_PATTERN, description="This node's id."
    )
    client_id: str | None = Field(
        default=None, description="MQTT client id; default soundalert-agent-<site>-<node>."
    )
    outbox_file: Path | None = Field(
        default=None, description="Outbox SQLite file; default <state_dir>/agent-<node>.outbox."
    )
    model: ModelChoice = Field(
        default=DEFAULT_CHOICE,
        description="Classifier: yamnet, mn04 (EfficientAT mn04_as) or both; see the README.",
    )
    model_file: Path | None = Field(
        default=None, description="TFLite YAMNet model; the shipped one when unset."
    )
    class_map_file: Path | None = Field(
        default=None, description="Class map CSV (index,mid,display_name); shipped when unset."
    )
    threads: int = Field(default=1, ge=1, le=16, description="Interpreter threads.")
    hop_s: float = Field(default=0.48, gt=0, le=3.9, description="Window hop, seconds.")
    gate_dbfs: float = Field(
        default=-70.0, ge=-120, le=0, description="Windows quieter than this skip inference."
    )
    top_k: int = Field(default=10, ge=1, le=64, description="Labels reported per window.")
    min_label_score: float = Field(
        default=0.05, ge=0, le=1, description="Labels scoring below this are not reported."
    )
    report_floor: float | None = Field(
        default=None, ge=0, le=1, description="Publish only windows whose best label reaches this."
    )
    features: bool = Field(default=False, description="Add log-mel bands, dominant frequency.")
    patterns: bool = Field(default=True, description="Run the T3/T4/520 Hz pattern detector.")

    @field_validator("node")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NODE_IDS:
            raise ValueError(f"node id {value!r} is reserved for site-level topics")
        return value

    @property
    def mqtt_client_id(self) -> str:
        return self.client_id or f"soundalert-agent-{self.site}-{self.node}"

    @property
    def outbox_path(self) -> Path:
        return self.outbox_file or self.state_dir / f"agent-{self.node}.outbox.sqlite3"

    def pipeline(self) -> PipelineConfig:
        return PipelineConfig(
            hop_s=self.hop_s,
            gate_dbfs=self.gate_dbfs,
            top_k=self.top_k,
            min_label_score=self.min_label_score,
            features=self.features,
            patterns=self.patterns,
        )
