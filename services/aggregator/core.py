"""The aggregator core: pure, synchronous fusion of classification events into alerts.

No MQTT and no clock reads here: the shell passes the wall-clock time in, so every rule can
be tested, property-tested and replayed without I/O. State lives in :class:`Store` (SQLite);
the shell commits before it publishes what the core returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.decode import Reason, Rejected
from schemas.messages import (
    TRANSIENT,
    Alert,
    AlertNode,
    CategoryState,
    ClassificationEvent,
    Feedback,
    NodeStatus,
    Priority,
)
from services.aggregator.confirm import EpisodeHits, Rule, Sustained, confirming_group, sort_key
from services.aggregator.index import SiteIndex
from services.aggregator.metrics import NODE_REVIEWS_MIN, AggregatorMetrics
from services.aggregator.policy import CategoryPolicy, LabelRule, Policy
from services.aggregator.store import AlertRow, HitRow, NodeRow, Store

__all__ = [
    "NODE_OFFLINE",
    "NODE_ONLINE",
    "NODE_STOPPED",
    "STORAGE_TROUBLE",
    "UNANNOUNCED",
    "Aggregator",
]

log = logging.getLogger(__name__)

NODE_OFFLINE = "node_offline"
NODE_ONLINE = "node_online"
NODE_STOPPED = "node_stopped"
"""A node stopped on purpose: a normal-priority notice, never an active alert."""
UNANNOUNCED = "unannounced"
"""The state of a node that sent events but never a status: it promised no heartbeats, so
it is not supervised (a one-off ``mosquitto_pub`` is not a sensor that died)."""
STORAGE_TROUBLE = "storage_trouble"
_RECENT_IDS = 200_000
CLOCK_EXPORT_S = 1.0
"""A node's clock offset is a metric series only when it is this far off."""
_MAX_SEQS_ABOVE = 4096
"""Stored seqs kept above a gap in a node's sequence. A node with end-to-end delivery fills a
gap by sending again (or gives it up in its status's ``pending_from_seq``); one without it
never does, and its acknowledgement then moves on past the gap."""


_RESTORED = -1.0
"""``_waiting`` mark of a category confirmed before a restart (see _forget_stale_restored)."""


def _room(node: str) -> str:
    """A node id as a person reads it: ``living_room`` -> ``Living room``."""
    words = node.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class Episode:
    """An active alert for one (site, category)."""

    alert_id: str
    site: str
    category: str
    hits: EpisodeHits
    last_evidence_wall: float
    last_notice_wall: float
    state: str = "raised"
    repeat: int = 0
    acked_by: str | None = None
    ended_at: float | None = None
    delay_s: float | None = None
    reason: str | None = None
    published: tuple[object, ...] = field(default_factory=tuple)
    upgraded_from: str | None = None
    sustain: EpisodeHits | None = None
    """For a category with an upgrade: the same hits under its Sustained rule."""

    def internal(self) -> dict[str, object]:
        return {
            "last_evidence_wall": self.last_evidence_wall,
            "last_notice_wall": self.last_notice_wall,
            "repeat": self.repeat,
            "acked_by": self.acked_by,
            "ended_at": self.ended_at,
            "delay_s": self.delay_s,
            "reason": self.reason,
            "upgraded_from": self.upgraded_from,
        }


class Aggregator:
    """Fuses events from every node of every site into alerts. Single-threaded."""

    def __init__(self, policy: Policy, store: Store, metrics: AggregatorMetrics) -> None:
        self.policy = policy
        self.store = store
        self.metrics = metrics
        self._index: dict[tuple[str, str], list[tuple[str, LabelRule]]] = policy.label_index()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._nodes: SiteIndex[NodeRow] = SiteIndex()
        self._dirty: set[tuple[str, str]] = set()
        self._pending: dict[tuple[str, str], dict[str, list[HitRow]]] = {}
        self._active: SiteIndex[Episode] = SiteIndex()
        self._cooldown: dict[tuple[str, str], float] = {}
        # Confirmed but not raised yet (deferred, or held by a suppressor): wall time since.
        self._waiting: SiteIndex[float] = SiteIndex()
        # Nodes whose delivery acknowledgement should be (re)published after the next commit.
        self._ack_due: set[tuple[str, str]] = set()
        # Open "cannot save its state" alerts, by site.
        self._trouble: dict[str, str] = {}
        self._false_alarm_nodes: set[tuple[str, str]] = set()
        # Nodes whose last status said "transient" (a file replay): their end is no news.
        self._transient: set[tuple[str, str]] = set()
        metrics.expect_categories({name: c.priority for name, c in policy.categories.items()})
        self._load()

    # -- start-up ----------------------------------------------------------------------------
    def _load(self) -> None:
        """Rebuild every in-memory index from the store (at start-up, and after a message
        whose processing failed was rolled back)."""
        for node in self.store.nodes():
            self._nodes[(node.site, node.node)] = node
            self.metrics.node_up.labels(node.site, node.node).set(
                1 if node.state == "online" else 0
            )
            self._export_offset(node)
        self._cooldown = self.store.cooldowns()
        for hit, _ in self.store.hits(alert_id=None):
            pending = self._pending.setdefault((hit.site, hit.category), {})
            pending.setdefault(hit.node, []).append(hit)
            self._remember(hit.event_id)
        active: dict[str, int] = dict.fromkeys([*self.policy.categories, NODE_OFFLINE,
                                                STORAGE_TROUBLE], 0)  # fmt: skip
        for key, by_node in self._pending.items():
            cat = self.policy.categories.get(key[1])
            if cat is not None and any(confirming_group(h, cat.confirm) for h in by_node.values()):
                # Confirmed, not raised: the next tick decides (_forget_stale_restored).
                self._waiting[key] = _RESTORED
        for row in self.store.alerts(active=True):
            active[row.category] = active.get(row.category, 0) + 1
            if row.category == STORAGE_TROUBLE:
                self._trouble[row.site] = row.alert_id
            if row.category in {NODE_OFFLINE, STORAGE_TROUBLE}:
                continue
            cat = self.policy.categories.get(row.category)
            if cat is None:
                log.warning("active alert %s has category %r, no longer in the policy; closing",
                            row.alert_id, row.category)  # fmt: skip
                row.active = False
                self.store.save_alert(row)
                active[row.category] -= 1
                continue
            state = row.internal
            upgraded_from = state.get("upgraded_from")
            hits = EpisodeHits(self._rule(row.category, upgraded_from), self.policy.max_evidence)
            sustain = self._sustain_tracker(cat) if state.get("acked_by") is None else None
            for hit, _ in self.store.hits(alert_id=row.alert_id):
                hits.add(hit)
                if sustain is not None:
                    sustain.add(hit)
                self._remember(hit.event_id)
            self._active[(row.site, row.category)] = Episode(
                alert_id=row.alert_id,
                site=row.site,
                category=row.category,
                hits=hits,
                last_evidence_wall=float(state["last_evidence_wall"]),
                last_notice_wall=float(state["last_notice_wall"]),
                state=row.state,
                repeat=int(state["repeat"]),
                acked_by=state.get("acked_by"),
                ended_at=state.get("ended_at"),
                delay_s=state.get("delay_s"),
                reason=state.get("reason"),
                published=self._signature_of(hits),
                upgraded_from=upgraded_from,
                sustain=sustain,
            )
        for category, count in active.items():
            self.metrics.active_alerts.labels(category).set(count)

    def _forget_stale_restored(self, now: float) -> None:
        """Evidence confirmed before a restart and never raised: a smoke or CO alarm is still
        raised (late, with its delay), but a lesser sound that ended before this run began is
        history, not news (a restart raised "Possible smoke alarm ... heard 389 s before")."""
        for key, since in list(self._waiting.items()):
            if since != _RESTORED:
                continue
            cat = self.policy.categories[key[1]]
            newest = max((h.end for hits in self._pending.get(key, {}).values() for h in hits),
                         default=0.0)  # fmt: skip
            if (
                cat.priority != "critical"
                and now - newest > cat.hold_s + self.policy.reorder_bound_s
            ):
                log.info("not raising %s at %s from evidence heard %.0f s before this run",
                         key[1], key[0], now - newest)  # fmt: skip
                del self._waiting[key]
            else:
                self._waiting[key] = now - self.policy.reorder_bound_s  # due now

    def _rule(self, category: str, upgraded_from: str | None = None) -> Rule:
        """How an alert of ``category`` confirms: its own rule, or, for one raised by an
        upgrade, the sustained rule of the category it came from."""
        source = self.policy.categories.get(upgraded_from) if upgraded_from else None
        if source is not None and source.upgrade is not None:
            return Sustained(source.confirm, source.upgrade.after_s)
        return self.policy.categories[category].confirm

    def _sustain_tracker(self, cat: CategoryPolicy) -> EpisodeHits | None:
        if cat.upgrade is None:
            return None
        return EpisodeHits(Sustained(cat.confirm, cat.upgrade.after_s), self.policy.max_evidence)

    # -- events ------------------------------------------------------------------------------
    def handle_event(self, event: ClassificationEvent, now: float) -> list[Alert]:
        event_id = event.event_id
        start = event.window_start.timestamp()
        end = event.window_end.timestamp()
        node = self._node(event.site, event.node, now)
        ahead = end - now
        if ahead > self.policy.max_clock_ahead_s:
            # Judged against our clock, never the node's: letting it in would move the node's
            # watermark into the future, and every later (true) event would be "late".
            self._clock_offset(node, ahead)
            raise Rejected(
                Reason.CLOCK_SKEW,
                f"window ends {ahead:.0f} s after this server's clock: the clock of "
                f"{event.site}/{event.node} is wrong (set it, or run NTP on it)",
            )
        self._delivered(node, event.seq)
        if event_id in self._recent or not self.store.add_event(
            event_id, site=event.site, node=event.node, seq=event.seq, end=end, received=now
        ):
            self.metrics.duplicates.inc()
            self._remember(event_id)
            return []
        self._remember(event_id)
        self.metrics.events_received.labels(event.site).inc()
        self.metrics.last_event.labels(event.site, event.node).set(now)
        out: list[Alert] = []
        node.last_heard = now
        if node.state != "online":
            out += self._node_back(node, now)
        newest = event.seq > node.last_seq
        node.last_seq = max(node.last_seq, event.seq)
        self._dirty.add((node.site, node.node))
        if node.watermark > now + self.policy.max_clock_ahead_s:
            log.warning("node %s/%s: its watermark was %.0f s ahead of this clock (saved while "
                        "its clock was wrong); starting again from this event", node.site,
                        node.node, node.watermark - now)  # fmt: skip
            node.watermark = end
        behind = node.watermark - end
        if behind > self.policy.reorder_bound_s and newest:
            # The node's newest event lies far behind the ones it sent before: its clock was
            # set back (NTP correcting a wrong clock). Follow it; a node must not go deaf.
            log.warning("node %s/%s: clock went back %.0f s (seq %d); following it", node.site,
                        node.node, behind, event.seq)  # fmt: skip
            self.metrics.clock_jumps.inc()
            node.watermark = end
            behind = 0.0
        matches = self._match(event)
        if behind > self.policy.reorder_bound_s:
            self.metrics.late.inc()
            self.store.add_late(
                event_id,
                site=event.site,
                node=event.node,
                end=end,
                behind=behind,
                received=now,
                payload=event.model_dump_json(),
            )
            log.info("late event %s from %s/%s: %.1f s behind its node's watermark",
                     event_id, event.site, event.node, behind)  # fmt: skip
            # Late evidence of a smoke or CO alarm still raises, marked with its delay.
            for category, (score, weight) in matches.items():
                if self.policy.categories[category].priority == "critical":
                    hit = HitRow(event_id, category, event.site, event.node, start, end, score,
                                 weight, event.level_dbfs)  # fmt: skip
                    out += self._on_hit(hit, node, now)
            return out
        node.watermark = max(node.watermark, end)
        for category, (score, weight) in matches.items():
            hit = HitRow(event_id, category, event.site, event.node, start, end, score, weight,
                         event.level_dbfs)  # fmt: skip
            out += self._on_hit(hit, node, now)
        out += self._raise_waiting(event.site, now, wall_limit=None)
        out += self._end_by_event_time(event.site, node.watermark, now)
        return out

    # -- end-to-end delivery -----------------------------------------------------------------
    def _delivered(self, node: NodeRow, seq: int) -> None:
        """Note that the node's event ``seq`` is (about to be) stored; advance its ack."""
        key = (node.site, node.node)
        if seq <= node.acked_seq:
            self._ack_due.add(key)  # sent again: the node has not seen our acknowledgement
            return
        node.seqs_above.add(seq)
        self._dirty.add(key)
        self._advance(node)

    def delivered(self, site: str, node: str, seq: int, now: float) -> None:
        """An event that could not be processed was dead-lettered: it is stored, so the node
        may stop sending it."""
        self._delivered(self._node(site, node, now), seq)

    def _advance(self, node: NodeRow) -> None:
        before = node.acked_seq
        above = node.seqs_above
        if len(above) > _MAX_SEQS_ABOVE:
            log.warning("node %s/%s: seq %d never arrived and %d later ones did; acknowledging "
                        "past the gap", node.site, node.node, node.acked_seq + 1,
                        len(above))  # fmt: skip
            node.acked_seq = min(above) - 1
        while node.acked_seq + 1 in above:
            node.acked_seq += 1
            above.discard(node.acked_seq)
        if node.acked_seq != before:
            self._ack_due.add((node.site, node.node))

    def _delivery_status(self, node: NodeRow, status: NodeStatus, *, retained: bool) -> None:
        key = (node.site, node.node)
        if status.next_seq is not None and status.next_seq <= node.acked_seq and not retained:
            log.warning("node %s/%s counts its events from %d again (acknowledged up to %d): its "
                        "queue was reset; counting afresh", node.site, node.node,
                        status.next_seq, node.acked_seq)  # fmt: skip
            floor = status.pending_from_seq
            node.acked_seq = (floor if floor is not None else status.next_seq) - 1
            node.seqs_above = set()
            self._ack_due.add(key)
        floor = status.pending_from_seq
        if floor is not None and floor - 1 > node.acked_seq:
            # Everything below the floor was acknowledged or given up by the node.
            node.acked_seq = floor - 1
            node.seqs_above = {seq for seq in node.seqs_above if seq > node.acked_seq}
            self._ack_due.add(key)
            self._advance(node)

    def take_ack_due(self) -> list[NodeRow]:
        """Nodes whose acknowledgement to publish, once what it covers is committed."""
        due = [self._nodes[key] for key in self._ack_due if key in self._nodes]
        self._ack_due.clear()
        return due

    def ack_all(self) -> list[NodeRow]:
        """Every node with something acknowledged (to publish after a reconnect)."""
        return [node for node in self._nodes.values() if node.acked_seq >= 0]

    def _clock_offset(self, node: NodeRow, offset: float) -> None:
        node.clock_offset_s = round(offset, 3)
        self._dirty.add((node.site, node.node))
        self._export_offset(node)

    def _export_offset(self, node: NodeRow) -> None:
        """A series only for a clock that is off: one per node would be most of /metrics."""
        offset = node.clock_offset_s
        if offset is not None and abs(offset) >= CLOCK_EXPORT_S:
            self.metrics.clock_offset.labels(node.site, node.node).set(offset)
        else:
            with contextlib.suppress(KeyError):
                self.metrics.clock_offset.remove(node.site, node.node)

    def review_false_alarms(self, now: float) -> None:
        """Export each noisy node's false-alarm ratio over the last day; forget the rest."""
        noisy = {}
        for site, node, reviewed, false in self.store.reviews_by_location(now - 86400):
            if reviewed >= NODE_REVIEWS_MIN:
                noisy[(site, node)] = false / reviewed
        for key in set(self._false_alarm_nodes) - set(noisy):
            with contextlib.suppress(KeyError):
                self.metrics.node_false_alarms.remove(*key)
        for (site, node), ratio in noisy.items():
            self.metrics.node_false_alarms.labels(site, node).set(ratio)
        self._false_alarm_nodes = set(noisy)

    def _match(self, event: ClassificationEvent) -> dict[str, tuple[float, int]]:
        found: dict[str, tuple[float, int]] = {}
        kind = event.source.kind
        for label in event.labels:
            rules = self._index.get((kind, label.label))
            if rules is None:
                continue
            for category, rule in rules:
                if label.score >= rule.threshold:
                    score, weight = found.get(category, (0.0, 0))
                    found[category] = (max(score, label.score), max(weight, rule.weight))
        return found

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > _RECENT_IDS:
            self._recent.popitem(last=False)

    def _on_hit(self, hit: HitRow, node: NodeRow, now: float) -> list[Alert]:
        key = (hit.site, hit.category)
        cat = self.policy.categories[hit.category]
        episode = self._active.get(key)
        if episode is not None:
            return self._attach(episode, hit, now)
        if cat.upgrade is not None:
            stronger = self._active.get((hit.site, cat.upgrade.to))
            if stronger is not None:  # the same alarm, still sounding: evidence for that alert
                if hit.event_id in stronger.hits.ids:  # a label of both categories
                    return []
                return self._attach(stronger, hit, now)
        until = self._cooldown.get(key)
        if until is not None and hit.end <= until:
            self.metrics.suppressed.labels(hit.category).inc()
            return []
        if self._explained(hit, cat):
            self.metrics.suppressed.labels(hit.category).inc()
            return []
        node_hits = self._pending.setdefault(key, {}).setdefault(hit.node, [])
        horizon = node.watermark - cat.confirm.within_s - self.policy.reorder_bound_s
        if node_hits and node_hits[0].end < horizon:
            node_hits[:] = [h for h in node_hits if h.end >= horizon]
            self.store.prune_pending(hit.site, hit.category, hit.node, horizon)
        insert_at = len(node_hits)
        while insert_at and sort_key(node_hits[insert_at - 1]) > sort_key(hit):
            insert_at -= 1
        node_hits.insert(insert_at, hit)
        self.store.add_hit(hit, now, None)
        if confirming_group(node_hits, cat.confirm) is None:
            return []
        if self._held(hit.site, hit.end, cat):
            self._waiting.setdefault(key, now)  # re-examined as event time and the clock move
            return []
        return self._raise_when_due(key, cat, now, wall_limit=None)

    def _explained(self, hit: HitRow, cat: CategoryPolicy) -> bool:
        """A suppressing category is active at this site, or in its cooldown at this hit (the
        same alarm, acknowledged and sounding again, is not first a "possible" one)."""
        for other in cat.suppressed_by:
            until = self._cooldown.get((hit.site, other))
            if (hit.site, other) in self._active or (until is not None and hit.end <= until):
                return True
        return False

    def _held(self, site: str, at: float, cat: CategoryPolicy) -> bool:
        """A suppressing category has evidence of its own within its confirmation window:
        wait for it to confirm (or for its evidence to age out) before raising this one."""
        for other in cat.suppressed_by:
            window = self.policy.categories[other].confirm.within_s
            pending = self._pending.get((site, other), {})
            if any(h.end >= at - window for hits in pending.values() for h in hits):
                return True
        return False

    def _raise_when_due(self, key: tuple[str, str], cat: CategoryPolicy, now: float, *,
                        wall_limit: float | None) -> list[Alert]:  # fmt: skip
        """Raise a confirmed category, once its ``defer_s`` is over in event time (the node
        has sent windows past it), or, when ``wall_limit`` is given, once it has waited that
        long on the wall clock (a node that reports only loud windows may send nothing)."""
        if cat.confirm.defer_s:
            hits = EpisodeHits(cat.confirm, self.policy.max_evidence)
            for node_hits in self._pending.get(key, {}).values():
                for hit in node_hits:
                    hits.add(hit)
            canon = hits.canon
            if canon is None:
                self._waiting.pop(key, None)
                return []
            node = self._nodes.get((key[0], canon.confirmed_by))
            due = node is not None and node.watermark >= canon.raised_at
            waited = now - self._waiting.setdefault(key, now)
            if not due and (wall_limit is None or waited < wall_limit):
                return []
        self._waiting.pop(key, None)
        return self._raise(key, cat, now)

    def _raise_waiting(self, site: str | None, now: float, *, wall_limit: float | None
                       ) -> list[Alert]:  # fmt: skip
        """Re-examine confirmed categories still waiting: out their ``defer_s``, or for a
        suppressor's evidence to confirm or age out."""
        out: list[Alert] = []
        keys = (list(self._waiting) if site is None
                else [(site, category) for category in self._waiting.of_site(site)])  # fmt: skip
        for key in keys:
            if key not in self._waiting:  # raised or dropped by an earlier one in this loop
                continue
            cat = self.policy.categories[key[1]]
            if key in self._active or any((key[0], o) in self._active for o in cat.suppressed_by):
                self._waiting.pop(key)
                continue
            marks = [self._nodes[(key[0], n)].watermark for n in self._pending.get(key, {})
                     if (key[0], n) in self._nodes]  # fmt: skip
            # Wait for a suppressor's pending evidence to confirm or age out in event time, but
            # no longer than wall_limit on the clock: if the node went quiet, nothing ages out.
            timed_out = wall_limit is not None and now - self._waiting[key] >= wall_limit
            if marks and not timed_out and self._held(key[0], max(marks), cat):
                continue
            out += self._raise_when_due(key, cat, now, wall_limit=wall_limit)
        return out

    def _raise(self, key: tuple[str, str], cat: CategoryPolicy, now: float) -> list[Alert]:
        hits = EpisodeHits(cat.confirm, self.policy.max_evidence)
        sustain = self._sustain_tracker(cat)
        all_hits = [h for node_hits in self._pending.pop(key, {}).values() for h in node_hits]
        for hit in all_hits:
            hits.add(hit)
            if sustain is not None:
                sustain.add(hit)
        if hits.canon is None:  # cannot happen: the caller found a confirming group
            raise AssertionError("raise without a confirming group")
        episode = self._new_episode(key, hits, now)
        episode.sustain = sustain
        self.store.attach_hits(episode.alert_id, all_hits)
        out = self._open(episode, cat, now)
        return out + self._upgrade_if_sustained(episode, now)

    def _new_episode(self, key: tuple[str, str], hits: EpisodeHits, now: float) -> Episode:
        site, category = key
        assert hits.canon is not None
        number = self.store.next_counter("alerts")
        # raised_at is on the confirming node's clock: a node whose clock is behind ours must
        # not make a live alert look delayed.
        node = self._nodes.get((site, hits.canon.confirmed_by))
        offset = node.clock_offset_s if node is not None and node.clock_offset_s else 0.0
        delay = now - hits.canon.raised_at + offset
        return Episode(
            alert_id=f"{category[:40]}-{number:06d}-{self.store.salt}",
            site=site,
            category=category,
            hits=hits,
            last_evidence_wall=now,
            last_notice_wall=now,
            delay_s=round(delay, 1) if delay > self.policy.delayed_after_s else None,
        )

    def _open(self, episode: Episode, cat: CategoryPolicy, now: float) -> list[Alert]:
        """Publish a new episode as raised, closing the alerts it explains."""
        site, category = episode.site, episode.category
        canon = episode.hits.canon
        assert canon is not None
        self._active[(site, category)] = episode
        superseded = [
            other
            for other_cat, other in self._active.of_site(site).items()
            if category in self.policy.categories[other_cat].suppressed_by
        ]
        self.metrics.alerts.labels(category, cat.priority).inc()
        self.metrics.active_alerts.labels(category).inc()
        self.metrics.detection_latency.labels(category).observe(
            max(0.0, canon.raised_at - canon.first_evidence_at)
        )
        out = [self._emit(episode, "raised", now)]
        for other in superseded:
            other.reason = f"superseded by {cat.title.lower()}"
            out.append(self._close(other, "resolved", now))
        return out

    def _upgrade_if_sustained(self, episode: Episode, now: float) -> list[Alert]:
        """A weaker reading (possible smoke alarm) that kept sounding with nobody acknowledging
        it becomes its upgrade category (smoke alarm), which supersedes it."""
        cat = self.policy.categories[episode.category]
        sustain = episode.sustain
        if (cat.upgrade is None or sustain is None or sustain.canon is None
                or episode.acked_by is not None or episode.ended_at is not None):  # fmt: skip
            return []
        key = (episode.site, cat.upgrade.to)
        until = self._cooldown.get(key)
        if key in self._active or (until is not None and sustain.canon.raised_at <= until):
            return []
        target = self.policy.categories[cat.upgrade.to]
        stronger = self._new_episode(key, sustain, now)
        stronger.upgraded_from = episode.category
        stronger.reason = (f"{cat.title.lower()} still sounding {cat.upgrade.after_s:g} s after "
                           "it began, and nobody acknowledged it")  # fmt: skip
        episode.sustain = None
        self.store.move_hits(episode.alert_id, stronger.alert_id)
        log.warning("%s at %s kept sounding unacknowledged: raised as %s", episode.alert_id,
                    episode.site, cat.upgrade.to)  # fmt: skip
        return self._open(stronger, target, now)

    def _attach(self, episode: Episode, hit: HitRow, now: float) -> list[Alert]:
        if not episode.hits.add(hit):
            self.metrics.duplicates.inc()
            return []
        self.store.add_hit(hit, now, episode.alert_id)
        episode.last_evidence_wall = now
        resumed = episode.ended_at is not None and hit.end > episode.ended_at
        if resumed:
            episode.ended_at = None
        if episode.sustain is not None:
            episode.sustain.add(hit)
            if episode.sustain.canon is not None:
                upgraded = self._upgrade_if_sustained(episode, now)
                if upgraded:
                    return upgraded
        if resumed or self._signature_of(episode.hits) != episode.published:
            return [self._emit(episode, "updated", now)]
        self._save(episode)
        return []

    @staticmethod
    def _signature_of(hits: EpisodeHits) -> tuple[object, ...]:
        canon = hits.canon
        if canon is None:
            return ()
        return (canon.location, tuple(sorted(n for n, _, _ in canon.nodes)),
                canon.first_evidence_at, canon.raised_at, canon.evidence)  # fmt: skip

    def _end_by_event_time(self, site: str, watermark: float, now: float) -> list[Alert]:
        out: list[Alert] = []
        for category, episode in self._active.of_site(site).items():
            if episode.ended_at is not None or episode.hits.canon is None:
                continue
            cat = self.policy.categories[category]
            if watermark >= episode.hits.canon.last_end + cat.hold_s:
                out += self._end(episode, cat, now)
        return out

    def _end(self, episode: Episode, cat: CategoryPolicy, now: float) -> list[Alert]:
        """The sound stopped. Critical alerts stay until someone acknowledges them."""
        assert episode.hits.canon is not None
        episode.ended_at = episode.hits.canon.last_end
        if cat.priority == "critical" and episode.acked_by is None:
            episode.last_notice_wall = now  # this message is the next notice
            return [self._emit(episode, "updated", now)]
        return [self._close(episode, "resolved", now)]

    def _close(self, episode: Episode, state: str, now: float) -> Alert:
        key = (episode.site, episode.category)
        cat = self.policy.categories[episode.category]
        self._active.pop(key, None)
        self.metrics.active_alerts.labels(episode.category).dec()
        assert episode.hits.canon is not None
        until = episode.hits.canon.last_end + cat.cooldown_s
        self._cooldown[key] = until
        self.store.set_cooldown(episode.site, episode.category, until)
        return self._emit(episode, state, now, active=False)

    def _emit(self, episode: Episode, state: str, now: float, *, active: bool = True) -> Alert:
        cat = self.policy.categories[episode.category]
        canon = episode.hits.canon
        assert canon is not None
        alert = Alert.model_validate(
            {
                "alert_id": episode.alert_id,
                "site": episode.site,
                "category": episode.category,
                "priority": cat.priority,
                "state": state,
                "location": canon.location,
                "nodes": [{"node": n, "score": s, "level_dbfs": lvl} for n, s, lvl in canon.nodes],
                "first_evidence_at": _dt(canon.first_evidence_at),
                "raised_at": _dt(canon.raised_at),
                "published_at": _dt(now),
                "confidence": canon.confidence,
                "evidence": list(canon.evidence),
                "title": cat.title,
                "delay_s": episode.delay_s,
                "repeat": episode.repeat,
                "ended_at": _dt(episode.ended_at) if episode.ended_at is not None else None,
                "by": episode.acked_by,
                "reason": episode.reason,
            }
        )
        episode.state = state
        episode.published = self._signature_of(episode.hits)
        self._save(episode, alert, active=active)
        return self._record(alert)

    def _save(self, episode: Episode, alert: Alert | None = None, *, active: bool = True) -> None:
        payload = alert.model_dump_json() if alert is not None else None
        if payload is None:
            row = self.store.alert(episode.alert_id)
            payload = row.payload if row is not None else "{}"
        self.store.save_alert(AlertRow(episode.alert_id, episode.site, episode.category, active,
                                       episode.state, payload, episode.internal()))  # fmt: skip

    def _record(self, alert: Alert) -> Alert:
        self.store.record_history(alert.alert_id, alert.state, alert.published_at.isoformat(),
                                  alert.model_dump_json())  # fmt: skip
        self.metrics.state_changes.labels(alert.site, alert.category, alert.state).inc()
        return alert

    # -- nodes and supervision ---------------------------------------------------------------
    def _node(self, site: str, name: str, now: float) -> NodeRow:
        node = self._nodes.get((site, name))
        if node is None:
            node = NodeRow(site, name, UNANNOUNCED, self.policy.default_heartbeat_s, now, -1, 0.0)
            self._nodes[(site, name)] = node
            self._dirty.add((site, name))
            self.metrics.node_up.labels(site, name).set(1)
            log.info("new node %s/%s", site, name)
        return node

    def handle_status(self, status: NodeStatus, now: float, *, retained: bool = False
                      ) -> list[Alert]:  # fmt: skip
        node = self._node(status.site, status.node, now)
        self._dirty.add((node.site, node.node))
        self._delivery_status(node, status, retained=retained)
        if status.state == "online" and not retained:
            self._clock_offset(node, status.at.timestamp() - now)
        node.heartbeat_s = status.heartbeat_s
        node.software = status.software
        node.stats = json.dumps(status.stats)
        key = (node.site, node.node)
        if TRANSIENT in status.capabilities:
            self._transient.add(key)
        else:
            self._transient.discard(key)
        if status.state == "online":
            age = now - status.at.timestamp()
            if retained and age > self.policy.heartbeat_misses * status.heartbeat_s:
                # An old retained "online" proves nothing about the node now; supervision
                # decides from what arrives next.
                return []
            node.last_heard = now
            if node.state == "online":
                return []
            return self._node_back(node, now, announced=True)
        if key in self._transient or (node.state == UNANNOUNCED and retained):
            # A file replay that ended, or a node never seen alive by this aggregator.
            node.state = status.state
            self.metrics.node_up.labels(node.site, node.node).set(0)
            return []
        if status.state == "stopped":
            return self._node_stopped(node, now)
        node.state = status.state
        return self._node_down(node, now, "last will: connection lost")

    def _node_stopped(self, node: NodeRow, now: float) -> list[Alert]:
        """Stopped on purpose (its own clean exit): a notice, not a sensor that died."""
        was = node.state
        node.state = "stopped"
        self.metrics.node_up.labels(node.site, node.node).set(0)
        if was == "stopped" or node.offline_alert_id is not None:
            return []
        log.info("node %s/%s stopped", node.site, node.node)
        return [self._node_alert(node, NODE_STOPPED, "normal", now, since=now,
                                 title=f"{_room(node.node)} sensor was stopped",
                                 reason="stopped on purpose; it is not listening")]  # fmt: skip

    def _node_down(self, node: NodeRow, now: float, reason: str) -> list[Alert]:
        if node.state == "online":
            node.state = "offline"
        self._dirty.add((node.site, node.node))
        self.metrics.node_up.labels(node.site, node.node).set(0)
        if node.offline_alert_id is not None:
            return []
        title = f"{_room(node.node)} sensor stopped listening"
        alert = self._node_alert(node, NODE_OFFLINE, "high", now, since=node.last_heard,
                                 title=title, reason=reason)  # fmt: skip
        node.offline_alert_id = alert.alert_id
        self.metrics.active_alerts.labels(NODE_OFFLINE).inc()
        log.warning("node %s/%s offline: %s", node.site, node.node, reason)
        return [alert]

    def _node_alert(self, node: NodeRow, category: str, priority: Priority, now: float, *,
                    since: float, title: str, reason: str | None = None) -> Alert:  # fmt: skip
        """A raised sensor alert (node_offline stays active until the node returns)."""
        return self._system_alert(node.site, category, priority, now, location=node.node,
                                  since=since, title=title, reason=reason,
                                  active=category == NODE_OFFLINE)  # fmt: skip

    def _system_alert(self, site: str, category: str, priority: Priority, now: float, *,
                      location: str | None, since: float, title: str, reason: str | None,
                      active: bool) -> Alert:  # fmt: skip
        """A raised alert about soundalert itself: a sensor, or its own storage."""
        number = self.store.next_counter("alerts")
        alert = Alert(
            alert_id=f"{category}-{number:06d}-{self.store.salt}",
            site=site,
            category=category,
            priority=priority,
            state="raised",
            location=location,
            nodes=[AlertNode(node=location, score=1.0)] if location is not None else [],
            first_evidence_at=_dt(since),
            raised_at=_dt(now),
            published_at=_dt(now),
            confidence=1.0,
            title=title,
            reason=reason,
        )
        self.metrics.alerts.labels(category, priority).inc()
        self.store.save_alert(AlertRow(alert.alert_id, site, category, active, "raised",
                                       alert.model_dump_json(), {}))  # fmt: skip
        return self._record(alert)

    def _resolve_system_alert(self, alert_id: str, now: float) -> list[Alert]:
        row = self.store.alert(alert_id)
        if row is None or not row.active:
            return []
        resolved = Alert.model_validate_json(row.payload).model_copy(
            update={"state": "resolved", "published_at": _dt(now), "ended_at": _dt(now)}
        )
        row.active, row.state, row.payload = False, "resolved", resolved.model_dump_json()
        self.store.save_alert(row)
        self.metrics.active_alerts.labels(row.category).dec()
        return [self._record(resolved)]

    # -- soundalert's own trouble ------------------------------------------------------------
    def storage_trouble(self, now: float, problem: str) -> list[Alert]:
        """Raise "soundalert cannot save its state" at every site it serves (once)."""
        sites = set(self._nodes.sites()) | set(self._active.sites())
        out: list[Alert] = []
        for site in sorted(sites - set(self._trouble)):
            alert = self._system_alert(
                site, STORAGE_TROUBLE, "high", now, location=None, since=now,
                title="soundalert cannot save its state",
                reason=f"{problem[:120]}; alerts still work, but a restart now would forget "
                "them (free disk space)",
                active=True,
            )  # fmt: skip
            self._trouble[site] = alert.alert_id
            self.metrics.active_alerts.labels(STORAGE_TROUBLE).inc()
            out.append(alert)
        return out

    def storage_recovered(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for site in sorted(self._trouble):
            out += self._resolve_system_alert(self._trouble.pop(site), now)
        return out

    @property
    def storage_trouble_sites(self) -> list[str]:
        return sorted(self._trouble)

    def _node_back(self, node: NodeRow, now: float, *, announced: bool = False) -> list[Alert]:
        """The node was heard. A node that never sent a status stays unsupervised until its
        first status (``announced``)."""
        if node.state == UNANNOUNCED and not announced:
            return []
        was = node.state
        node.state = "online"
        self._dirty.add((node.site, node.node))
        self.metrics.node_up.labels(node.site, node.node).set(1)
        title = f"{_room(node.node)} sensor is listening again"
        if node.offline_alert_id is None:
            if was != "stopped" or (node.site, node.node) in self._transient:
                return []
            return [self._node_alert(node, NODE_ONLINE, "normal", now, since=now, title=title)]
        out = self._resolve_system_alert(node.offline_alert_id, now)
        node.offline_alert_id = None
        out.append(self._node_alert(node, NODE_ONLINE, "normal", now, since=now, title=title))
        log.info("node %s/%s back online", node.site, node.node)
        return out

    def resume_supervision(self, now: float) -> None:
        """The aggregator (re)connected to its broker: it heard nothing while it was away, so
        that silence says nothing about the nodes. Each node gets its full heartbeat allowance
        from now (one that died meanwhile has a retained last will waiting, or misses its
        heartbeats from now on)."""
        for node in self._nodes.values():
            if node.state == "online" and node.last_heard < now:
                node.last_heard = now
                self._dirty.add((node.site, node.node))

    # -- feedback ----------------------------------------------------------------------------
    def handle_feedback(self, feedback: Feedback, site: str, now: float) -> list[Alert]:
        row = self.store.alert(feedback.alert_id)
        if row is None:
            raise Rejected(Reason.UNKNOWN_ALERT, f"no alert {feedback.alert_id!r}")
        if row.site != site:
            raise Rejected(Reason.TOPIC_MISMATCH, f"alert {row.alert_id} is of site {row.site!r}")
        if not self.store.add_feedback(feedback.alert_id, feedback.verdict, feedback.by,
                                       feedback.at.isoformat(), now):  # fmt: skip
            return []
        self.metrics.feedback.labels(row.category, feedback.verdict).inc()
        episode = self._active.get((row.site, row.category))
        if episode is not None and episode.alert_id == row.alert_id:
            if feedback.verdict == "false_alarm":
                episode.acked_by = feedback.by
                return [self._close(episode, "false_alarm", now)]
            if episode.acked_by is not None:
                return []
            episode.acked_by = feedback.by
            out = [self._emit(episode, "acknowledged", now)]
            if episode.ended_at is not None:
                out.append(self._close(episode, "resolved", now))
            return out
        if row.category == NODE_OFFLINE and row.active and row.state != "acknowledged":
            return [self._restate(row, "acknowledged", now, by=feedback.by)]
        if feedback.verdict == "false_alarm" and row.state != "false_alarm":
            return [self._restate(row, "false_alarm", now, by=feedback.by)]
        return []

    def _restate(self, row: AlertRow, state: str, now: float, *, by: str) -> Alert:
        alert = Alert.model_validate_json(row.payload).model_copy(
            update={"state": state, "published_at": _dt(now), "by": by}
        )
        row.state, row.payload = state, alert.model_dump_json()
        self.store.save_alert(row)
        return self._record(alert)

    # -- time --------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Alert]:
        """Wall-clock duties: supervision, reminders, ending alerts whose nodes went quiet, and
        raising deferred ones whose nodes stopped sending windows."""
        out: list[Alert] = []
        self._forget_stale_restored(now)
        out += self._raise_waiting(None, now, wall_limit=self.policy.reorder_bound_s)
        for node in list(self._nodes.values()):
            silent = now - node.last_heard
            limit = self.policy.heartbeat_misses * node.heartbeat_s
            if (node.site, node.node) in self._transient:
                continue  # a file replay: its end is no news
            if node.state == "online" and silent > limit:
                out += self._node_down(
                    node, now, f"no heartbeat for {silent:.0f} s (expected every "
                    f"{node.heartbeat_s:g} s)",
                )  # fmt: skip
        for episode in list(self._active.values()):
            cat = self.policy.categories[episode.category]
            quiet = now - episode.last_evidence_wall
            if episode.ended_at is None and quiet >= cat.hold_s + self.policy.reorder_bound_s:
                out += self._end(episode, cat, now)
                continue
            interval = cat.escalation_interval_s
            if (
                interval is not None
                and episode.acked_by is None
                and now - episode.last_notice_wall >= interval
            ):
                episode.repeat += 1
                episode.last_notice_wall = now
                out.append(self._emit(episode, "updated", now))
        return out

    # -- state for the shell -----------------------------------------------------------------
    def flush(self) -> None:
        """Write node state changed since the last flush (the shell commits after this)."""
        if self._dirty:
            self.store.save_nodes([self._nodes[key] for key in self._dirty])
            self._dirty.clear()

    def category_state(self, site: str, category: str, latest: Alert, now: float
                       ) -> CategoryState:  # fmt: skip
        if category == STORAGE_TROUBLE:
            active = [self._trouble[site]] if site in self._trouble else []
        elif category == NODE_OFFLINE:
            active = sorted(
                n.offline_alert_id
                for n in self._nodes.of_site(site).values()
                if n.offline_alert_id is not None
            )
        else:
            episode = self._active.get((site, category))
            active = [episode.alert_id] if episode is not None else []
        return CategoryState(site=site, category=category, active=bool(active),
                             active_alerts=active, latest=latest, at=_dt(now))  # fmt: skip

    def nodes(self) -> list[NodeRow]:
        return list(self._nodes.values())

    def adopt(self, previous: Aggregator, *, forget: str | None = None) -> None:
        """Take over what only lives in memory from the core this one replaces (rebuilt from
        the store after a failed message): how long confirmed categories have waited, the ids
        seen recently (less ``forget``, the failed message's), and acks not yet published."""
        for key, since in previous._waiting.items():
            if key in self._waiting:
                self._waiting[key] = since
        self._recent = previous._recent
        if forget is not None:
            self._recent.pop(forget, None)
        self._ack_due |= previous._ack_due

    def active_episodes(self) -> list[Episode]:
        return list(self._active.values())
