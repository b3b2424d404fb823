"""SQLite state for the aggregator: nodes, events, hits, alerts, history, feedback, publications.

Writes are batched by the service: it commits before it publishes anything and before it
acknowledges the MQTT messages that caused the change. Publications go through an outbox
table, so a crash between commit and publish re-publishes on restart instead of losing an
alert, and a crash after publish but before the outbox row is cleared re-sends at most that
one message.

Two failures must never stop the aggregator:

* **One message whose processing fails** (after it was validated): each message's writes run
  inside a savepoint (:meth:`Store.isolated`) and are undone alone, so the rest of the batch
  still commits and the message can be dead-lettered (:meth:`Store.dead_letter`).
* **A commit that fails** (a full disk, an I/O error): SQLite rolls the transaction back, but
  every write since the last good commit is kept in a journal and replayed into a new
  transaction at once, so what the aggregator reads stays what it decided. :meth:`commit`
  raises :class:`StorageError`, and the next call tries again with everything; the service
  keeps alerting from memory meanwhile. ``cache_spill`` is off, so uncommitted pages stay in
  memory instead of being written to a disk that cannot take them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "AlertRow",
    "HitRow",
    "NodeRow",
    "Publication",
    "StorageError",
    "Store",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

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
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, site TEXT NOT NULL, node TEXT NOT NULL, seq INTEGER NOT NULL,
    window_end REAL NOT NULL, received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, received_at REAL NOT NULL
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
CREATE INDEX IF NOT EXISTS late_events_received ON late_events (received_at);
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
CREATE INDEX IF NOT EXISTS alert_history_alert ON alert_history (alert_id);
CREATE INDEX IF NOT EXISTS alert_history_published ON alert_history (published_at);
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

# Columns added after schema version 1: (table, column, declaration).
_ADDED_COLUMNS = (
    ("nodes", "acked_seq", "INTEGER NOT NULL DEFAULT -1"),
    ("nodes", "seqs_above", "TEXT NOT NULL DEFAULT '[]'"),
    ("nodes", "clock_offset_s", "REAL"),
)
_NODE_COLUMNS = (
    "site, node, state, heartbeat_s, last_heard, last_seq, watermark, offline_alert_id, "
    "software, stats, acked_seq, seqs_above, clock_offset_s"
)


def upsert(table: str, columns: str, key: str) -> str:
    """An insert-or-update statement both SQLite (>= 3.24) and PostgreSQL understand."""
    names = [c.strip() for c in columns.split(",")]
    keys = {k.strip() for k in key.split(",")}
    updates = ", ".join(f"{c}=excluded.{c}" for c in names if c not in keys)
    marks = ",".join("?" * len(names))
    return (f"INSERT INTO {table} ({columns}) VALUES ({marks}) "  # noqa: S608 - constant names
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}")  # fmt: skip


_SAVE_NODE = upsert("nodes", _NODE_COLUMNS, "site, node")
_SAVE_ALERT = upsert("alerts", "alert_id, site, category, active, state, payload, internal",
                     "alert_id")  # fmt: skip
_SET_COUNTER = upsert("counters", "name, value", "name")
_SET_META = upsert("meta", "key, value", "key")
_SET_COOLDOWN = upsert("cooldowns", "site, category, until", "site, category")


class StorageError(Exception):
    """A commit failed (disk full, I/O error). Nothing is lost from memory: the next
    :meth:`Store.commit` writes everything since the last good one."""


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
    acked_seq: int = -1
    """End-to-end delivery: every event seq up to this one is stored (see DeliveryAck)."""
    seqs_above: set[int] = field(default_factory=set)
    """Stored seqs above ``acked_seq``, waiting for the gap below them to fill."""
    clock_offset_s: float | None = None
    """The node's clock minus ours, from its last live status (or a rejected future event)."""


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
    id: int | None
    """The outbox row; ``None`` for a message that needs none (a delivery ack, derived
    from committed state and sent again after a reconnect)."""
    topic: str
    payload: bytes
    retain: bool


class Store:
    """The aggregator's SQLite database. Not thread-safe; one event loop owns it.

    :class:`~services.aggregator.store_pg.PostgresStore` is the same store on PostgreSQL (hosted
    mode): every query here is written in the SQL both understand, and a backend supplies only
    the connection (:meth:`_x`, :meth:`_in_transaction`), the schema, and a few statistics."""

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    """What this store's reads and writes raise when the database fails."""
    _location_sql = "json_extract(a.payload, '$.location')"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Transactions are ours (BEGIN in _write, COMMIT in commit), not the sqlite3 module's.
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (SIGKILL); only an OS crash or power
        # loss can lose the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
        self._db.execute("PRAGMA cache_spill=OFF")
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        self._db.executescript(f"BEGIN; {_DDL} COMMIT;")
        self._open()

    def _open(self) -> None:
        """Everything after the schema exists: the same for every backend."""
        self._journal: list[tuple[str, tuple[Any, ...]]] = []
        self._stale = False  # the open transaction lacks some journalled writes
        self._migrate()
        meta = "INSERT INTO meta VALUES (?, ?) ON CONFLICT DO NOTHING"
        self._write(meta, ("schema_version", str(SCHEMA_VERSION)))
        self._write(meta, ("salt", secrets.token_hex(3)))
        self.commit()
        self.salt: str = self._x("SELECT value FROM meta WHERE key='salt'").fetchone()[0]
        self._counters: dict[str, int] = {
            r[0]: int(r[1]) for r in self._x("SELECT name, value FROM counters")
        }

    # -- the connection (what a backend overrides) -------------------------------------------
    def _x(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run one statement (``?`` placeholders) and return its cursor."""
        return self._db.execute(sql, params)

    def _in_transaction(self) -> bool:
        return self._db.in_transaction

    def _migrate(self) -> None:
        for table, column, declaration in _ADDED_COLUMNS:
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._write(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._write("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        self.commit()

    def close(self) -> None:
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
        self._db.close()

    def _reconnect(self) -> None:
        """Called before a replay; a backend whose connection can break opens a new one."""

    # -- transactions ------------------------------------------------------------------------
    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Every change goes through here: journalled until it is committed."""
        self._begin()
        self._journal.append((sql, params))
        return self._x(sql, params)

    def _write_many(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        for params in rows:
            self._write(sql, params)

    def _begin(self) -> None:
        if self._stale:
            self._replay()
        if not self._in_transaction():
            self._x("BEGIN")

    def _replay(self) -> None:
        """Make the open transaction hold every journalled write again (after SQLite rolled
        back a failed commit). If even that fails, reads are stale until a commit succeeds."""
        with contextlib.suppress(*self.errors):
            if self._in_transaction():
                self._x("ROLLBACK")
        try:
            self._reconnect()
            self._x("BEGIN")
            for sql, params in self._journal:
                self._x(sql, params)
        except self.errors as exc:
            with contextlib.suppress(*self.errors):
                self._x("ROLLBACK")
            self._stale = True
            log.error("cannot replay %d uncommitted writes (%s); retrying at the next commit",  # noqa: TRY400
                      len(self._journal), exc)  # fmt: skip
        else:
            self._stale = False

    @property
    def uncommitted(self) -> int:
        """Writes not yet committed (grows while commits fail)."""
        return len(self._journal)

    def commit(self) -> None:
        """Commit every write since the last good commit. Raises :class:`StorageError` when it
        cannot; the writes stay journalled, and visible to reads, for the next attempt."""
        if self._stale:
            self._replay()
        if not self._in_transaction():
            if self._stale:
                raise StorageError("the uncommitted writes could not be replayed")
            self._journal.clear()
            return
        try:
            self._commit_transaction()
        except self.errors as exc:
            if not self._in_transaction():  # rolled back (disk full, I/O error, lost server)
                self._replay()
            raise StorageError(str(exc)) from exc
        self._journal.clear()

    def _commit_transaction(self) -> None:
        self._x("COMMIT")

    @contextlib.contextmanager
    def isolated(self) -> Iterator[None]:
        """One message's writes: if the body raises, they are undone and left out of the
        journal, and everything written before stays."""
        self._begin()
        mark = len(self._journal)
        self._x("SAVEPOINT message")
        try:
            yield
        except BaseException:
            del self._journal[mark:]
            try:
                self._x("ROLLBACK TO SAVEPOINT message")
                self._x("RELEASE SAVEPOINT message")
            except self.errors:
                self._stale = True  # replay rebuilds the transaction from the journal
            raise
        try:
            self._x("RELEASE SAVEPOINT message")
        except self.errors:
            self._stale = True

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

    # -- bookkeeping -------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A value the service keeps with its state (the hosted mode: the last stream sequence
        whose effects are committed), or ``None``."""
        row = self._x("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set it in the current transaction: it commits with the effects it describes."""
        self._write(_SET_META, (key, value))

    # -- nodes -------------------------------------------------------------------------------
    def nodes(self) -> list[NodeRow]:
        rows = self._x(f"SELECT {_NODE_COLUMNS} FROM nodes")  # noqa: S608 - constant
        return [
            NodeRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                    set(json.loads(r[11])), r[12])
            for r in rows
        ]  # fmt: skip

    def save_nodes(self, nodes: Iterable[NodeRow]) -> None:
        self._write_many(
            _SAVE_NODE,
            [
                (
                    n.site, n.node, n.state, n.heartbeat_s, n.last_heard, n.last_seq,
                    n.watermark, n.offline_alert_id, n.software, n.stats, n.acked_seq,
                    json.dumps(sorted(n.seqs_above)), n.clock_offset_s,
                )
                for n in nodes
            ],
        )  # fmt: skip

    # -- events ------------------------------------------------------------------------------
    def add_event(self, event_id: str, *, site: str, node: str, seq: int, end: float,
                  received: float) -> bool:  # fmt: skip
        """Record a received event; ``False`` when its id was recorded before (a duplicate)."""
        cursor = self._write(
            "INSERT INTO events VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (event_id, site, node, seq, end, received),
        )
        return bool(cursor.rowcount == 1)

    def is_known_event(self, event_id: str) -> bool:
        found = self._x("SELECT 1 FROM events WHERE event_id=?", (event_id,)).fetchone()
        return found is not None

    def dead_letter(self, topic: str, payload: bytes, *, reason: str, detail: str,
                    received: float) -> None:  # fmt: skip
        """Keep a message whose processing failed, with why, for someone to look at."""
        self._write(
            "INSERT INTO dead_letters (topic, payload, reason, detail, received_at) "
            "VALUES (?,?,?,?,?)",
            (topic, payload, reason, detail[:2000], received),
        )

    def dead_letters(self) -> list[tuple[str, bytes, str, str]]:
        """(topic, payload, reason, detail), oldest first."""
        cursor = self._x("SELECT topic, payload, reason, detail FROM dead_letters ORDER BY id")
        return [(r[0], bytes(r[1]), r[2], r[3]) for r in cursor]

    # -- hits and late events ----------------------------------------------------------------
    def add_hit(self, hit: HitRow, received_at: float, alert_id: str | None) -> None:
        self._write(
            "INSERT INTO hits VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (
                hit.event_id, hit.category, hit.site, hit.node, hit.start, hit.end, hit.score,
                hit.weight, hit.level, alert_id, received_at,
            ),
        )  # fmt: skip

    def attach_hits(self, alert_id: str, hits: list[HitRow]) -> None:
        self._write_many(
            "UPDATE hits SET alert_id=? WHERE event_id=? AND category=?",
            [(alert_id, h.event_id, h.category) for h in hits],
        )

    def move_hits(self, from_alert: str, to_alert: str) -> None:
        """Give every hit of one alert to another (an alert upgraded to a stronger one)."""
        self._write("UPDATE hits SET alert_id=? WHERE alert_id=?", (to_alert, from_alert))

    def hits(self, *, alert_id: str | None) -> Iterator[tuple[HitRow, str | None]]:
        query = (
            "SELECT event_id, category, site, node, window_start, window_end, score, weight, "
            "level, alert_id FROM hits WHERE "
        )
        if alert_id is None:
            cursor = self._x(query + "alert_id IS NULL ORDER BY window_end")
        else:
            cursor = self._x(query + "alert_id=? ORDER BY window_end", (alert_id,))
        for row in cursor:
            yield HitRow(*row[:9]), row[9]

    def prune_pending(self, site: str, category: str, node: str, before: float) -> None:
        self._write(
            "DELETE FROM hits WHERE alert_id IS NULL AND site=? AND category=? AND node=? "
            "AND window_end < ?",
            (site, category, node, before),
        )

    def add_late(
        self, event_id: str, *, site: str, node: str, end: float, behind: float,
        received: float, payload: str,
    ) -> None:  # fmt: skip
        self._write(
            "INSERT INTO late_events VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (event_id, site, node, end, behind, received, payload),
        )

    # -- alerts ------------------------------------------------------------------------------
    def next_counter(self, name: str) -> int:
        # Counted in memory too: an id is never handed out twice, whatever the disk does.
        value = self._counters.get(name, 0) + 1
        self._counters[name] = value
        self._write(_SET_COUNTER, (name, value))
        return value

    def save_alert(self, row: AlertRow) -> None:
        self._write(
            _SAVE_ALERT,
            (
                row.alert_id, row.site, row.category, int(row.active), row.state, row.payload,
                json.dumps(row.internal),
            ),
        )  # fmt: skip

    def record_history(self, alert_id: str, state: str, published_at: str, payload: str) -> None:
        self._write(
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
            for r in self._x(query, params)
        ]

    def alert(self, alert_id: str) -> AlertRow | None:
        r = self._x(
            "SELECT alert_id, site, category, active, state, payload, internal FROM alerts "
            "WHERE alert_id=?",
            (alert_id,),
        ).fetchone()
        return None if r is None else AlertRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5],
                                               json.loads(r[6]))  # fmt: skip

    def history(self, alert_id: str | None = None) -> list[tuple[str, str, str]]:
        """(alert_id, state, payload) in publication order."""
        if alert_id is None:
            cursor = self._x("SELECT alert_id, state, payload FROM alert_history ORDER BY id")
        else:
            cursor = self._x(
                "SELECT alert_id, state, payload FROM alert_history WHERE alert_id=? ORDER BY id",
                (alert_id,),
            )
        return [(r[0], r[1], r[2]) for r in cursor]

    def cooldowns(self) -> dict[tuple[str, str], float]:
        return {(r[0], r[1]): r[2] for r in self._x("SELECT site, category, until FROM cooldowns")}

    def set_cooldown(self, site: str, category: str, until: float) -> None:
        self._write(_SET_COOLDOWN, (site, category, until))

    # -- feedback ----------------------------------------------------------------------------
    def add_feedback(self, alert_id: str, verdict: str, by: str, at: str, received: float) -> bool:
        """Record feedback; ``False`` when this exact feedback was already recorded."""
        cursor = self._write(
            "INSERT INTO feedback VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            (alert_id, verdict, by, at, received),
        )
        return bool(cursor.rowcount == 1)

    def reviews_by_location(self, since: float) -> list[tuple[str, str, int, int]]:
        """(site, node, alerts reviewed, of which false alarms) since ``since``, by the
        alerts' location; soundalert's own trouble alerts are not about sound."""
        node = self._location_sql
        rows = self._x(
            f"SELECT a.site, {node} AS node, COUNT(DISTINCT f.alert_id), "  # noqa: S608 - constant
            "COUNT(DISTINCT CASE WHEN f.verdict = 'false_alarm' THEN f.alert_id END) "
            "FROM feedback f JOIN alerts a USING (alert_id) "
            f"WHERE f.received_at >= ? AND {node} IS NOT NULL AND a.category NOT IN "
            f"('node_offline', 'node_online', 'storage_trouble') GROUP BY a.site, {node}",
            (since,),
        )
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    # -- retention ---------------------------------------------------------------------------
    def prune(self, before: float, *, limit: int) -> dict[str, int]:
        """Delete up to ``limit`` rows per table of what ended before ``before`` (epoch s):
        the event log, late events and dead letters by when they came, and closed alerts
        with their history, hits and feedback by their last publication. Open alerts and
        the hits of any open alert are kept, however old. Returns rows deleted per table."""
        stamp = datetime.fromtimestamp(before, UTC).isoformat()
        old_alerts = [r[0] for r in self._x(
            "SELECT alert_id FROM alerts WHERE active=0 AND alert_id NOT IN "
            "(SELECT alert_id FROM alert_history WHERE published_at >= ?) LIMIT ?",
            (stamp, limit),
        )]  # fmt: skip
        deleted: dict[str, int] = {}
        for table, key in (("events", "event_id"), ("late_events", "event_id"),
                           ("dead_letters", "id")):  # fmt: skip
            cursor = self._write(
                f"DELETE FROM {table} WHERE {key} IN "  # noqa: S608 - constant names
                f"(SELECT {key} FROM {table} WHERE received_at < ? LIMIT ?)",
                (before, limit),
            )
            deleted[table] = cursor.rowcount
        for table in ("hits", "alert_history", "feedback", "alerts"):
            deleted[table] = 0
            for alert_id in old_alerts:
                cursor = self._write(f"DELETE FROM {table} WHERE alert_id=?", (alert_id,))  # noqa: S608
                deleted[table] += cursor.rowcount
        cursor = self._write("DELETE FROM cooldowns WHERE until < ?", (before,))
        deleted["cooldowns"] = cursor.rowcount
        return deleted

    def used_bytes(self) -> int:
        """Bytes of the database in use (deleted rows' pages are free for reuse, not given
        back to the file system: the file stops growing, it does not shrink)."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def row_counts(self) -> dict[str, int]:
        """Rows per table that retention bounds (for metrics)."""
        tables = ("events", "late_events", "dead_letters", "hits", "alerts", "alert_history",
                  "feedback")  # fmt: skip
        return {t: int(self._x(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # noqa: S608
                for t in tables}  # fmt: skip

    # -- publication outbox ------------------------------------------------------------------
    def enqueue(self, topic: str, payload: bytes, *, retain: bool) -> Publication:
        """Queue a publication (in the current transaction); the service sends it once committed."""
        cursor = self._write(
            "INSERT INTO outbox (topic, payload, retain) VALUES (?,?,?)",
            (topic, payload, int(retain)),
        )
        assert cursor.lastrowid is not None
        return Publication(cursor.lastrowid, topic, payload, retain)

    def pending_publications(self) -> list[Publication]:
        return [
            Publication(r[0], r[1], bytes(r[2]), bool(r[3]))
            for r in self._x("SELECT id, topic, payload, retain FROM outbox ORDER BY id")
        ]

    def published(self, ids: list[int]) -> None:
        self._write_many("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])
