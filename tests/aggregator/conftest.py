"""Fixtures for aggregator integration tests: a running service and an alert listener."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from schemas.messages import Alert
from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import Store
from soundalert.mqtt import BrokerUrl, make_client
from tests.aggregator import factories
from tests.support.mosquitto import free_port
from tests.support.nats import Broker
from tests.support.policy import quick_policy_file

_OPEN_AT_ONCE = 16  # a property test opens hundreds of stores; PostgreSQL allows 100 sessions


@pytest.fixture(params=["sqlite", "postgres"])
def store_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test once on SQLite and once on PostgreSQL: ``make_aggregator`` opens its store
    on that backend (a path names a PostgreSQL schema, so reopening it is a restart)."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    from services.aggregator.store_pg import PostgresStore  # noqa: PLC0415 - hosted extra

    url: str = request.getfixturevalue("pg_url")
    opened: list[Store] = []
    run = uuid.uuid4().hex[:8]

    def open_postgres(path: Path | str) -> Store:
        name = uuid.uuid4().hex if str(path) == ":memory:" else str(path)
        schema = f"t_{run}_{hashlib.sha256(name.encode()).hexdigest()[:12]}"
        while len(opened) >= _OPEN_AT_ONCE:
            opened.pop(0).close()
        opened.append(PostgresStore(url, schema=schema))
        return opened[-1]

    previous = factories.use_store(open_postgres)
    try:
        yield "postgres"
    finally:
        factories.use_store(previous)
        for store in opened:
            store.close()


@pytest.fixture
def agg_settings(mqtt_broker: Broker, topic_root: str, tmp_path: Path) -> AggregatorSettings:
    """On ``mosquitto``, or on each ``broker`` when the test asks for that fixture."""
    return AggregatorSettings(
        broker=mqtt_broker.url("service"),
        topic_root=topic_root,
        state_dir=tmp_path / "state",
        policy_file=quick_policy_file(tmp_path / "policy"),
        tick_s=0.2,
        client_id=f"agg-{uuid.uuid4().hex[:8]}",
        metrics_port=free_port(),
    )


@contextlib.asynccontextmanager
async def running(service: AggregatorService) -> AsyncIterator[AggregatorService]:
    task = asyncio.create_task(service.run())
    try:
        await _wait_connected(service, task)
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=10)


async def _wait_connected(service: AggregatorService, task: asyncio.Task[None]) -> None:
    for _ in range(200):
        if task.done():
            task.result()
        if service.metrics.registry.get_sample_value("soundalert_mqtt_connected") == 1:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("aggregator did not connect within 10 s")


@dataclass
class AlertListener:
    """Collects every Alert published under a topic root."""

    alerts: list[Alert] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, predicate: Callable[[Alert], bool], within_s: float = 5.0) -> Alert:
        async with asyncio.timeout(within_s):
            while True:
                for alert in self.alerts:
                    if predicate(alert):
                        return alert
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def subscribed(
    broker_url: str, topic_filter: str, handle: Callable[[bytes], None]
) -> AsyncIterator[None]:
    """Hand every payload published on ``topic_filter`` (retained ones too) to ``handle``."""
    client = make_client(BrokerUrl.parse(broker_url), f"listener-{uuid.uuid4().hex[:8]}")
    async with client:
        await client.subscribe(topic_filter, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                handle(message.payload)

        task = asyncio.create_task(pump())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


@contextlib.asynccontextmanager
async def listening(broker_url: str, topics: Topics) -> AsyncIterator[AlertListener]:
    listener = AlertListener()

    def handle(payload: bytes) -> None:
        listener.alerts.append(Alert.model_validate_json(payload))
        listener.changed.set()

    async with subscribed(broker_url, topics.all_alerts, handle):
        yield listener
