"""Shared building blocks for every soundalert message: ids, UTC timestamps, base config."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

__all__ = [
    "ID_PATTERN",
    "MAX_SAFE_INT",
    "RESERVED_NODE_IDS",
    "EventId",
    "Figures",
    "Id",
    "JsonObject",
    "Message",
    "NodeId",
    "UtcDatetime",
    "utc_now",
]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Site, node and category ids: safe in MQTT topics, file names and Prometheus labels."""

RESERVED_NODE_IDS = frozenset({"alerts", "feedback", "sounds"})
"""Topic levels the site namespace uses itself; a node may not take these names."""

MAX_SAFE_INT = 2**53 - 1
"""The largest integer every consumer holds exactly: JavaScript's Number.MAX_SAFE_INTEGER, well
inside SQLite's signed 64-bit INTEGER. Every integer on the wire stays within +/- this bound."""

_MAX_JSON_DEPTH = 8


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _not_reserved(value: str) -> str:
    if value in RESERVED_NODE_IDS:
        raise ValueError(f"node id {value!r} is reserved for site-level topics")
    return value


def _bounded_json(value: Any, depth: int = 0) -> None:
    """Free-form JSON (features, figures) holds only numbers every consumer can store."""
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise ValueError(f"integer {value} is outside +/-(2^53 - 1)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for item in value.values():
            _bounded_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _bounded_json(item, depth + 1)


def _check_json(value: dict[str, Any]) -> dict[str, Any]:
    _bounded_json(value)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]
"""A free-form JSON object whose numbers are finite and within :data:`MAX_SAFE_INT`."""
Figures = Annotated[dict[str, float | int | str], AfterValidator(_check_json)]
"""Named figures (a heartbeat's stats), bounded as :data:`JsonObject`."""

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
