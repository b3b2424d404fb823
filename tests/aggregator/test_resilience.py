"""No message and no disk may stop the aggregator (issue "Never lose a fire alarm").

Each test runs the real service against a real Mosquitto and a real SQLite file, and checks
that a smoke alarm still gets through after the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.messages import ClassificationEvent, DeliveryAck
from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import Store
from tests.aggregator.conftest import listening, running, subscribed
from tests.aggregator.factories import event, status
from tests.aggregator.test_service import _publish
from tests.support.mosquitto import Mosquitto
from tests.support.tmpfs import fill, tmpfs

pytestmark = pytest.mark.integration


def _t3(i: int, *, node: str = "kitchen") -> ClassificationEvent:
    return event(i, node=node, kind="pattern", label="t3", score=0.95)


def _on(topics: Topics, events: list[ClassificationEvent]) -> list[tuple[str, bytes]]:
    return [(topics.events(e.site, e.node), e.to_json()) for e in events]


def _sample(service: AggregatorService, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else float(value)


async def _until(predicate: object, within_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within_s} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _acks(url: str, topics: Topics) -> AsyncIterator[dict[str, DeliveryAck]]:
    """The latest delivery ack per node, as a node would see it (retained included)."""
    latest: dict[str, DeliveryAck] = {}

    def handle(payload: bytes) -> None:
        ack = DeliveryAck.model_validate_json(payload)
        latest[ack.node] = ack

    async with subscribed(url, f"{topics.root}/+/+/ack", handle):
        yield latest


async def test_the_issue_poison_event_is_rejected_and_a_smoke_alarm_still_raises(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    """One schema-valid event with seq 2^63 used to crash-loop the aggregator for good."""
    topics = Topics(agg_settings.topic_root)
    service = AggregatorService(agg_settings)
    poison = json.loads(event(0).to_json())
    poison["seq"] = 9223372036854775808
    async with running(service), listening(mosquitto.url("service"), topics) as listener:
        await _publish(mosquitto.url("kitchen"), [
            (topics.events("home", "kitchen"), json.dumps(poison).encode()),
            *_on(topics, [_t3(1)]),
        ])  # fmt: skip
        alert = await listener.wait_for(lambda a: a.category == "smoke_alarm")
        assert _sample(service, "soundalert_messages_rejected_total",
                       reason="schema_violation") == 1  # fmt: skip
    assert alert.state == "raised"


def _poison_trigger(database: Path, node: str) -> None:
    """A real write failure for one node's messages, where the seq overflow struck: saving the
    node row (at the batched commit, before this issue)."""
    Store(database).close()
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute(
            f"CREATE TRIGGER poison BEFORE INSERT ON nodes WHEN NEW.node = '{node}' "
            "BEGIN SELECT RAISE(ABORT, 'injected write failure'); END"
        )
        db.commit()


async def test_a_message_that_fails_after_validation_is_dead_lettered_not_fatal(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    _poison_trigger(agg_settings.database, "hall")
    topics = Topics(agg_settings.topic_root)
    service = AggregatorService(agg_settings)
    async with running(service), listening(mosquitto.url("service"), topics) as listener:
        # The poison and a smoke alarm in one batch: the alarm must not be held up.
        await _publish(mosquitto.url("service"), _on(topics, [_t3(0, node="hall"), _t3(1)]))
        alert = await listener.wait_for(lambda a: a.category == "smoke_alarm")
        await _until(
            lambda: (
                _sample(service, "soundalert_messages_rejected_total", reason="internal_error") == 1
            ),
            what="internal_error count",
        )
    assert alert.location == "kitchen"
    [(topic, payload, reason, detail)] = _dead(agg_settings)
    assert topic == topics.events("home", "hall")
    assert json.loads(payload)["node"] == "hall"
    assert (reason, "injected write failure" in detail) == ("internal_error", True)
    # Acknowledged: a restart does not get it again (before, the broker redelivered it forever).
    again = AggregatorService(agg_settings)
    async with running(again):
        await asyncio.sleep(1.0)
        assert _sample(again, "soundalert_messages_rejected_total", reason="internal_error") == 0
    assert len(_dead(agg_settings)) == 1


def _dead(settings: AggregatorSettings) -> list[tuple[str, bytes, str, str]]:
    store = Store(settings.database)
    try:
        return store.dead_letters()
    finally:
        store.close()


async def test_delivery_acks_cover_committed_events_and_wait_for_gaps(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    quiet = [event(i, score=0.0) for i in range(6)]
    async with running(AggregatorService(agg_settings)), \
            _acks(mosquitto.url("service"), topics) as acks:  # fmt: skip
        await _publish(mosquitto.url("kitchen"), _on(topics, [quiet[0], quiet[1], quiet[3]]))
        await _until(lambda: "kitchen" in acks and acks["kitchen"].seq == 1, what="ack 1")
        await asyncio.sleep(1.5)
        assert acks["kitchen"].seq == 1  # seq 2 missing: 3 is stored but not covered
        await _publish(mosquitto.url("kitchen"), _on(topics, [quiet[2]]))
        await _until(lambda: acks["kitchen"].seq == 3, what="ack past the filled gap")


async def test_with_its_disk_full_it_still_raises_smoke_and_says_it_cannot_save(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings, tmp_path: Path
) -> None:
    topics = Topics(agg_settings.topic_root)
    with tmpfs(tmp_path / "small", 1024) as small:
        settings = agg_settings.model_copy(update={"state_dir": small / "state"})
        service = AggregatorService(settings)
        async with running(service), listening(mosquitto.url("service"), topics) as listener, \
                _acks(mosquitto.url("service"), topics) as acks:  # fmt: skip
            await _publish(mosquitto.url("kitchen"), _on(topics, [event(0, score=0.0)]))
            await _until(lambda: "kitchen" in acks, what="first ack")
            filler = fill(small)
            # Enough evidence that the transaction cannot fit in what the WAL already holds.
            burst = [event(i, score=0.0, label="Speech") for i in range(1, 200)] + [_t3(200)]
            await _publish(mosquitto.url("kitchen"), _on(topics, burst))
            smoke = await listener.wait_for(lambda a: a.category == "smoke_alarm", within_s=15)
            trouble = await listener.wait_for(lambda a: a.category == "storage_trouble")
            assert "cannot save" in trouble.title
            assert _sample(service, "soundalert_state_saved") == 0
            assert acks["kitchen"].seq == 0  # nothing unsaved is acknowledged to the node
            filler.unlink()
            await listener.wait_for(
                lambda a: a.category == "storage_trouble" and a.state == "resolved", within_s=40
            )
            await _until(lambda: acks["kitchen"].seq == 200, what="ack after recovery")
            assert _sample(service, "soundalert_state_saved") == 1
        store = Store(settings.database)
        try:
            active = {row.alert_id for row in store.alerts(active=True)}
        finally:
            store.close()
        assert smoke.alert_id in active  # saved once the disk had room again


async def test_a_database_it_cannot_open_still_lets_smoke_through(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings, tmp_path: Path
) -> None:
    topics = Topics(agg_settings.topic_root)
    with tmpfs(tmp_path / "full", 64) as full:
        (full / "state").mkdir()
        fill(full)
        settings = agg_settings.model_copy(update={"state_dir": full / "state"})
        service = AggregatorService(settings)
        async with running(service), listening(mosquitto.url("service"), topics) as listener:
            await _publish(mosquitto.url("kitchen"), _on(topics, [_t3(0)]))
            await listener.wait_for(lambda a: a.category == "smoke_alarm")
            trouble = await listener.wait_for(lambda a: a.category == "storage_trouble")
        assert "cannot open" in (trouble.reason or "")


async def test_its_own_outage_is_not_taken_for_silent_nodes(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    """While the aggregator was away it heard nothing: that is not the nodes' silence. After a
    restart (or a broker outage) each node gets its heartbeat allowance again; one that really
    is gone is found that long after."""
    topics = Topics(agg_settings.topic_root)
    beat = status(at=time.time(), heartbeat_s=1.0, node="hall")
    async with running(AggregatorService(agg_settings)):
        await _publish(mosquitto.url("hall"), [(topics.status("home", "hall"), beat.to_json())])
        await asyncio.sleep(0.5)
    await asyncio.sleep(4.0)  # three heartbeats and more without an aggregator
    async with running(AggregatorService(agg_settings)), \
            listening(mosquitto.url("service"), topics) as listener:  # fmt: skip
        started = time.monotonic()
        offline = await listener.wait_for(lambda a: a.category == "node_offline", within_s=10)
        took = time.monotonic() - started
    assert offline.location == "hall"
    assert took >= 2.5  # a full allowance from the restart, not at once
