"""SQLite state for the notifier: what was seen, pending escalations, queued deliveries, snoozes.

The shell commits a state change's deliveries (the outbox) together with its ``seen`` marker
and the alert's track before it acknowledges the MQTT message. So a redelivered message
notifies nobody twice, a crash before the commit makes the broker redeliver it, and a restart
resumes both undelivered notifications and escalation timers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from schemas.messages import Alert
from services.notifier.core import Delivery, Track

__all__ = ["Queued", "Store"]

_DDL = """
CREATE TABLE IF NOT EXISTS seen (
    alert_id TEXT NOT NULL, state TEXT NOT NULL, repeat INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (alert_id, state, repeat)
);
CREATE TABLE IF NOT EXISTS tracks (
    alert_id TEXT PRIMARY KEY, site TEXT NOT NULL, category TEXT NOT NULL,
    priority TEXT NOT NULL, state TEXT NOT NULL, repeat INTEGER NOT NULL,
    published_at REAL NOT NULL, cleared INTEGER NOT NULL, escalate_at REAL,
    escalations INTEGER NOT NULL, alert TEXT
);
CREATE INDEX IF NOT EXISTS tracks_escalate ON tracks (escalate_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, channel TEXT NOT NULL,
    kind TEXT NOT NULL, escalation INTEGER NOT NULL, alert TEXT NOT NULL, queued_at REAL NOT NULL,
    recipient INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS snoozes (
    site TEXT NOT NULL, category TEXT NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (site, category)
);
"""
_KEEP_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Queued:
    id: int
    delivery: Delivery
    queued_at: float


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level="DEFERRED")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_DDL)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(outbox)")}
        if "recipient" not in columns:  # an outbox from before per-recipient delivery
            self.db.execute("ALTER TABLE outbox ADD COLUMN recipient INTEGER NOT NULL DEFAULT 0")
        self.db.commit()

    # -- duplicates --------------------------------------------------------------------------
    def seen(self, alert_id: str, state: str, repeat: int) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM seen WHERE alert_id=? AND state=? AND repeat=?",
            (alert_id, state, repeat),
        ).fetchone()
        return row is not None

    def mark_seen(self, alert_id: str, state: str, repeat: int, now: float) -> None:
        self.db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?)",
                        (alert_id, state, repeat, now))  # fmt: skip

    # -- tracks ------------------------------------------------------------------------------
    def track(self, alert_id: str) -> Track | None:
        row = self.db.execute("SELECT * FROM tracks WHERE alert_id=?", (alert_id,)).fetchone()
        return None if row is None else self._track(row)

    def escalating(self) -> list[Track]:
        rows = self.db.execute("SELECT * FROM tracks WHERE escalate_at IS NOT NULL").fetchall()
        return [self._track(row) for row in rows]

    @staticmethod
    def _track(row: tuple[object, ...]) -> Track:
        (alert_id, site, category, priority, state, repeat, published_at, cleared,
         escalate_at, escalations, alert) = row  # fmt: skip
        return Track(
            alert_id=str(alert_id),
            site=str(site),
            category=str(category),
            priority=str(priority),
            state=str(state),
            repeat=int(str(repeat)),
            published_at=float(str(published_at)),
            cleared=bool(cleared),
            escalate_at=None if escalate_at is None else float(str(escalate_at)),
            escalations=int(str(escalations)),
            alert=None if alert is None else Alert.model_validate_json(str(alert)),
        )

    def save_track(self, track: Track) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO tracks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (track.alert_id, track.site, track.category, track.priority, track.state,
             track.repeat, track.published_at, int(track.cleared), track.escalate_at,
             track.escalations,
             None if track.alert is None else track.alert.model_dump_json()),
        )  # fmt: skip

    # -- outbox ------------------------------------------------------------------------------
    def enqueue(self, delivery: Delivery, now: float) -> int:
        cursor = self.db.execute(
            "INSERT INTO outbox (site, channel, kind, escalation, alert, queued_at, recipient) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (delivery.site, delivery.channel, delivery.kind, delivery.escalation,
             delivery.alert.model_dump_json(), now, delivery.recipient),
        )  # fmt: skip
        return int(cursor.lastrowid or 0)

    def queued(self) -> list[Queued]:
        rows = self.db.execute(
            "SELECT id, site, channel, kind, escalation, alert, queued_at, recipient "
            "FROM outbox ORDER BY id"
        ).fetchall()
        out = []
        for i, site, channel, kind, esc, alert, at, recipient in rows:
            delivery = Delivery(site, channel, kind, Alert.model_validate_json(alert), int(esc),
                                int(recipient))  # fmt: skip
            out.append(Queued(int(i), delivery, float(at)))
        return out

    def done(self, outbox_id: int) -> None:
        self.db.execute("DELETE FROM outbox WHERE id=?", (outbox_id,))
        self.db.commit()

    # -- snoozes -----------------------------------------------------------------------------
    def snoozes(self, now: float) -> dict[tuple[str, str], float]:
        rows = self.db.execute("SELECT site, category, until FROM snoozes WHERE until > ?",
                               (now,)).fetchall()  # fmt: skip
        return {(str(s), str(c)): float(u) for s, c, u in rows}

    def set_snooze(self, site: str, category: str, until: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO snoozes VALUES (?, ?, ?)", (site, category, until))
        self.db.commit()

    # -- housekeeping ------------------------------------------------------------------------
    def prune(self, now: float) -> None:
        """Forget what is older than a week (alerts last minutes)."""
        horizon = now - _KEEP_S
        self.db.execute("DELETE FROM seen WHERE at < ?", (horizon,))
        self.db.execute(
            "DELETE FROM tracks WHERE published_at < ? AND escalate_at IS NULL", (horizon,)
        )
        self.db.execute("DELETE FROM snoozes WHERE until < ?", (now,))
        self.commit()

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()
