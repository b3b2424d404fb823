"""Pure event-time confirmation: k-of-n weighted windows, sustained evidence, and an alert's
canonical fields.

Everything here is a function of the *set* of hits, never of their arrival order, which is
what makes a replayed or reordered stream give the same alert as live audio.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.aggregator.policy import Confirm
from services.aggregator.store import HitRow

__all__ = [
    "Canonical",
    "EpisodeHits",
    "Rule",
    "Sustained",
    "confirming_group",
    "group_of",
    "pooled_score",
    "sort_key",
]

_NO_LEVEL = -999.0


def sort_key(hit: HitRow) -> tuple[float, str]:
    return (hit.end, hit.event_id)


def confirming_group(hits: Sequence[HitRow], rule: Confirm) -> tuple[int, int] | None:
    """For one node's hits sorted by :func:`sort_key`: the earliest ``(first, last)`` index
    pair whose weights within ``rule.within_s`` of event time reach ``rule.windows`` or, with
    ``rule.mean_score``, whose ``rule.windows`` best scores average at least that."""
    if rule.mean_score is not None:
        return _pooled_group(hits, rule.windows, rule.within_s, rule.mean_score)
    total = 0
    lo = 0
    for hi, hit in enumerate(hits):
        total += hit.weight
        while hits[lo].end < hit.end - rule.within_s:
            total -= hits[lo].weight
            lo += 1
        if total >= rule.windows:
            return lo, hi
    return None


def pooled_score(scores: Sequence[float], k: int) -> float:
    """The mean of the ``k`` highest scores (missing ones count as 0)."""
    return sum(heapq.nlargest(k, scores)) / k


def _pooled_group(hits: Sequence[HitRow], k: int, within_s: float, mean: float
                  ) -> tuple[int, int] | None:  # fmt: skip
    lo = 0
    for hi, hit in enumerate(hits):
        while hits[lo].end < hit.end - within_s:
            lo += 1
        if pooled_score([h.score for h in hits[lo : hi + 1]], k) >= mean - 1e-9:
            return lo, hi
    return None


@dataclass(frozen=True, slots=True)
class Sustained:
    """Evidence that confirmed under ``base`` and still came ``after_s`` seconds (event time)
    after its first window: a sound that kept going, not a burst."""

    base: Confirm
    after_s: float


Rule = Confirm | Sustained


def group_of(hits: Sequence[HitRow], rule: Rule) -> tuple[int, int] | None:
    """For one node's hits sorted by :func:`sort_key`: the earliest ``(first, last)`` index
    pair that satisfies ``rule``."""
    if isinstance(rule, Confirm):
        return confirming_group(hits, rule)
    found = confirming_group(hits, rule.base)
    if found is None:
        return None
    lo = found[0]
    due = hits[lo].start + rule.after_s
    for hi in range(found[1], len(hits)):
        if hits[hi].end >= due:
            return lo, hi
    return None


def _defer(rule: Rule) -> float:
    return rule.defer_s if isinstance(rule, Confirm) else 0.0


@dataclass(frozen=True, slots=True)
class Canonical:
    """The order-independent description of an alert episode."""

    first_evidence_at: float
    raised_at: float
    confirmed_by: str
    nodes: tuple[tuple[str, float, float | None], ...]  # (node, best score, its level)
    evidence: tuple[str, ...]
    last_end: float

    @property
    def location(self) -> str:
        return self.nodes[0][0]

    @property
    def confidence(self) -> float:
        return self.nodes[0][1]


def _rank(
    best: dict[str, tuple[float, float | None]],
) -> tuple[tuple[str, float, float | None], ...]:
    return tuple(
        sorted(
            ((node, score, level) for node, (score, level) in best.items()),
            key=lambda item: (-item[1], -(item[2] if item[2] is not None else _NO_LEVEL), item[0]),
        )
    )


@dataclass
class EpisodeHits:
    """The hits of one alert episode, kept just large enough to stay exact.

    ``head`` holds, sorted, every hit up to the confirming window; later hits only update
    per-node maxima and the last end. Adding hits in any order yields the same
    :class:`Canonical` as adding the same set sorted. The evidence is the confirming group:
    the windows that, together, crossed the category's threshold.
    """

    rule: Rule
    max_evidence: int
    head: list[HitRow] = field(default_factory=list)
    best: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    last_end: float = float("-inf")
    ids: set[str] = field(default_factory=set)
    canon: Canonical | None = None

    def add(self, hit: HitRow) -> bool:
        """Add a hit; ``False`` if it was already part of the episode."""
        if hit.event_id in self.ids:
            return False
        self.ids.add(hit.event_id)
        current = self.best.get(hit.node)
        if current is None or (hit.score, hit.level or _NO_LEVEL) > (
            current[0],
            current[1] or _NO_LEVEL,
        ):
            self.best[hit.node] = (hit.score, hit.level)
        self.last_end = max(self.last_end, hit.end)
        bisect.insort(self.head, hit, key=sort_key)
        self.canon = self._summarise()
        return True

    def _summarise(self) -> Canonical | None:
        by_node: dict[str, list[HitRow]] = {}
        for hit in self.head:
            by_node.setdefault(hit.node, []).append(hit)
        found: tuple[float, str, list[HitRow]] | None = None  # (group end, node, group)
        for node, node_hits in by_node.items():
            span = group_of(node_hits, self.rule)
            if span is None:
                continue
            lo, hi = span
            if found is None or (node_hits[hi].end, node) < found[:2]:
                found = (node_hits[hi].end, node, node_hits[lo : hi + 1])
        if found is None:
            return None
        group_end, node, group = found
        # Hits after the confirming window can never be part of an earlier group again.
        while self.head[-1].end > group_end:
            self.head.pop()
        return Canonical(
            first_evidence_at=min(h.start for h in group),
            raised_at=group_end + _defer(self.rule),
            confirmed_by=node,
            nodes=_rank(self.best),
            evidence=tuple(h.event_id for h in group[-self.max_evidence :]),
            last_end=self.last_end,
        )
