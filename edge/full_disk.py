"""SQLite on a disk that may fill up: what :mod:`edge.outbox` needs to keep working there.

On a full disk every write needs room first, deletes included: SQLite journals the pages a
delete changes. So the outbox keeps its rollback journal between transactions
(``journal_mode=PERSIST``, it never has to grow back), gives deleted pages back to the
filesystem at once (``auto_vacuum=FULL``), and sets aside a small reserve file that it gives up
to journal the deletes that make room, and takes back once they freed enough. (A write-ahead log
would itself fill the disk, and then no delete can be logged: measured on a 300 KB tmpfs.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Final

__all__ = ["DiskReserve", "free_bytes", "is_disk_full", "rollback", "use_auto_vacuum"]

log = logging.getLogger(__name__)

_RETRY_S: Final = 30.0


def is_disk_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL


def rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is open. SQLite may already have rolled back by itself (it
    does on SQLITE_FULL): an explicit ROLLBACK would then fail and hide the real error."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def use_auto_vacuum(db: sqlite3.Connection, name: Path) -> None:
    """Deleted rows give their pages back to the filesystem at once (``auto_vacuum=FULL``);
    a database made without it is rebuilt once (if the disk has room for that now)."""
    (mode,) = db.execute("PRAGMA auto_vacuum").fetchone()
    if mode == 1:
        return
    db.execute("PRAGMA auto_vacuum=FULL")
    (tables,) = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    if tables:
        try:
            db.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("%s: cannot switch on auto_vacuum now (%s); a full disk will only be "
                        "relieved inside the file", name, exc)  # fmt: skip


def free_bytes(db: sqlite3.Connection, directory: Path) -> int:
    """Room for new rows: free space on the filesystem plus free pages inside the file."""
    fs = os.statvfs(directory)
    (pages,) = db.execute("PRAGMA freelist_count").fetchone()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    return int(fs.f_bavail * fs.f_frsize + pages * page_size)


class DiskReserve:
    """A file of ``size`` bytes set aside next to a database, given up when the disk is full."""

    def __init__(self, path: Path | None, size: int) -> None:
        if size < 0:
            raise ValueError("the reserve must not be negative")
        self.path = path
        self.size = size
        self._tried = float("-inf")

    def take(self, *, now: bool = False) -> None:
        """Set the room aside if it is not (retried at most every 30 s unless ``now``)."""
        if self.path is None or not self.size or self.path.exists():
            return
        clock = time.monotonic()
        if not now and clock - self._tried < _RETRY_S:
            return
        self._tried = clock
        try:
            with self.path.open("wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, self.size)
        except OSError:
            self.path.unlink(missing_ok=True)

    def give_up(self) -> bool:
        """Free the room; True if there was any."""
        if self.path is None or not self.path.exists():
            return False
        self.path.unlink(missing_ok=True)
        return True
