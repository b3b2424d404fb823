"""The hosted aggregator: real nats-server (JetStream, the partition mapping), PostgreSQL, and
aggregator processes that are killed (``kill -9``) and taken over."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
from psycopg import sql

from schemas.messages import ClassificationEvent
from services.aggregator.hosted import partition_mapping
from tests.support.nats import NatsServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
USERS = {"service": "service-secret", "homes": "homes-secret"}
PARTITIONS = 2


def _event(site: str, node: str, seq: int, *, alarm: bool = False) -> bytes:
    end = datetime.now(UTC)
    return ClassificationEvent.model_validate({
        "event_id": f"{site}-{node}-{seq}", "site": site, "node": node, "seq": seq,
        "window_start": end - timedelta(seconds=0.975), "window_end": end,
        "source": {"kind": "pattern" if alarm else "yamnet", "model": "m", "version": "1"},
        "labels": [{"label": "t3", "score": 0.95}] if alarm else [{"label": "Speech",
                                                                      "score": 0.2}],
        "level_dbfs": -30.0,
    }).to_json()  # fmt: skip


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", users=USERS, mappings=partition_mapping(PARTITIONS))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def aggregator(name: str, server: NatsServer, db: str, prefix: str, tmp_path: Path,
               *, preferred: list[int]) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    env = {
        **os.environ,
        "SOUNDALERT_HOSTED_NAME": name,
        "SOUNDALERT_HOSTED_NATS_SERVERS": json.dumps([f"nats://127.0.0.1:{server.port}"]),
        "SOUNDALERT_HOSTED_NATS_USER": "service",
        "SOUNDALERT_HOSTED_NATS_PASSWORD": USERS["service"],
        "SOUNDALERT_HOSTED_DATABASE_URL": db,
        "SOUNDALERT_HOSTED_PARTITIONS": str(PARTITIONS),
        "SOUNDALERT_HOSTED_SCHEMA_PREFIX": prefix,
        "SOUNDALERT_HOSTED_PREFERRED": json.dumps(preferred),
        "SOUNDALERT_HOSTED_TAKEOVER_AFTER_S": "0.5",
        "SOUNDALERT_HOSTED_STARTUP_GRACE_S": "2",
        "SOUNDALERT_HOSTED_STATS_FILE": str(tmp_path / f"{name}.jsonl"),
    }
    log = (tmp_path / f"{name}.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "services.aggregator.hosted"], env=env,
                               cwd=REPO, stdout=log, stderr=log)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        print((tmp_path / f"{name}.log").read_text()[-3000:])  # noqa: T201 - shown on failure


def _owned(tmp_path: Path, name: str) -> set[str]:
    path = tmp_path / f"{name}.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return set(json.loads(lines[-1])["partitions"]) if lines else set()


def _stored(db: str, prefix: str) -> tuple[int, int, dict[str, list[str]]]:
    """Event rows, distinct event ids, and the smoke alarms raised (alert ids) per site."""
    ids: list[str] = []
    raised: dict[str, list[str]] = {}
    with psycopg.connect(db, autocommit=True) as conn:
        for p in range(PARTITIONS):
            exists = conn.execute("SELECT to_regclass(%s)", (f"{prefix}{p}.events",)).fetchone()
            if exists is None or exists[0] is None:
                continue
            schema = sql.Identifier(f"{prefix}{p}")
            events = sql.SQL("SELECT event_id FROM {}.events").format(schema)
            ids += [r[0] for r in conn.execute(events)]
            smoke = sql.SQL(
                "SELECT DISTINCT h.alert_id, a.site FROM {0}.alert_history h JOIN {0}.alerts a "
                "USING (alert_id) WHERE h.state = 'raised' AND a.category = 'smoke_alarm'"
            ).format(schema)
            for alert_id, site in conn.execute(smoke):
                raised.setdefault(site, []).append(alert_id)
    return len(ids), len(set(ids)), raised


async def _until(check: Callable[[], bool], what: str, within_s: float = 30.0) -> None:
    async with asyncio.timeout(within_s):
        while not check():  # noqa: ASYNC110 - polls files and a database, nothing to await
            await asyncio.sleep(0.1)
    assert check(), what


@asynccontextmanager
async def _homes(server: NatsServer) -> AsyncIterator[tuple[Any, list[dict[str, Any]]]]:
    connection = await nats.connect(f"nats://127.0.0.1:{server.port}", user="homes",
                                    password=USERS["homes"])  # fmt: skip
    alerts: list[dict[str, Any]] = []

    async def on_alert(message: Any) -> None:
        alerts.append(json.loads(message.data))

    await connection.subscribe("soundalert.v1.*.alerts", cb=on_alert)
    try:
        yield connection.jetstream(timeout=5), alerts
    finally:
        await connection.close()


async def _send(js: Any, sites: list[str], first_seq: int, alarm_site: str) -> int:
    sent = 0
    for seq in range(first_seq, first_seq + 4):
        for site in sites:
            for node in ("kitchen", "hall"):
                alarm = site == alarm_site and node == "kitchen"
                subject = f"soundalert.v1.{site}.{node}.events"
                await js.publish(subject, _event(site, node, seq, alarm=alarm),
                                 headers={"Nats-Msg-Id": f"{site}-{node}-{seq}"})  # fmt: skip
                sent += 1
        await asyncio.sleep(0.5)
    return sent


async def test_a_killed_aggregators_partitions_are_taken_over_without_loss_or_duplicates(
    nats_server: NatsServer, pg_url: str, tmp_path: Path
) -> None:
    prefix = f"h{uuid.uuid4().hex[:8]}_p"
    sites = [f"site{i}" for i in range(6)]
    with (
        aggregator("a", nats_server, pg_url, prefix, tmp_path, preferred=[0, 1]) as first,
        aggregator("b", nats_server, pg_url, prefix, tmp_path, preferred=[]),
    ):
        await _until(lambda: _owned(tmp_path, "a") == {"0", "1"}, "a owns both partitions")
        async with _homes(nats_server) as (js, alerts):
            sent = await _send(js, sites, 0, alarm_site="site0")
            await _until(lambda: _stored(pg_url, prefix)[0] == sent, "every event stored")
            assert _owned(tmp_path, "b") == set()  # nothing to take over yet

            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            sent += await _send(js, sites, 4, alarm_site="site1")
            await _until(lambda: _owned(tmp_path, "b") == {"0", "1"}, "b took both over")
            await _until(lambda: _stored(pg_url, prefix)[0] == sent, "every event stored")
            await _until(lambda: {a["site"] for a in alerts if a["state"] == "raised"}
                         >= {"site0", "site1"}, "both smoke alarms raised")  # fmt: skip
            await asyncio.sleep(1.0)
    rows, distinct, raised = _stored(pg_url, prefix)
    assert rows == distinct == sent == 96
    assert {site: len(ids) for site, ids in raised.items()} == {"site0": 1, "site1": 1}
    on_the_wire = [(a["site"], a["alert_id"]) for a in alerts
                   if a["category"] == "smoke_alarm" and a["state"] == "raised"]  # fmt: skip
    assert sorted(on_the_wire) == sorted((site, ids[0]) for site, ids in raised.items())
