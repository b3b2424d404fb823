"""SQLite state for the aggregator: nodes, hits, alerts, history, feedback, publications.

Writes are batched by the service: it commits before it publishes anything and before it
acknowledges the MQTT messages that caused the change. Publications go through an outbox
table, so a crash between commit and publish re-publishes on restart instead of losing an
alert, and a crash after publish but before the outbox row is cleared re-sends at most that
one message.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AlertRow", "HitRow", "NodeRow", "Publication", "Store"]

SCHEMA_VERSION = 1

# A checkpoint copies the WAL into the database file and fsyncs it: milliseconds that would stall
# the event loop every few hundred commits. The service runs checkpoints from a worker thread
# (Store.checkpoint); this high automatic threshold only bounds the WAL should that stop.
_AUTOCHECKPOINT_PAGES = 10_000

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    site TEXT NOT NULL, node TEXT NOT NULL, state TEXT NOT NULL, heartbeat_s REAL NOT NULL,
    last_heard REAL NOT NULL, last_seq INTEGER NOT NULL, watermark REAL NOT NULL,
    offline_alert_id TEXT, software TEXT NOT NULL DEFAULT '', stats TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (site, node)
);
CREATE TABLE IF NOT EXISTS hits (
    event_id TEXT NOT NULL, category TEXT NOT NULL, site TEXT NOT NULL, node TEXT NOT NULL,
    window_start REAL NOT NULL, window_end REAL NOT NULL, score REAL NOT NULL,
    weight INTEGER NOT NULL, level REAL, alert_id TEXT, received_at REAL NOT NULL,
    PRIMARY KEY (event_id, category)
);
CREATE INDEX IF NOT EXISTS hits_alert ON hits (alert_id);
CREATE TABLE IF NOT EXISTS late_events (
    event_id TEXT PRIMARY KEY, site TEXT NOT NULL, node TEXT NOT NULL,
    window_end REAL NOT NULL, behind_s REAL NOT NULL, received_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY, site TEXT NOT NULL, category TEXT NOT NULL,
    active INTEGER NOT NULL, state TEXT NOT NULL, payload TEXT NOT NULL,
    internal TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS alerts_active ON alerts (active);
CREATE TABLE IF NOT EXISTS alert_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, state TEXT NOT NULL,
    published_at TEXT NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cooldowns (
    site TEXT NOT NULL, category TEXT NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (site, category)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    alert_id TEXT NOT NULL, verdict TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL,
    received_at REAL NOT NULL, PRIMARY KEY (alert_id, verdict, by, at)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    retain INTEGER NOT NULL
);
"""


@dataclass(slots=True)
class NodeRow:
    site: str
    node: str
    state: str
    heartbeat_s: float
    last_heard: float
    last_seq: int
    watermark: float
    offline_alert_id: str | None = None
    software: str = ""
    stats: str = "{}"


@dataclass(frozen=True, slots=True)
class HitRow:
    event_id: str
    category: str
    site: str
    node: str
    start: float
    end: float
    score: float
    weight: int
    level: float | None


@dataclass(slots=True)
class AlertRow:
    alert_id: str
    site: str
    category: str
    active: bool
    state: str
    payload: str
    internal: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Publication:
    id: int
    topic: str
    payload: bytes
    retain: bool


class Store:
    """The aggregator's SQLite database. Not thread-safe; one event loop owns it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (SIGKILL); only an OS crash or power
        # loss can lose the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        self._db.executescript(_DDL)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (secrets.token_hex(3),))
        self._db.commit()
        self.salt: str = self._db.execute("SELECT value FROM meta WHERE key='salt'").fetchone()[0]

    def close(self) -> None:
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        self._db.close()

    def commit(self) -> None:
        self._db.commit()

    def checkpoint(self) -> None:
        """Copy committed WAL frames into the database file without blocking the writer.

        Safe to call from another thread (it uses its own connection), which is how the service
        keeps checkpoint I/O off its event loop. Durability does not depend on it.
        """
        if self.path is None:
            return
        with self._checkpoint_lock:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(str(self.path), check_same_thread=False)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    # -- nodes -------------------------------------------------------------------------------
    def nodes(self) -> list[NodeRow]:
        rows = self._db.execute(
            "SELECT site, node, state, heartbeat_s, last_heard, last_seq, watermark, "
            "offline_alert_id, software, stats FROM nodes"
        ).fetchall()
        return [NodeRow(*row) for row in rows]

    def save_nodes(self, nodes: list[NodeRow]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO nodes VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    n.site, n.node, n.state, n.heartbeat_s, n.last_heard, n.last_seq,
                    n.watermark, n.offline_alert_id, n.software, n.stats,
                )
                for n in nodes
            ],
        )  # fmt: skip

    # -- hits and late events ----------------------------------------------------------------
    def add_hit(self, hit: HitRow, received_at: float, alert_id: str | None) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO hits VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                hit.event_id, hit.category, hit.site, hit.node, hit.start, hit.end, hit.score,
                hit.weight, hit.level, alert_id, received_at,
            ),
        )  # fmt: skip

    def attach_hits(self, alert_id: str, hits: list[HitRow]) -> None:
        self._db.executemany(
            "UPDATE hits SET alert_id=? WHERE event_id=? AND category=?",
            [(alert_id, h.event_id, h.category) for h in hits],
        )

    def move_hits(self, from_alert: str, to_alert: str) -> None:
        """Give every hit of one alert to another (an alert upgraded to a stronger one)."""
        self._db.execute("UPDATE hits SET alert_id=? WHERE alert_id=?", (to_alert, from_alert))

    def hits(self, *, alert_id: str | None) -> Iterator[tuple[HitRow, str | None]]:
        query = (
            "SELECT event_id, category, site, node, window_start, window_end, score, weight, "
            "level, alert_id FROM hits WHERE "
        )
        if alert_id is None:
            cursor = self._db.execute(query + "alert_id IS NULL ORDER BY window_end")
        else:
            cursor = self._db.execute(query + "alert_id=? ORDER BY window_end", (alert_id,))
        for row in cursor:
            yield HitRow(*row[:9]), row[9]

    def is_known_event(self, event_id: str) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM hits WHERE event_id=? UNION ALL "
            "SELECT 1 FROM late_events WHERE event_id=? LIMIT 1",
            (event_id, event_id),
        ).fetchone()
        return found is not None

    def prune_pending(self, site: str, category: str, node: str, before: float) -> None:
        self._db.execute(
            "DELETE FROM hits WHERE alert_id IS NULL AND site=? AND category=? AND node=? "
            "AND window_end < ?",
            (site, category, node, before),
        )

    def add_late(
        self, event_id: str, *, site: str, node: str, end: float, behind: float,
        received: float, payload: str,
    ) -> None:  # fmt: skip
        self._db.execute(
            "INSERT OR IGNORE INTO late_events VALUES (?,?,?,?,?,?,?)",
            (event_id, site, node, end, behind, received, payload),
        )

    # -- alerts ------------------------------------------------------------------------------
    def next_counter(self, name: str) -> int:
        self._db.execute(
            "INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
            (name,),
        )
        value: int = self._db.execute(
            "SELECT value FROM counters WHERE name=?", (name,)
        ).fetchone()[0]
        return value

    def save_alert(self, row: AlertRow) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO alerts VALUES (?,?,?,?,?,?,?)",
            (
                row.alert_id, row.site, row.category, int(row.active), row.state, row.payload,
                json.dumps(row.internal),
            ),
        )  # fmt: skip

    def record_history(self, alert_id: str, state: str, published_at: str, payload: str) -> None:
        self._db.execute(
            "INSERT INTO alert_history (alert_id, state, published_at, payload) VALUES (?,?,?,?)",
            (alert_id, state, published_at, payload),
        )

    def alerts(self, *, active: bool | None = None) -> list[AlertRow]:
        query = "SELECT alert_id, site, category, active, state, payload, internal FROM alerts"
        params: tuple[Any, ...] = ()
        if active is not None:
            query += " WHERE active=?"
            params = (int(active),)
        return [
            AlertRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], json.loads(r[6]))
            for r in self._db.execute(query, params)
        ]

    def alert(self, alert_id: str) -> AlertRow | None:
        r = self._db.execute(
            "SELECT alert_id, site, category, active, state, payload, internal FROM alerts "
            "WHERE alert_id=?",
            (alert_id,),
        ).fetchone()
        return None if r is None else AlertRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5],
                                               json.loads(r[6]))  # fmt: skip

    def history(self, alert_id: str | None = None) -> list[tuple[str, str, str]]:
        """(alert_id, state, payload) in publication order."""
        if alert_id is None:
            cursor = self._db.execute(
                "SELECT alert_id, state, payload FROM alert_history ORDER BY id"
            )
        else:
            cursor = self._db.execute(
                "SELECT alert_id, state, payload FROM alert_history WHERE alert_id=? ORDER BY id",
                (alert_id,),
            )
        return [(r[0], r[1], r[2]) for r in cursor]

    def cooldowns(self) -> dict[tuple[str, str], float]:
        return {(r[0], r[1]): r[2] for r in self._db.execute("SELECT * FROM cooldowns")}

    def set_cooldown(self, site: str, category: str, until: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO cooldowns VALUES (?,?,?)", (site, category, until))

    # -- feedback ----------------------------------------------------------------------------
    def add_feedback(self, alert_id: str, verdict: str, by: str, at: str, received: float) -> bool:
        """Record feedback; ``False`` when this exact feedback was already recorded."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO feedback VALUES (?,?,?,?,?)",
            (alert_id, verdict, by, at, received),
        )
        return cursor.rowcount == 1

    # -- publication outbox ------------------------------------------------------------------
    def enqueue(self, topic: str, payload: bytes, *, retain: bool) -> Publication:
        """Queue a publication (in the current transaction); the service sends it once committed."""
        cursor = self._db.execute(
            "INSERT INTO outbox (topic, payload, retain) VALUES (?,?,?)",
            (topic, payload, int(retain)),
        )
        assert cursor.lastrowid is not None
        return Publication(cursor.lastrowid, topic, payload, retain)

    def pending_publications(self) -> list[Publication]:
        return [
            Publication(r[0], r[1], bytes(r[2]), bool(r[3]))
            for r in self._db.execute("SELECT id, topic, payload, retain FROM outbox ORDER BY id")
        ]

    def published(self, ids: list[int]) -> None:
        self._db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])
