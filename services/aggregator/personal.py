"""Learned sounds as policy categories. Pure: sound packs in, a policy out.

Every retained sound pack of a site (``<root>/<site>/sounds/<sound>``, see
:mod:`schemas.soundpack`) becomes a category named after its sound, with the title, priority,
colour and icon the person chose, counting the ``personal`` label of that name: one window
recognised as the sound confirms it (the node's threshold already decided). An empty retained
payload removes the sound, and its category with it.

Categories are global in the policy: when two sites learn a sound of the same id, the category
takes the title, priority, colour and icon of the pack received last; each site still raises
only what its own nodes hear.
"""

from __future__ import annotations

from typing import Final

from schemas.decode import Reason, Rejected, decode
from schemas.soundpack import PERSONAL_KIND, SoundPack
from schemas.topics import ParsedTopic
from services.aggregator.policy import CategoryPolicy, Confirm, LabelRule, Policy

__all__ = ["LearnedSounds", "category_of"]

CRITICAL_REPEAT_S: Final = 60.0
"""A learned sound marked critical repeats until acknowledged, every minute."""


def category_of(pack: SoundPack) -> CategoryPolicy:
    return CategoryPolicy(
        title=pack.title,
        priority=pack.priority,
        labels={PERSONAL_KIND: {pack.sound: LabelRule(threshold=0.5)}},
        confirm=Confirm(windows=1, within_s=3.0),
        hold_s=6.0,
        cooldown_s=30.0,
        escalation_interval_s=CRITICAL_REPEAT_S if pack.priority == "critical" else None,
        color=pack.color,
        icon=pack.icon,
    )


class LearnedSounds:
    """The sound packs the aggregator holds, and the policy they make with the base one."""

    def __init__(self, base: Policy) -> None:
        self.base = base
        self._packs: dict[tuple[str, str], SoundPack] = {}

    def __len__(self) -> int:
        return len(self._packs)

    def take(self, topic: ParsedTopic, payload: bytes) -> Policy | None:
        """Apply one message on a sound-pack topic; the new policy when it changed, None when
        nothing did. Raises :class:`~schemas.decode.Rejected` for a bad pack."""
        key = (topic.site, topic.category or "")
        if not payload:
            return self.policy() if self._packs.pop(key, None) is not None else None
        pack = decode(SoundPack, payload, topic)
        if pack.sound in self.base.categories:
            raise Rejected(Reason.SCHEMA_VIOLATION, f"sound {pack.sound!r} is a built-in "
                           "category; learn it under another name")  # fmt: skip
        if self._packs.get(key) == pack:
            return None
        self._packs[key] = pack
        return self.policy()

    def policy(self) -> Policy:
        learned = {pack.sound: category_of(pack) for pack in self._packs.values()}
        return self.base.model_copy(update={"categories": {**self.base.categories, **learned}})
