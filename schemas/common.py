"""Shared building blocks for every soundalert message: ids, UTC timestamps, base config."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

__all__ = [
    "ID_PATTERN",
    "RESERVED_NODE_IDS",
    "EventId",
    "Id",
    "Message",
    "NodeId",
    "UtcDatetime",
    "utc_now",
]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Site, node and category ids: safe in MQTT topics, file names and Prometheus labels."""

RESERVED_NODE_IDS = frozenset({"alerts", "feedback"})
"""Topic levels the site namespace uses itself; a node may not take these names."""


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _not_reserved(value: str) -> str:
    if value in RESERVED_NODE_IDS:
        raise ValueError(f"node id {value!r} is reserved for site-level topics")
    return value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
NodeId = Annotated[Id, AfterValidator(_not_reserved)]
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware timestamp, normalised to UTC. Naive timestamps are rejected."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every wire message: frozen, no unknown fields, finite numbers only."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()
