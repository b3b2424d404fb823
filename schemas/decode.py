"""Decode and validate inbound payloads, classifying every rejection by reason.

This is the one place that decides why a message is bad, so that every service counts and
logs rejections the same way.
"""

from __future__ import annotations

import enum
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.messages import Alert, ClassificationEvent, DeliveryAck, Feedback, NodeStatus
from schemas.soundpack import LearnRequest, SoundPack
from schemas.topics import ParsedTopic

__all__ = ["MAX_PAYLOAD_BYTES", "Reason", "Rejected", "decode"]

MAX_PAYLOAD_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)

_SCHEMA_FAMILY = {
    ClassificationEvent: "soundalert.event/",
    NodeStatus: "soundalert.status/",
    Feedback: "soundalert.feedback/",
    Alert: "soundalert.alert/",
    DeliveryAck: "soundalert.ack/",
    SoundPack: "soundalert.soundpack/",
    LearnRequest: "soundalert.learn/",
}
_SCORE_ERRORS = frozenset({"finite_number", "greater_than_equal", "less_than_equal"})


class Reason(enum.StrEnum):
    """Bounded set of rejection reasons (used as a Prometheus label)."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    SCORE_OUT_OF_RANGE = "score_out_of_range"
    INVALID_ID = "invalid_id"
    TOPIC_MISMATCH = "topic_mismatch"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_ALERT = "unknown_alert"
    CLOCK_SKEW = "clock_skew"
    """Timestamps too far ahead of the receiver's clock: the sender's clock is wrong."""
    WRONG_EMBEDDING_MODEL = "wrong_embedding_model"
    """A sound pack learned with an embedding model this receiver does not run."""
    CORRUPT_WEIGHTS = "corrupt_weights"
    """A sound pack whose weights do not decode, do not match their sha256, or are not the
    unit vectors a learned sound is made of."""
    INTERNAL_ERROR = "internal_error"
    """Valid, but processing it failed; dead-lettered so that nothing else is held up."""


class Rejected(Exception):  # noqa: N818 - it is a verdict, not an error in our code
    """A payload that will not be processed, with a reason from :class:`Reason`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


_ID_FIELDS = frozenset({"site", "node", "event_id", "alert_id", "category"})
_ID_ERRORS = frozenset(
    {"string_pattern_mismatch", "string_too_long", "string_too_short", "value_error"}
)


def _classify(model: type[BaseModel], payload: bytes, exc: ValidationError) -> Rejected:
    """Pick the most specific reason among a payload's validation errors."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] in {"json_invalid", "json_type"}:
        return Rejected(Reason.MALFORMED_JSON, first["msg"])
    family = _SCHEMA_FAMILY.get(model, "")
    for err in errors:
        if err["loc"][:1] == ("schema",):
            got = _schema_value(payload)
            if isinstance(got, str) and family and got.startswith(family):
                return Rejected(Reason.UNKNOWN_SCHEMA_VERSION, f"schema {got!r} not supported")
    for err in errors:
        if "embedding:" in str(err["msg"]):
            return Rejected(Reason.WRONG_EMBEDDING_MODEL, str(err["msg"]))
        if err["loc"][:1] == ("weights",) or "weights:" in str(err["msg"]):
            return Rejected(Reason.CORRUPT_WEIGHTS, f"{_where(err['loc'])}: {err['msg']}")
    for err in errors:
        loc = err["loc"]
        is_score = bool(loc) and loc[-1] == "score" and err["type"] in _SCORE_ERRORS
        if is_score or err["type"] == "finite_number":
            return Rejected(Reason.SCORE_OUT_OF_RANGE, f"{_where(loc)}: {err['msg']}")
    for err in errors:
        loc = err["loc"]
        if loc and loc[-1] in _ID_FIELDS and err["type"] in _ID_ERRORS:
            return Rejected(Reason.INVALID_ID, f"{_where(loc)}: {err['msg']}")
    return Rejected(Reason.SCHEMA_VIOLATION, f"{_where(first['loc'])}: {first['msg']}")


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "payload"


def _schema_value(payload: bytes) -> Any:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    return doc.get("schema") if isinstance(doc, dict) else None


def decode(model: type[M], payload: bytes, topic: ParsedTopic | None = None) -> M:
    """Validate ``payload`` as ``model``; raise :class:`Rejected` with a reason otherwise.

    When ``topic`` is given, the payload's site (and node, where both have one) must agree
    with it.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected(Reason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        message = model.model_validate_json(payload)
    except ValidationError as exc:
        raise _classify(model, payload, exc) from None
    if topic is not None:
        site = getattr(message, "site", None)
        if site is not None and site != topic.site:
            raise Rejected(Reason.TOPIC_MISMATCH, f"payload site {site!r}, topic {topic.site!r}")
        node = getattr(message, "node", None)
        if topic.node is not None and node is not None and node != topic.node:
            raise Rejected(Reason.TOPIC_MISMATCH, f"payload node {node!r}, topic {topic.node!r}")
        sound = getattr(message, "sound", None)
        if topic.kind == "sound_pack" and sound != topic.category:
            raise Rejected(Reason.TOPIC_MISMATCH, f"payload sound {sound!r}, topic "
                           f"{topic.category!r}")  # fmt: skip
    return message
