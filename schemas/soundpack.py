"""The sound pack: a sound a node learned, shared with every node of its site. No audio.

Published retained on ``<root>/<site>/sounds/<sound>`` by the node that learned it (an empty
retained payload there removes the sound). Every agent of the site recognises it from then on
and reports it as ``source.kind = "personal"`` events with the label ``<sound>``; the aggregator
turns it into a policy category with the pack's title, priority, colour and icon.

What it carries is a small model over YAMNet's 1024-d window embeddings (see
:mod:`edge.personal.learner`): a centre, one unit prototype per example, a few unit background
centroids, and the open-set threshold. Each matrix is little-endian float16, base64, with the
sha256 of all three together, so a pack damaged in transit or by hand is refused
(``corrupt_weights``), as is one learned with another embedding model than the node runs
(``wrong_embedding_model``) or of an unknown contract version (``unknown_schema_version``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Annotated, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from schemas.common import EventId, Figures, Id, Message, NodeId, UtcDatetime
from schemas.messages import Priority

__all__ = [
    "EMBEDDING_MODELS",
    "MAX_BACKGROUND",
    "MAX_PROTOTYPES",
    "PERSONAL_KIND",
    "EmbeddingSpec",
    "LearnRequest",
    "SoundPack",
    "Weights",
    "decode_matrix",
    "encode_matrix",
]

PERSONAL_KIND: Final = "personal"
"""The source kind of events that name a learned sound."""
EMBEDDING_MODELS: Final = {"yamnet": 1024}
"""Embedding models a pack may be learned with, and their embedding length."""
MAX_PROTOTYPES: Final = 10
MAX_BACKGROUND: Final = 8
_UNIT_TOLERANCE: Final = 0.02
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
_NODE_KINDS: Final = frozenset({"events", "features", "status", "ack", "learn"})


def _not_a_topic_kind(value: str) -> str:
    if value in _NODE_KINDS:
        raise ValueError(f"sound id {value!r} is a topic name; choose another")
    return value


SoundId = Annotated[Id, AfterValidator(_not_a_topic_kind)]
Base64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]*={0,2}$", max_length=40_000)]


def encode_matrix(matrix: npt.ArrayLike) -> str:
    return base64.b64encode(np.asarray(matrix, dtype="<f2").tobytes()).decode()


def decode_matrix(text: str, dims: int) -> npt.NDArray[np.float32]:
    """(rows, dims) float32 from base64 float16; ``ValueError`` when it is not that."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None
    if len(raw) % (2 * dims):
        raise ValueError(f"{len(raw)} bytes is not a whole number of {dims}-d float16 rows")
    out = np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(-1, dims)
    if not np.isfinite(out).all():
        raise ValueError("not finite")
    return out


class EmbeddingSpec(Message):
    model: str = Field(min_length=1, max_length=50, description="Embedding model: 'yamnet'.")
    version: str = Field(
        min_length=1, max_length=50, description="The model file's version (sha256 prefix)."
    )
    dims: int = Field(ge=1, le=4096, description="Embedding length (1024 for YAMNet).")


class Weights(Message):
    """The learned model's matrices: float16, little-endian, base64."""

    dtype: Literal["float16"] = "float16"
    centre: Base64 = Field(description="(dims,) subtracted from every embedding first.")
    prototypes: Base64 = Field(description="(k, dims) unit rows, one per example, k <= 10.")
    background: Base64 = Field(description="(b, dims) unit background centroids, b <= 8.")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 of the three decoded byte strings."
    )

    def digest(self) -> str:
        parts = (base64.b64decode(getattr(self, n)) for n in ("centre", "prototypes",
                                                               "background"))  # fmt: skip
        return hashlib.sha256(b"".join(parts)).hexdigest()


class SoundPack(Message):
    """One learned sound of one site (see the module's doc)."""

    schema_: Literal["soundalert.soundpack/1"] = Field(
        default="soundalert.soundpack/1", alias="schema", description="Contract and version."
    )
    site: Id
    sound: SoundId = Field(description="The sound's id: its event label and policy category.")
    title: str = Field(min_length=1, max_length=200, description="What a person reads.")
    version: int = Field(ge=1, le=1_000_000, description="Bumped by every re-training.")
    learned_at: UtcDatetime
    learned_on: NodeId = Field(description="The node whose microphone heard the examples.")
    embedding: EmbeddingSpec
    weights: Weights
    threshold: float = Field(ge=0.0, le=1.0, description="Minimum cosine to a prototype.")
    margin: float = Field(
        ge=0.0, le=1.0, description="...and by how much it must beat the background's."
    )
    priority: Priority = Field(default="normal", description="The alert's priority.")
    color: Colour = Field(default="#1f4e9c", description="Display and light colour.")
    icon: str = Field(default="bell", min_length=1, max_length=40, description="Display icon.")
    quality: Figures = Field(
        default_factory=dict, max_length=16,
        description="Enrolment figures: examples, windows, leave_one_out, background_max.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _weights_are_whole(self) -> SoundPack:
        dims = self.embedding.dims
        if EMBEDDING_MODELS.get(self.embedding.model) != dims:
            known = ", ".join(f"{m} ({d}-d)" for m, d in EMBEDDING_MODELS.items())
            raise ValueError(f"embedding: learned with {self.embedding.model!r} ({dims}-d); "
                             f"known: {known}")  # fmt: skip
        w = self.weights
        try:
            centre = decode_matrix(w.centre, dims)
            prototypes = decode_matrix(w.prototypes, dims)
            background = decode_matrix(w.background, dims)
        except ValueError as exc:
            raise ValueError(f"weights: {exc}") from None
        if w.digest() != w.sha256:
            raise ValueError("weights: sha256 does not match (corrupt)")
        if centre.shape[0] != 1:
            raise ValueError("weights: centre must be one row")
        if not 1 <= prototypes.shape[0] <= MAX_PROTOTYPES:
            raise ValueError(f"weights: 1 to {MAX_PROTOTYPES} prototypes")
        if background.shape[0] > MAX_BACKGROUND:
            raise ValueError(f"weights: at most {MAX_BACKGROUND} background centroids")
        for name, rows in (("prototypes", prototypes), ("background", background)):
            if rows.size and np.abs(np.linalg.norm(rows, axis=1) - 1).max() > _UNIT_TOLERANCE:
                raise ValueError(f"weights: {name} rows must be unit vectors")
        return self

    def matrices(self) -> tuple[npt.NDArray[np.float32], ...]:
        """(centre (dims,), prototypes (k, dims), background (b, dims)), float32."""
        dims = self.embedding.dims
        w = self.weights
        return (decode_matrix(w.centre, dims)[0], decode_matrix(w.prototypes, dims),
                decode_matrix(w.background, dims))  # fmt: skip


class LearnRequest(Message):
    """ "This was my ...": learn a sound from what one node heard between two times.

    Published (not retained) on ``<root>/<site>/<node>/learn`` by the display; the node learns
    from the embeddings it kept of those windows (a rolling buffer of its recent windows:
    embeddings, never audio) and publishes the sound pack like ``soundalert sounds learn``."""

    schema_: Literal["soundalert.learn/1"] = Field(default="soundalert.learn/1", alias="schema")
    request_id: EventId
    site: Id
    node: NodeId = Field(description="The node that heard the sound.")
    sound: SoundId
    title: str = Field(min_length=1, max_length=200)
    heard_from: UtcDatetime = Field(description="Event time the sound began (its alert's).")
    heard_to: UtcDatetime = Field(description="...and ended.")
    priority: Priority = "normal"
    by: str = Field(default="", max_length=64, description="Who asked.")
    at: UtcDatetime

    @model_validator(mode="after")
    def _ordered(self) -> LearnRequest:
        span = (self.heard_to - self.heard_from).total_seconds()
        if not 0 <= span <= 600:
            raise ValueError(f"heard_to - heard_from is {span:.0f} s, not 0 to 600 s")
        return self
