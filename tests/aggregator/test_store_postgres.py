"""The PostgreSQL store (hosted mode): what only a server can do to it, and the service on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import AlertRow, StorageError
from services.aggregator.store_pg import PostgresStore
from soundalert.mqtt import BrokerUrl, make_client
from tests.aggregator.conftest import listening, running
from tests.aggregator.factories import event, make_aggregator
from tests.support.nats import Broker
from tests.support.postgres import unique_schema

pytestmark = pytest.mark.integration


def _drop_connections(url: str) -> int:
    """What a PostgreSQL restart does to its clients: every other session is ended."""
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_a_lost_connection_keeps_every_write_and_every_outbox_id(pg_url: str) -> None:
    schema = unique_schema()
    store = PostgresStore(pg_url, schema=schema)
    store.save_alert(AlertRow("a1", "home", "smoke_alarm", True, "raised", "{}", {}))
    first = store.enqueue("t/alerts", b"one", retain=False)
    store.commit()
    store.save_alert(AlertRow("a2", "home", "doorbell", True, "raised", "{}", {}))
    second = store.enqueue("t/alerts", b"two", retain=True)
    assert _drop_connections(pg_url) >= 1

    with pytest.raises(StorageError):
        store.commit()
    assert store.uncommitted == 2  # replayed into a new connection, still to be saved
    store.commit()
    store.published([second.id or 0])  # the id the service holds names the replayed row
    store.commit()
    store.close()

    again = PostgresStore(pg_url, schema=schema)
    assert {a.alert_id for a in again.alerts(active=True)} == {"a1", "a2"}
    assert [p.id for p in again.pending_publications()] == [first.id]
    again.close()


def test_stores_in_different_schemas_do_not_see_each_other(pg_url: str) -> None:
    one, two = (
        PostgresStore(pg_url, schema=unique_schema()),
        PostgresStore(pg_url, schema=unique_schema()),
    )
    assert one.add_event("e1", site="a", node="n", seq=0, end=1.0, received=1.0)
    one.commit()
    assert two.add_event("e1", site="a", node="n", seq=0, end=1.0, received=1.0)
    two.commit()
    assert not one.is_known_event("e2")
    assert one.is_known_event("e1")
    assert one.used_bytes() > 0
    one.close()
    two.close()


def test_a_bad_schema_name_is_refused_before_any_sql(pg_url: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresStore(pg_url, schema="x; DROP TABLE alerts")


async def test_the_service_on_postgresql_alerts_and_keeps_its_state_there(
    broker: Broker, agg_settings: AggregatorSettings, pg_url: str
) -> None:
    schema = unique_schema()
    settings = agg_settings.model_copy(update={"database_url": pg_url,
                                                  "database_schema": schema})  # fmt: skip
    topics = Topics(settings.topic_root)
    service = AggregatorService(settings)
    assert isinstance(service.store, PostgresStore)
    async with running(service), listening(broker.url("service"), topics) as listener:
        async with make_client(BrokerUrl.parse(broker.url("kitchen")), "pg-pub") as client:
            for i in range(4):
                ev = event(i)
                await client.publish(topics.events(ev.site, ev.node), ev.to_json(), qos=1)
        alert = await listener.wait_for(lambda a: a.category == "smoke_alarm")
        await asyncio.sleep(0.3)
    assert not settings.database.exists()  # nothing in SQLite
    stored = PostgresStore(pg_url, schema=schema)
    assert [a.alert_id for a in stored.alerts(active=True)] == [alert.alert_id]
    assert stored.row_counts()["events"] == 4
    stored.close()


@pytest.mark.usefixtures("store_backend")
def test_bookkeeping_commits_with_the_state_it_describes(tmp_path: Path) -> None:
    db = tmp_path / "aggregator.sqlite3"
    store = make_aggregator(db).store
    assert store.meta("stream_seq") is None
    store.set_meta("stream_seq", "41")
    store.commit()
    store.set_meta("stream_seq", "42")

    def failing_message() -> None:
        with store.isolated():
            store.set_meta("stream_seq", "43")
            raise RuntimeError("this message's effects are undone")

    with pytest.raises(RuntimeError):
        failing_message()
    assert store.meta("stream_seq") == "42"
    store.close()  # never committed: a crash
    assert make_aggregator(db).store.meta("stream_seq") == "41"
