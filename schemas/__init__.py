"""soundalert's public, versioned message contracts (pydantic v2) and MQTT topic layout."""

from schemas.common import ID_PATTERN, utc_now
from schemas.decode import MAX_PAYLOAD_BYTES, Reason, Rejected, decode
from schemas.messages import (
    Alert,
    AlertNode,
    CategoryState,
    ClassificationEvent,
    DeliveryAck,
    Feedback,
    Label,
    NodeStatus,
    Source,
)
from schemas.soundpack import PERSONAL_KIND, SoundPack
from schemas.topics import DEFAULT_ROOT, ParsedTopic, Topics

__all__ = [
    "DEFAULT_ROOT",
    "ID_PATTERN",
    "MAX_PAYLOAD_BYTES",
    "PERSONAL_KIND",
    "Alert",
    "AlertNode",
    "CategoryState",
    "ClassificationEvent",
    "DeliveryAck",
    "Feedback",
    "Label",
    "NodeStatus",
    "ParsedTopic",
    "Reason",
    "Rejected",
    "SoundPack",
    "Source",
    "Topics",
    "decode",
    "utc_now",
]
