"""A PostgreSQL database of the test session's own on the server at 127.0.0.1:5432.

The server is the machine's (trust auth for local TCP); ``SOUNDALERT_TEST_PG`` points elsewhere
(a libpq URL of a role allowed to create databases). The database is created for the session and
dropped after it; each store gets a schema of its own inside it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql

__all__ = ["ADMIN_URL", "scratch_database", "unique_schema"]

ADMIN_URL = os.environ.get("SOUNDALERT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def scratch_database(prefix: str = "soundalert_test") -> Iterator[str]:
    """Create a database, yield its URL, drop it (with whatever still connects to it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip


def unique_schema() -> str:
    return f"s_{uuid.uuid4().hex[:12]}"
