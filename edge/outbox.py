"""A durable, bounded SQLite outbox for node-to-broker messages, that never refuses a message.

A message is committed here *before* it is published, and leaves only when it is delivered:
with end-to-end delivery when the aggregator's acknowledgement covers its ``seq``
(:meth:`Outbox.acknowledge`), with broker delivery on the broker's PUBACK (:meth:`Outbox.remove`).
So a broker outage, a broker that forgets what it acknowledged, or a crash (even SIGKILL) of the
node loses nothing: what is still here is published again, oldest first. Each message carries its
own payload, built once (with its event id inside), so retries and restarts resend the same bytes.

The queue is bounded. When it is full, the oldest message of the lowest priority goes first.
When the disk refuses to store (full, or failing), listening must go on: the outbox first drops the
oldest messages below ``protected_priority`` (pattern detections are kept), and if the disk still
refuses, keeps new messages in a bounded list in memory - published from there like any other -
and moves them to disk as soon as it can write again. Every drop is counted by reason
(:data:`DROP_REASONS`); the counts survive restarts (those made while the disk refused are saved
with the next write that succeeds) and are reported in the node's heartbeat.

How the deletes that make room stay possible on a full disk (a persisted rollback journal,
``auto_vacuum``, a reserve file ``<outbox>-reserve``): :mod:`edge.full_disk`.

Durability: ``synchronous="full"`` (the default) fsyncs every commit, so a power cut loses nothing
either; ``"normal"`` survives a crash of the process, for less disk traffic. The Pi agent and the
RP2040 serial bridge share this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from edge.full_disk import DiskReserve, free_bytes, is_disk_full, rollback, use_auto_vacuum

__all__ = ["DROP_REASONS", "DropReason", "Outbox", "OutboxMessage", "Pending"]

log = logging.getLogger(__name__)

Synchronous = Literal["full", "normal"]
DropReason = Literal["outbox_full", "disk_full", "storage_error"]
DROP_REASONS: Final[tuple[DropReason, ...]] = ("outbox_full", "disk_full", "storage_error")
"""Why messages were dropped: the queue bound was reached; the disk was full; the disk failed
otherwise (read-only, I/O error) while the in-memory queue was full too."""

_META_DROPPED: Final[dict[DropReason, str]] = {
    "outbox_full": "dropped",  # the key older versions wrote
    "disk_full": "dropped_disk_full",
    "storage_error": "dropped_storage_error",
}
_MAKE_ROOM_ROUNDS: Final = 2
_MAKE_ROOM_ROWS: Final = 16
"""Messages deleted per transaction to make room on a full disk (its journal fits the reserve)."""
_MAKE_ROOM_STEPS: Final = 16
_PAGE_MARGIN: Final = 8 * 4096
"""Room for the pages an insert touches besides its rows (b-tree and index pages, journal)."""
_FLUSH_CHUNK: Final = 8
"""Messages moved from memory to disk per transaction."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_drop_order ON outbox (priority, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to queue. ``key`` (the event id) makes queueing the same message idempotent."""

    key: str
    topic: str
    payload: bytes
    priority: int = 0
    """Higher survives longer when the queue is full or the disk refuses."""
    qos: int = 1
    retain: bool = False
    seq: int | None = None
    """The event's per-node sequence number: an acknowledgement covering it deletes it. A
    message without one leaves on its PUBACK (nothing acknowledges it end to end)."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A queued message, as read back for publishing. ``id`` grows with queue order."""

    id: int
    key: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    message: OutboxMessage

    def pending(self) -> Pending:
        m = self.message
        return Pending(self.id, m.key, m.topic, m.payload, m.qos, m.retain, m.seq)


class Outbox:
    """The queue. Single-threaded: use it from one thread (the node's event loop)."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_messages: int = 50_000,
        synchronous: Synchronous = "full",
        memory_messages: int = 5_000,
        protected_priority: int | None = None,
        reserve_bytes: int = 64 * 1024,
    ) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if memory_messages < 1:
            raise ValueError("memory_messages must be at least 1")
        if synchronous not in {"full", "normal"}:
            raise ValueError("synchronous must be 'full' or 'normal'")
        self.path = Path(path)
        self.max_messages = max_messages
        self.memory_messages = memory_messages
        self.protected_priority = protected_priority
        on_disk = str(path) != ":memory:"
        self.volatile: str | None = None
        """Why the outbox lives in memory only (its file could not be opened), if it does."""
        try:
            if on_disk:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open(str(path), synchronous)
        except (sqlite3.Error, OSError) as exc:
            if not on_disk:
                raise
            # Listening must not wait for a disk: keep events in memory until a restart.
            self.volatile = f"cannot open the outbox {path} ({exc}): events are kept in memory"
            on_disk = False
            half_open = getattr(self, "_db", None)
            if half_open is not None:
                half_open.close()
        if self.volatile is not None:
            log.error("%s only, and are lost if the node restarts", self.volatile)
            self._db = self._open(":memory:", synchronous)
        self._meta: dict[str, int] = {
            str(k): int(v) for k, v in self._db.execute("SELECT key, value FROM meta")
        }
        self._unsaved_meta: dict[str, int] = {}
        self._unsaved_drops: Counter[DropReason] = Counter()
        self._memory: list[_Row] = []
        self._memory_keys: set[str] = set()
        self._acked = -1
        self._stale_acked = False  # acknowledged rows the disk refused to delete
        (top,) = self._db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM outbox), 0), "
            "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0))"
        ).fetchone()
        self._next_id = int(top) + 1
        self._disk_depth = self._count()
        self.problem: str | None = None
        """Why the disk refuses to store, while it does; ``None`` when writes succeed."""
        self._troubled = False  # from the first refusal until memory is back on disk
        self._made_room = False  # dropped rows for space in this episode (logged once)
        self._problem_reason: DropReason = "disk_full"
        reserve = self.path.with_name(f"{self.path.name}-reserve") if on_disk else None
        self._reserve = DiskReserve(reserve, reserve_bytes)
        self._reserve.take()

    # -- setup -------------------------------------------------------------------------------
    def _open(self, path: str, synchronous: Synchronous) -> sqlite3.Connection:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=PERSIST")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        use_auto_vacuum(self._db, self.path)
        self._migrate()
        return self._db

    def _migrate(self) -> None:
        """Create the tables; give rows of an older outbox (no seq column) their seq."""
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "seq" not in columns:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ALTER TABLE outbox ADD COLUMN seq INTEGER")
            for row_id, payload in self._db.execute("SELECT id, payload FROM outbox").fetchall():
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    seq = json.loads(payload).get("seq")
                    if isinstance(seq, int):
                        self._db.execute("UPDATE outbox SET seq = ? WHERE id = ?", (seq, row_id))
            self._db.execute("COMMIT")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_seq ON outbox (seq)")

    def close(self) -> None:
        """Save what is held in memory if the disk takes it now, then close."""
        self.flush()
        if self._memory:
            log.error("outbox %s: %d messages held in memory are lost (the disk refused them: "
                      "%s)", self.path, len(self._memory), self.problem)  # fmt: skip
        self._db.close()

    # -- figures -----------------------------------------------------------------------------
    def _count(self) -> int:
        (count,) = self._db.execute(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE seq IS NULL) "
            "+ (SELECT COUNT(*) FROM outbox WHERE seq > ?)",
            (self._acked,),
        ).fetchone()
        return int(count)

    @property
    def depth(self) -> int:
        """Messages waiting for delivery (on disk and in memory)."""
        return self._disk_depth + len(self._memory)

    @property
    def in_memory(self) -> int:
        """Messages held in memory because the disk refused them."""
        return len(self._memory)

    @property
    def writable(self) -> bool:
        """Whether the latest write to disk succeeded."""
        return self.problem is None and self.volatile is None

    @property
    def drops(self) -> dict[DropReason, int]:
        """Messages dropped, ever, by reason."""
        return {r: self._meta.get(_META_DROPPED[r], 0) + self._unsaved_drops[r]
                for r in DROP_REASONS}  # fmt: skip

    @property
    def dropped(self) -> int:
        """Messages dropped, ever, for any reason."""
        return sum(self.drops.values())

    @property
    def acked_seq(self) -> int:
        """The highest seq acknowledged end to end in this process (-1: none yet)."""
        return self._acked

    @property
    def next_seq(self) -> int:
        """The seq the node's next event will carry (the ``next_seq`` meta value)."""
        return self.meta("next_seq")

    @property
    def pending_from_seq(self) -> int:
        """The lowest seq still held; :attr:`next_seq` when none is. Every lower seq was
        delivered or dropped."""
        (lowest,) = self._db.execute(
            "SELECT MIN(seq) FROM outbox WHERE seq > ?", (self._acked,)
        ).fetchone()
        held = [r.message.seq for r in self._memory if r.message.seq is not None]
        if lowest is not None:
            held.append(int(lowest))
        return min(held) if held else self.next_seq

    def meta(self, key: str, default: int = 0) -> int:
        return self._meta.get(key, default)

    # -- queueing ----------------------------------------------------------------------------
    def put(
        self, messages: Iterable[OutboxMessage], meta: Mapping[str, int] | None = None
    ) -> dict[DropReason, int]:
        """Queue ``messages`` (and set ``meta`` values): on disk in one committed transaction,
        or, while the disk refuses, in memory. Never raises for a storage problem.

        Returns how many messages were dropped to make room, by reason.
        """
        rows = []
        for m in messages:
            if m.key in self._memory_keys:
                continue
            rows.append(_Row(self._next_id, m))
            self._next_id += 1
        if meta:
            self._meta.update(meta)
            self._unsaved_meta.update(meta)
        drops: Counter[DropReason] = Counter()
        if self._memory:  # keep the order: what waits in memory goes to disk first
            self._memory += rows
            self._memory_keys.update(r.message.key for r in rows)
            self._flush(drops)
        elif not self._store(rows, drops):
            self._memory = rows
            self._memory_keys = {r.message.key for r in rows}
        self._trim_memory(drops)
        return dict(drops)

    def flush(self) -> dict[DropReason, int]:
        """Move what is held in memory to disk, as far as the disk takes it now (and save
        unsaved figures). Returns the drops this caused, by reason."""
        drops: Counter[DropReason] = Counter()
        if self._memory or self._unsaved_meta or self._unsaved_drops:
            self._flush(drops)
        return dict(drops)

    def _flush(self, drops: Counter[DropReason]) -> None:
        moved = 0
        while True:
            chunk = self._memory[:_FLUSH_CHUNK]
            if not self._store(chunk, drops):
                return
            del self._memory[: len(chunk)]
            self._memory_keys.difference_update(r.message.key for r in chunk)
            moved += len(chunk)
            if not self._memory:
                if self._troubled:
                    self._troubled = self._made_room = False
                    log.warning("outbox %s: the disk takes writes again; %d messages moved from "
                                "memory to disk", self.path, moved)  # fmt: skip
                return

    def _store(self, rows: list[_Row], drops: Counter[DropReason]) -> bool:
        """Commit ``rows`` (with unsaved meta values and drop counts) in one transaction; on a
        full disk make room and try again. True when committed."""
        for attempt in range(_MAKE_ROOM_ROUNDS + 1):
            try:
                added, full = self._commit(rows)
            except sqlite3.Error as exc:
                rollback(self._db)
                if not is_disk_full(exc):
                    self._trouble("storage_error", exc)
                    return False
                self._trouble("disk_full", exc)
                need = sum(len(r.message.payload) for r in rows) * 5 // 4 + _PAGE_MARGIN
                if attempt == _MAKE_ROOM_ROUNDS or not self._make_room(drops, need):
                    return False
                continue
            self.problem = None
            self._unsaved_meta.clear()
            for reason, count in self._unsaved_drops.items():
                key = _META_DROPPED[reason]
                self._meta[key] = self._meta.get(key, 0) + count
            self._unsaved_drops.clear()
            if full:
                drops["outbox_full"] += full
                self._meta["dropped"] = self._meta.get("dropped", 0) + full
            self._disk_depth += added - full
            if self._stale_acked:
                self._delete_acked()
            self._reserve.take()
            return True
        return False  # pragma: no cover - the loop always returns

    def _commit(self, rows: list[_Row]) -> tuple[int, int]:
        """One transaction: insert, save meta and drop counts, enforce the bound. Returns how
        many messages were added, and how many old ones the bound dropped."""
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        added = 0
        for row in rows:
            m = row.message
            cur.execute(
                "INSERT OR IGNORE INTO outbox (id, key, topic, payload, qos, retain, priority, seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row.id, m.key, m.topic, m.payload, m.qos, int(m.retain), m.priority, m.seq),
            )
            added += cur.rowcount
        values = dict(self._unsaved_meta)
        for reason, count in self._unsaved_drops.items():
            key = _META_DROPPED[reason]
            values[key] = self._meta.get(key, 0) + count
        excess = self._disk_depth + added - self.max_messages
        dropped = 0
        if excess > 0:
            cur.execute(
                "DELETE FROM outbox WHERE id IN "
                "(SELECT id FROM outbox ORDER BY priority, id LIMIT ?)",
                (excess,),
            )
            dropped = cur.rowcount
            values["dropped"] = values.get("dropped", self._meta.get("dropped", 0)) + dropped
        cur.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            values.items(),
        )
        cur.execute("COMMIT")
        return added, dropped

    def _trouble(self, reason: DropReason, exc: sqlite3.Error) -> None:
        if not self._troubled:
            self._troubled = True
            log.error("outbox %s cannot store (%s): keeping new messages in memory (at most "
                      "%d) and publishing from there", self.path, exc,
                      self.memory_messages)  # fmt: skip
        self.problem = str(exc)
        self._problem_reason = reason

    def _delete(self, sql: str, params: tuple[int | None, ...]) -> int | None:
        """One DELETE in its own transaction: how many rows, or None if the disk refused (on a
        full disk, after a second try with the reserve's room)."""
        for attempt in range(2):
            try:
                cur = self._db.cursor()
                cur.execute("BEGIN IMMEDIATE")
                cur.execute(sql, params)
                deleted = cur.rowcount
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback(self._db)
                log.debug("outbox %s: cannot delete now: %s", self.path, exc)
                if attempt or not is_disk_full(exc) or not self._reserve.give_up():
                    return None
                continue
            if attempt:
                self._reserve.take(now=True)
            return int(deleted)
        return None  # pragma: no cover - the loop always returns

    def _delete_acked_step(self) -> int | None:
        """A few acknowledged rows (a transaction small enough for a full disk's journal)."""
        return self._delete(
            "DELETE FROM outbox WHERE id IN "
            "(SELECT id FROM outbox WHERE seq <= ? ORDER BY seq LIMIT ?)",
            (self._acked, _MAKE_ROOM_ROWS),
        )

    def _make_room(self, drops: Counter[DropReason], need: int) -> bool:
        """On a full disk: give up the reserve (its room journals the deletes), delete
        acknowledged rows, then the oldest unprotected ones, until the disk has room for
        ``need`` bytes and the reserve again; set the reserve aside again. True if anything
        was freed (worth another try)."""
        if self._reserve.path is None:
            return False
        self._reserve.give_up()
        target = self._reserve.size + need
        freed = False
        protected = self.protected_priority
        for _ in range(_MAKE_ROOM_STEPS):
            if free_bytes(self._db, self.path.parent) >= target:
                break
            step = self._delete_acked_step()
            if step == 0:
                self._stale_acked = False
                step = self._delete(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE "
                    "(?1 IS NULL OR priority < ?1) ORDER BY priority, id LIMIT ?2)",
                    (protected, _MAKE_ROOM_ROWS),
                )
                if step:
                    drops["disk_full"] += step
                    self._unsaved_drops["disk_full"] += step
                    if not self._made_room:
                        self._made_room = True
                        log.warning("outbox %s: the disk is full; dropping the oldest messages%s "
                                    "to make room", self.path, "" if protected is None else
                                    f" below priority {protected}")  # fmt: skip
            if not step:  # None: the disk refused even that; 0: nothing left to drop
                break
            freed = True
        self._disk_depth = self._count()
        self._reserve.take(now=True)
        return freed

    def _trim_memory(self, drops: Counter[DropReason]) -> None:
        """Keep the in-memory list within its bound: the oldest of the lowest priority goes."""
        while len(self._memory) > self.memory_messages:
            victim = min(range(len(self._memory)),
                         key=lambda i: (self._memory[i].message.priority, i))  # fmt: skip
            row = self._memory.pop(victim)
            self._memory_keys.discard(row.message.key)
            drops[self._problem_reason] += 1
            self._unsaved_drops[self._problem_reason] += 1

    # -- reading and delivery ----------------------------------------------------------------
    def pending(self, after: int = 0, limit: int = 64) -> list[Pending]:
        """Undelivered messages queued after the one with id ``after``, oldest first."""
        rows = self._db.execute(
            "SELECT id, key, topic, payload, qos, retain, seq FROM outbox "
            "WHERE id > ? AND (seq IS NULL OR seq > ?) ORDER BY id LIMIT ?",
            (after, self._acked, limit),
        ).fetchall()
        out = [Pending(i, k, t, bytes(p), q, bool(r), s) for i, k, t, p, q, r, s in rows]
        for row in self._memory:  # always newer than every row on disk
            if len(out) >= limit:
                break
            if row.id > after:
                out.append(row.pending())
        return out

    def peek(self, limit: int = 64) -> list[Pending]:
        """The oldest ``limit`` undelivered messages, in the order they were queued."""
        return self.pending(0, limit)

    def remove(self, ids: Iterable[int]) -> int:
        """Delete messages the broker acknowledged (broker delivery, or messages without a
        seq). Returns how many were deleted."""
        wanted = set(ids)
        if not wanted:
            return 0
        kept = [r for r in self._memory if r.id not in wanted]
        removed = len(self._memory) - len(kept)
        self._memory = kept
        self._memory_keys = {r.message.key for r in kept}
        try:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            cur.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in wanted])
            deleted = cur.rowcount
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            rollback(self._db)
            log.warning("outbox %s: cannot delete %d delivered messages now (%s); they may be "
                        "sent again", self.path, len(wanted), exc)  # fmt: skip
            return removed
        self._disk_depth -= deleted
        return removed + deleted

    def acknowledge(self, seq: int) -> int:
        """Every message with a seq at or below ``seq`` is delivered end to end: delete them.
        Returns how many were covered (0 for an ack that is not newer than the last)."""
        if seq <= self._acked:
            return 0
        before = self.depth
        self._acked = seq
        kept = [r for r in self._memory if r.message.seq is None or r.message.seq > seq]
        self._memory = kept
        self._memory_keys = {r.message.key for r in kept}
        self._delete_acked()
        return before - self.depth

    def _delete_acked(self) -> None:
        """Delete the rows at or below the acknowledged seq. On a full disk, a few at a time;
        what the disk still refuses is read past, and deleted by a later write that works."""
        was_stale = self._stale_acked
        deleted = self._delete("DELETE FROM outbox WHERE seq <= ?", (self._acked,))
        if deleted is not None and not was_stale:
            self._disk_depth -= deleted  # every deleted row was counted
            return
        while (step := self._delete_acked_step()) is not None and step:
            pass
        self._stale_acked = step is None
        self._disk_depth = self._count()
