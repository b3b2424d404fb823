"""The v1 wire contract: every MQTT payload soundalert publishes or accepts.

Field names are fixed by the public contract; new optional fields may be added within a major
version, anything else bumps the ``schema`` string.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import (
    MAX_SAFE_INT,
    EventId,
    Figures,
    Id,
    JsonObject,
    Message,
    NodeId,
    UtcDatetime,
)

__all__ = [
    "TRANSIENT",
    "Alert",
    "AlertNode",
    "AlertState",
    "CategoryState",
    "ClassificationEvent",
    "DeliveryAck",
    "Feedback",
    "Label",
    "NodeState",
    "NodeStatus",
    "Priority",
    "Source",
    "Verdict",
]

TRANSIENT = "transient"
"""A ``NodeStatus`` capability: the node replays a recording and ends by itself (its end is
no news: it is not supervised)."""

Score = Annotated[float, Field(ge=0.0, le=1.0, description="Model score in [0, 1].")]
Dbfs = Annotated[float, Field(ge=-200.0, le=6.0, description="Level in dB relative to full scale.")]
Priority = Literal["critical", "high", "normal"]
AlertState = Literal["raised", "updated", "resolved", "acknowledged", "false_alarm"]
NodeState = Literal["online", "offline", "stopped"]
Verdict = Literal["acknowledged", "confirmed", "false_alarm"]

MAX_WINDOW_SECONDS = 60.0


class Label(Message):
    label: str = Field(min_length=1, max_length=200, description="The model's own label name.")
    score: Score


class Source(Message):
    kind: Id = Field(description="Label namespace: 'yamnet', 't3t4' (DSP detector), ...")
    model: str = Field(min_length=1, max_length=100, description="Model name.")
    version: str = Field(min_length=1, max_length=50, description="Model version.")


class ClassificationEvent(Message):
    """One analysed audio window from one node."""

    schema_: Literal["soundalert.event/1"] = Field(
        default="soundalert.event/1", alias="schema", description="Contract name and version."
    )
    event_id: EventId = Field(description="Unique, stable across retries and replays.")
    site: Id
    node: NodeId
    seq: int = Field(
        ge=0, le=MAX_SAFE_INT, description="Per-node sequence number; increases by one per event."
    )
    window_start: UtcDatetime = Field(description="Event time (audio clock) of the window start.")
    window_end: UtcDatetime = Field(description="Event time (audio clock) of the window end.")
    source: Source
    labels: list[Label] = Field(max_length=64, description="Top labels, model's own names.")
    level_dbfs: Dbfs | None = Field(default=None, description="Window RMS level.")
    features: JsonObject = Field(
        default_factory=dict, description="Optional features: band energies, detector flags."
    )

    @model_validator(mode="after")
    def _window_is_ordered(self) -> ClassificationEvent:
        span = (self.window_end - self.window_start).total_seconds()
        if span < 0:
            raise ValueError("window_end is before window_start")
        if span > MAX_WINDOW_SECONDS:
            raise ValueError(f"window spans {span:.1f} s, more than {MAX_WINDOW_SECONDS:.0f} s")
        return self


class NodeStatus(Message):
    """Retained node status; also the node's MQTT last will (state ``offline``)."""

    schema_: Literal["soundalert.status/1"] = Field(default="soundalert.status/1", alias="schema")
    site: Id
    node: NodeId
    state: NodeState
    at: UtcDatetime = Field(description="When this status was produced (for a will: registered).")
    heartbeat_s: float = Field(gt=0, le=3600, description="Seconds between heartbeats.")
    software: str = Field(default="", max_length=100, description="Software name and version.")
    capabilities: list[str] = Field(
        default_factory=list, max_length=32,
        description="What the node does ('yamnet', 'patterns', ...); 'transient': a replay "
        "that ends by itself, not supervised.",
    )  # fmt: skip
    stats: Figures = Field(
        default_factory=dict, max_length=64,
        description="Heartbeat figures: mic level, inference time, drops.",
    )  # fmt: skip
    pending_from_seq: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INT,
        description="End-to-end delivery: the lowest event seq the node still holds (its next "
        "seq when it holds none). Every lower seq was acknowledged or given up, so the "
        "aggregator need not wait for it.",
    )  # fmt: skip
    next_seq: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INT,
        description="End-to-end delivery: the seq the node's next event will carry. An ack at "
        "or above it belongs to an earlier life of the node (its queue was wiped) and is "
        "ignored by the node; the aggregator then starts its count again.",
    )  # fmt: skip


class AlertNode(Message):
    node: NodeId
    score: Score
    level_dbfs: Dbfs | None = None


class Alert(Message):
    """One alert state change. The same ``alert_id`` carries an alert through its life."""

    schema_: Literal["soundalert.alert/1"] = Field(default="soundalert.alert/1", alias="schema")
    alert_id: EventId
    site: Id
    category: Id
    priority: Priority
    state: AlertState
    location: NodeId | None = Field(description="The node that heard it best.")
    nodes: list[AlertNode] = Field(default_factory=list)
    first_evidence_at: UtcDatetime | None = Field(description="Event time of the first evidence.")
    raised_at: UtcDatetime = Field(description="Event time of the confirming window's end.")
    published_at: UtcDatetime = Field(description="Wall-clock time of this publication.")
    confidence: Score
    evidence: list[EventId] = Field(default_factory=list)
    title: str = Field(default="", max_length=200, description="Human-readable category name.")
    delay_s: float | None = Field(
        default=None, description="Set when the alert is published long after the sound."
    )
    repeat: int = Field(
        default=0, ge=0, le=MAX_SAFE_INT, description="Reminder count for an unacknowledged alert."
    )
    ended_at: UtcDatetime | None = Field(default=None, description="Event time the sound ended.")
    by: str | None = Field(default=None, max_length=64, description="Who acknowledged it.")
    reason: str | None = Field(default=None, max_length=200, description="Why, for trouble alerts.")


class DeliveryAck(Message):
    """Retained per node, from the aggregator: every event of the node up to ``seq`` is
    committed to the aggregator's store. A node keeps each event until it is covered by an
    ack, so a broker that forgets what it acknowledged (a crash, a lost session) loses
    nothing: the node sends again what no ack covers, and the aggregator dedupes by event id."""

    schema_: Literal["soundalert.ack/1"] = Field(default="soundalert.ack/1", alias="schema")
    site: Id
    node: NodeId
    seq: int = Field(
        ge=-1, le=MAX_SAFE_INT, description="Highest contiguous seq stored; -1 when none."
    )
    at: UtcDatetime = Field(description="When the aggregator committed it.")


class Feedback(Message):
    schema_: Literal["soundalert.feedback/1"] = Field(
        default="soundalert.feedback/1", alias="schema"
    )
    alert_id: EventId
    verdict: Verdict
    by: str = Field(min_length=1, max_length=64)
    at: UtcDatetime
    site: Id | None = Field(default=None, description="If given, must match the topic's site.")


class CategoryState(Message):
    """Retained per site and category: is anything of this category active right now."""

    schema_: Literal["soundalert.category_state/1"] = Field(
        default="soundalert.category_state/1", alias="schema"
    )
    site: Id
    category: Id
    active: bool
    active_alerts: list[EventId] = Field(default_factory=list)
    latest: Alert | None = None
    at: UtcDatetime
