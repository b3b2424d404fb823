"""A durable, bounded SQLite outbox for node-to-broker messages.

A message is committed here *before* it is published and deleted only after the broker's PUBACK,
so a broker outage or a crash (even SIGKILL) of the node loses nothing: the backlog is published
again, oldest first, on the next connection. Each message carries its own payload, built once
(with its event id inside), so retries and restarts resend the same bytes.

The queue is bounded. When it is full, the oldest message of the lowest priority goes first and
is counted; the count survives restarts and is reported in the node's heartbeat. The Pi agent and
the RP2040 serial bridge share this module.

Durability: WAL journal. ``synchronous="full"`` (the default) fsyncs every commit, so a power
cut loses nothing either; ``"normal"`` survives a crash of the process but may lose the last
commits on power loss, for much less disk traffic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Outbox", "OutboxMessage", "Pending"]

Synchronous = Literal["full", "normal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    priority INTEGER NOT NULL
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
    """Higher survives longer when the queue is full."""
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Pending:
    """A queued message, as read back for publishing."""

    id: int
    key: str
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    """The queue. Single-threaded: use it from one thread (the agent's event loop)."""

    def __init__(
        self, path: Path | str, *, max_messages: int = 50_000, synchronous: Synchronous = "full"
    ) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if synchronous not in {"full", "normal"}:
            raise ValueError("synchronous must be 'full' or 'normal'")
        self.path = Path(path)
        self.max_messages = max_messages
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.executescript(_SCHEMA)
        self._depth = self._count()

    def close(self) -> None:
        self._db.close()

    def _count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    @property
    def depth(self) -> int:
        """Messages waiting for a PUBACK."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Messages dropped because the queue was full, ever (persisted)."""
        return self.meta("dropped")

    def meta(self, key: str, default: int = 0) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def put(self, messages: Iterable[OutboxMessage], meta: Mapping[str, int] | None = None) -> int:
        """Queue ``messages`` (and set ``meta`` values) in one committed transaction.

        Returns how many older messages were dropped to stay within the bound.
        """
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            added = 0
            for m in messages:
                cur.execute(
                    "INSERT OR IGNORE INTO outbox (key, topic, payload, qos, retain, priority) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (m.key, m.topic, m.payload, m.qos, int(m.retain), m.priority),
                )
                added += cur.rowcount
            for key, value in (meta or {}).items():
                cur.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            excess = self._depth + added - self.max_messages
            dropped = 0
            if excess > 0:
                cur.execute(
                    "DELETE FROM outbox WHERE id IN "
                    "(SELECT id FROM outbox ORDER BY priority, id LIMIT ?)",
                    (excess,),
                )
                dropped = cur.rowcount
                cur.execute(
                    "INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                    (dropped,),
                )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._depth += added - dropped
        return dropped

    def peek(self, limit: int = 64) -> list[Pending]:
        """The oldest ``limit`` messages, in the order they were queued."""
        rows = self._db.execute(
            "SELECT id, key, topic, payload, qos, retain FROM outbox ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [Pending(i, k, t, bytes(p), q, bool(r)) for i, k, t, p, q, r in rows]

    def remove(self, ids: Iterable[int]) -> None:
        """Delete messages the broker acknowledged."""
        batch = [(i,) for i in ids]
        if not batch:
            return
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany("DELETE FROM outbox WHERE id = ?", batch)
            removed = cur.rowcount
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._depth -= removed
