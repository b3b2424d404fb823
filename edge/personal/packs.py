"""Sound packs <-> learned sounds, and the set of sounds a node recognises. Pure (no MQTT).

:class:`SoundBook` is what an agent keeps: it takes the retained packs of its site as they
arrive (or their removal, an empty payload), refuses bad ones with a reason from
:class:`~schemas.decode.Reason` (``corrupt_weights``, ``wrong_embedding_model`` when the pack was
learned with another YAMNet than this node runs, ``unknown_schema_version``, ...), and matches a
window's embedding against every sound it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from edge.personal.learner import Learned, SoundModel, learn, match, sound_windows
from schemas.common import utc_now
from schemas.decode import Reason, Rejected, decode
from schemas.messages import Priority, Source
from schemas.soundpack import EmbeddingSpec, LearnRequest, SoundPack, Weights, encode_matrix
from schemas.topics import ParsedTopic

__all__ = [
    "PERSONAL_MODEL",
    "SoundBook",
    "learn_from_windows",
    "model_of",
    "pack_of",
    "personal_source",
]

log = logging.getLogger(__name__)

PERSONAL_MODEL: Final = "soundalert-personal"
_TRUNCATE: Final = 200
_EXAMPLES_FROM_ONE_SOUND: Final = 5


def personal_source() -> Source:
    return Source(kind="personal", model=PERSONAL_MODEL, version="1")


def pack_of(
    learned: Learned,
    *,
    site: str,
    node: str,
    title: str,
    version: int,
    embedding: EmbeddingSpec,
    priority: Priority = "normal",
    color: str | None = None,
    icon: str | None = None,
    at: datetime | None = None,
    named: tuple[str, float] | None = None,
) -> SoundPack:
    """The sound pack of a learned sound."""
    m = learned.model
    centre, protos, bg = (encode_matrix(m.centre[None, :]), encode_matrix(m.prototypes),
                          encode_matrix(m.background))  # fmt: skip
    digest = Weights(centre=centre, prototypes=protos, background=bg, sha256="0" * 64).digest()
    q = learned.quality
    quality: dict[str, float | int | str] = {"examples": q.examples, "windows": q.windows,
                                             "background_max": q.background_max}  # fmt: skip
    if q.leave_one_out is not None:
        quality["leave_one_out"] = round(q.leave_one_out, 3)
    if named is not None:  # YAMNet's own best label for the examples, and its mean score
        quality["yamnet_label"], quality["yamnet_score"] = named[0][:100], round(named[1], 3)
    extra = {k: v for k, v in (("color", color), ("icon", icon)) if v is not None}
    return SoundPack(
        site=site, sound=m.sound, title=title, version=version, learned_at=at or utc_now(),
        learned_on=node, embedding=embedding,
        weights=Weights(centre=centre, prototypes=protos, background=bg, sha256=digest),
        threshold=round(m.threshold, 4), margin=round(m.margin, 4), priority=priority,
        quality=quality, **extra,
    )  # fmt: skip


def model_of(pack: SoundPack) -> SoundModel:
    centre, prototypes, background = pack.matrices()
    return SoundModel(pack.sound, centre, prototypes, background, pack.threshold, pack.margin)


@dataclass(frozen=True)
class _Held:
    pack: SoundPack
    model: SoundModel


class SoundBook:
    """The learned sounds of one site that this node recognises."""

    def __init__(
        self,
        site: str,
        embedding: EmbeddingSpec,
        *,
        rejected: Callable[[str], None] | None = None,
    ) -> None:
        self.site = site
        self.embedding = embedding
        self._rejected = rejected
        self._held: dict[str, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    @property
    def packs(self) -> list[SoundPack]:
        return [h.pack for h in self._held.values()]

    def take(self, topic: ParsedTopic, payload: bytes) -> str | None:
        """Apply one retained message of ``<root>/<site>/sounds/<sound>``; returns what
        changed ('learned microwave v2', 'removed microwave') or None when refused."""
        sound = topic.category or ""
        if not payload:
            return f"removed {sound}" if self._held.pop(sound, None) is not None else None
        try:
            pack = decode(SoundPack, payload, topic)
            self._check_embedding(pack.embedding)
            model = model_of(pack)
        except Rejected as rejected:
            if self._rejected is not None:
                self._rejected(rejected.reason.value)
            log.warning("refused the sound pack on sounds/%s (%s): %s; payload %r", sound,
                        rejected.reason.value, rejected.detail, payload[:_TRUNCATE])  # fmt: skip
            return None
        self._held[sound] = _Held(pack, model)
        return f"learned {sound} v{pack.version}"

    def _check_embedding(self, spec: EmbeddingSpec) -> None:
        mine = self.embedding
        if (spec.model, spec.version, spec.dims) != (mine.model, mine.version, mine.dims):
            raise Rejected(Reason.WRONG_EMBEDDING_MODEL,
                           f"learned with {spec.model} {spec.version} ({spec.dims}-d); this "
                           f"node runs {mine.model} {mine.version} ({mine.dims}-d)")  # fmt: skip

    @property
    def models(self) -> dict[str, SoundModel]:
        return {sound: h.model for sound, h in self._held.items()}

    def version_of(self, sound: str) -> int:
        held = self._held.get(sound)
        return 0 if held is None else held.pack.version

    def match(self, embedding: npt.NDArray[np.float32]) -> tuple[str, float] | None:
        """The learned sound a window's embedding is, with its label score, or None."""
        if not self._held:
            return None
        return match([h.model for h in self._held.values()], embedding.reshape(1, -1))


def learn_from_windows(
    request: LearnRequest,
    embeddings: npt.NDArray[np.float32],
    levels: npt.NDArray[np.float32],
    background: npt.NDArray[np.float32],
    book: SoundBook,
) -> tuple[SoundPack, Learned]:
    """ "This was my ...": the sound pack learned from the windows a node kept of one sound
    (its windows of sound, in up to five chronological pieces, each an example).

    Raises ``ValueError`` when none of those windows holds the sound."""
    windows = sound_windows(embeddings, levels) if embeddings.size else embeddings
    if not windows.shape[0]:
        raise ValueError("this node kept no window of sound at that time (more than 10 "
                         "minutes ago, or too quiet)")  # fmt: skip
    pieces = np.array_split(windows, min(_EXAMPLES_FROM_ONE_SOUND, windows.shape[0]))
    learned = learn(request.sound, pieces, background, known=book.models)
    pack = pack_of(learned, site=request.site, node=request.node, title=request.title,
                   version=book.version_of(request.sound) + 1, embedding=book.embedding,
                   priority=request.priority)  # fmt: skip
    return pack, learned
