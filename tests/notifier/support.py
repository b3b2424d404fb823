"""Real parts for notifier tests: HTTP receivers, running services, event builders."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
from aiohttp import web

from schemas.messages import Alert, ClassificationEvent
from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.notifier.service import NotifierService
from soundalert.mqtt import BrokerUrl, make_client
from tests.support.mosquitto import free_port

__all__ = [
    "HttpReceiver",
    "MqttRecorder",
    "Received",
    "alert",
    "event",
    "eventually",
    "publish",
    "running_aggregator",
    "running_notifier",
]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class HttpReceiver:
    """A real HTTP server on 127.0.0.1 that records every request. ``status`` and
    ``delay_s`` make it fail or hang; it can be stopped and started on the same port."""

    port: int = field(default_factory=free_port)
    status: int = 200
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.requests.append(Received(request.path, dict(request.headers), body,
                                      time.monotonic()))  # fmt: skip
        self._changed.set()
        return web.Response(status=self.status, text="ok" if self.status < 300 else "nope")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, within: float = 5.0,
                       path: str | None = None) -> list[Received]:  # fmt: skip
        async with asyncio.timeout(within):
            while True:
                got = [r for r in self.requests if path is None or r.path == path]
                if len(got) >= count:
                    return got
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def receiving(**kwargs: Any) -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(**kwargs)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def _wait(predicate: Callable[[], bool], task: asyncio.Task[None], what: str) -> None:
    for _ in range(200):
        if task.done():
            task.result()
            raise RuntimeError(f"{what} stopped")
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{what} did not connect within 10 s")


@contextlib.asynccontextmanager
async def running_notifier(service: NotifierService) -> AsyncIterator[NotifierService]:
    task = asyncio.create_task(service.run())
    try:
        await _wait(lambda: service.metrics.registry.get_sample_value(
            "soundalert_mqtt_connected") == 1, task, "notifier")  # fmt: skip
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=10)


@contextlib.asynccontextmanager
async def running_aggregator(service: AggregatorService) -> AsyncIterator[AggregatorService]:
    task = asyncio.create_task(service.run())
    try:
        await _wait(lambda: service.metrics.registry.get_sample_value(
            "soundalert_mqtt_connected") == 1, task, "aggregator")  # fmt: skip
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=10)


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate`` (a metric, or a list a thread fills: nothing to await)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - see the docstring
            await asyncio.sleep(0.02)


async def publish(url: str, items: list[tuple[str, bytes]], *, retain: bool = False) -> None:
    async with make_client(BrokerUrl.parse(url), f"pub-{uuid.uuid4().hex[:8]}") as client:
        for topic, payload in items:
            await client.publish(topic, payload, qos=1, retain=retain)


@dataclass
class MqttRecorder:
    """Collects messages on some topic filters (for light actions, discovery, state)."""

    messages: list[tuple[str, bytes, float]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.messages if t == topic]

    def latest(self, topic: str) -> bytes | None:
        got = self.on(topic)
        return got[-1] if got else None

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def recording(url: str, filters: list[str]) -> AsyncIterator[MqttRecorder]:
    recorder = MqttRecorder()
    client = make_client(BrokerUrl.parse(url), f"rec-{uuid.uuid4().hex[:8]}")
    async with client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                recorder.messages.append((str(message.topic), payload, time.monotonic()))
                recorder._changed.set()  # noqa: SLF001 - the recorder's own helper

        task = asyncio.create_task(pump())
        try:
            yield recorder
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


def event(topics: Topics, site: str, node: str, seq: int, *, kind: str, label: str,
          score: float = 0.9, end: datetime | None = None) -> tuple[str, bytes]:  # fmt: skip
    """A classification event (topic, payload) whose window ends at ``end`` (default now)."""
    end = end or datetime.now(UTC)
    ev = ClassificationEvent.model_validate(
        {
            "event_id": f"{site}-{node}-{seq}-{uuid.uuid4().hex[:6]}",
            "site": site,
            "node": node,
            "seq": seq,
            "window_start": end - timedelta(seconds=0.975),
            "window_end": end,
            "source": {"kind": kind, "model": kind, "version": "1"},
            "labels": [{"label": label, "score": score}],
            "level_dbfs": -20.0,
        }
    )
    return topics.events(site, node), ev.to_json()


def alert(**overrides: Any) -> Alert:
    """An Alert as the aggregator would publish it."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "alert_id": "smoke_alarm-000001-abcd",
        "site": "home",
        "category": "smoke_alarm",
        "priority": "critical",
        "state": "raised",
        "location": "kitchen",
        "nodes": [{"node": "kitchen", "score": 0.9}],
        "first_evidence_at": now - timedelta(seconds=2),
        "raised_at": now,
        "published_at": now,
        "confidence": 0.9,
        "title": "Smoke alarm",
    }
    fields.update(overrides)
    return Alert.model_validate(fields)
