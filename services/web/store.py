"""The display's own SQLite history: alerts (latest state of each), feedback, node status.

It lets a page opened later still see what happened, and survives restarts. Not thread-safe;
one event loop owns it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.messages import Alert, Feedback, NodeStatus

__all__ = ["AlertEntry", "FeedbackEntry", "NodeEntry", "WebStore"]

_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY, site TEXT NOT NULL, category TEXT NOT NULL, location TEXT,
    priority TEXT NOT NULL, state TEXT NOT NULL, active INTEGER NOT NULL,
    raised_at REAL NOT NULL, published_at REAL NOT NULL, received_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_site_time ON alerts (site, published_at);
CREATE INDEX IF NOT EXISTS alerts_active ON alerts (active);
CREATE TABLE IF NOT EXISTS feedback (
    alert_id TEXT NOT NULL, verdict TEXT NOT NULL, by TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (alert_id, verdict, by, at)
);
CREATE TABLE IF NOT EXISTS nodes (
    site TEXT NOT NULL, node TEXT NOT NULL, state TEXT NOT NULL, last_heard REAL NOT NULL,
    payload TEXT NOT NULL, PRIMARY KEY (site, node)
);
"""


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    alert_id: str
    verdict: str
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class AlertEntry:
    alert: Alert
    active: bool
    received_at: float
    feedback: tuple[FeedbackEntry, ...] = ()

    @property
    def handled(self) -> bool:
        """Someone has seen to it: acknowledged, confirmed or called a false alarm."""
        return (
            bool(self.feedback)
            or self.alert.state in {"acknowledged", "false_alarm"}
            or self.alert.by is not None
        )


@dataclass(frozen=True, slots=True)
class NodeEntry:
    status: NodeStatus
    last_heard: float


class WebStore:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One event loop uses it, but TestClient and uvicorn may call from a worker thread.
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_DDL)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def commit(self) -> None:
        self._db.commit()

    # -- alerts ------------------------------------------------------------------------------
    def upsert_alert(self, alert: Alert, *, active: bool, received_at: float) -> bool:
        """Store ``alert`` unless a newer publication of it is already here; ``True`` when
        something changed."""
        row = self._db.execute(
            "SELECT published_at, state, active FROM alerts WHERE alert_id = ?", (alert.alert_id,)
        ).fetchone()
        published = alert.published_at.timestamp()
        if row is not None:
            old_published, old_state, old_active = row
            if published < old_published:
                return False
            if published == old_published and old_state == alert.state:
                return bool(old_active) != active and self.set_active(alert.alert_id, active)
        self._db.execute(
            "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.alert_id, alert.site, alert.category, alert.location, alert.priority,
                alert.state, int(active), alert.raised_at.timestamp(), published, received_at,
                alert.model_dump_json(),
            ),
        )  # fmt: skip
        return True

    def set_active(self, alert_id: str, active: bool) -> bool:
        cur = self._db.execute(
            "UPDATE alerts SET active = ? WHERE alert_id = ? AND active != ?",
            (int(active), alert_id, int(active)),
        )
        return cur.rowcount > 0

    def active_ids(self, site: str, category: str) -> set[str]:
        rows = self._db.execute(
            "SELECT alert_id FROM alerts WHERE site = ? AND category = ? AND active = 1",
            (site, category),
        )
        return {r[0] for r in rows}

    def alert(self, alert_id: str) -> AlertEntry | None:
        entries = self._entries("WHERE alert_id = ?", [alert_id], limit=1)
        return entries[0] if entries else None

    def alerts(
        self,
        *,
        sites: Iterable[str] | None = None,
        since: float | None = None,
        category: str | None = None,
        location: str | None = None,
        active_only: bool = False,
        limit: int = 500,
    ) -> list[AlertEntry]:
        """Newest first."""
        where: list[str] = []
        args: list[Any] = []
        if sites is not None:
            site_list = sorted(sites)
            where.append(f"site IN ({','.join('?' * len(site_list))})" if site_list else "0")
            args += site_list
        if since is not None:
            where.append("published_at >= ?")
            args.append(since)
        if category is not None:
            where.append("category = ?")
            args.append(category)
        if location is not None:
            where.append("location = ?")
            args.append(location)
        if active_only:
            where.append("active = 1")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._entries(clause, args, limit=limit)

    def _entries(self, clause: str, args: list[Any], *, limit: int) -> list[AlertEntry]:
        rows = self._db.execute(
            f"SELECT payload, active, received_at FROM alerts {clause} "  # noqa: S608 - fixed
            "ORDER BY raised_at DESC, published_at DESC LIMIT ?",
            [*args, limit],
        ).fetchall()
        alerts = [(Alert.model_validate_json(p), bool(a), r) for p, a, r in rows]
        feedback = self.feedback([a.alert_id for a, _, _ in alerts])
        return [
            AlertEntry(a, active, received, tuple(feedback.get(a.alert_id, ())))
            for a, active, received in alerts
        ]

    # -- feedback ----------------------------------------------------------------------------
    def add_feedback(self, feedback: Feedback) -> bool:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?)",
            (feedback.alert_id, feedback.verdict, feedback.by, feedback.at.timestamp()),
        )
        return cur.rowcount > 0

    def feedback(self, alert_ids: list[str]) -> dict[str, list[FeedbackEntry]]:
        out: dict[str, list[FeedbackEntry]] = {}
        for start in range(0, len(alert_ids), 500):
            chunk = alert_ids[start : start + 500]
            rows = self._db.execute(
                f"SELECT alert_id, verdict, by, at FROM feedback "  # noqa: S608 - placeholders
                f"WHERE alert_id IN ({','.join('?' * len(chunk))}) ORDER BY at",
                chunk,
            )
            for alert_id, verdict, by, at in rows:
                out.setdefault(alert_id, []).append(FeedbackEntry(alert_id, verdict, by, at))
        return out

    # -- nodes -------------------------------------------------------------------------------
    def upsert_node(self, status: NodeStatus, last_heard: float) -> bool:
        row = self._db.execute(
            "SELECT last_heard FROM nodes WHERE site = ? AND node = ?", (status.site, status.node)
        ).fetchone()
        if row is not None and row[0] > last_heard:
            return False
        self._db.execute(
            "INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?)",
            (status.site, status.node, status.state, last_heard, status.model_dump_json()),
        )
        return True

    def nodes(self) -> list[NodeEntry]:
        rows = self._db.execute("SELECT payload, last_heard FROM nodes ORDER BY site, node")
        return [NodeEntry(NodeStatus.model_validate_json(p), heard) for p, heard in rows]

    def node(self, site: str, node: str) -> NodeEntry | None:
        row = self._db.execute(
            "SELECT payload, last_heard FROM nodes WHERE site = ? AND node = ?", (site, node)
        ).fetchone()
        return None if row is None else NodeEntry(NodeStatus.model_validate_json(row[0]), row[1])

    # -- housekeeping ------------------------------------------------------------------------
    def prune(self, before: float) -> int:
        """Forget inactive alerts published before ``before``; returns how many."""
        cur = self._db.execute(
            "DELETE FROM alerts WHERE published_at < ? AND active = 0", (before,)
        )
        self._db.execute("DELETE FROM feedback WHERE alert_id NOT IN (SELECT alert_id FROM alerts)")
        return cur.rowcount
