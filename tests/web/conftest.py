"""Fixtures for the display tests: settings, messages, and services run on the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from schemas.messages import Alert, CategoryState, ClassificationEvent, NodeStatus
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.web.service import WebService
from services.web.settings import WebSettings
from soundalert.mqtt import BrokerUrl, make_client
from tests.support.nats import Broker

TOKEN = "test-token-0123456789abcdef"  # noqa: S105 - a test token
BROWSER_DIR = Path(__file__).with_name("browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")


def _browser_missing() -> str | None:
    if NODE is None:
        return "node is not installed (needed to run playwright-core)"
    if not Path(CHROMIUM).exists():
        return f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return f"playwright-core is not installed: run 'npm ci' in {BROWSER_DIR}"
    return None


skip_without_browser = pytest.mark.skipif(
    _browser_missing() is not None, reason=_browser_missing() or ""
)
"""Real Chromium driven by playwright-core under node: skipped, with the reason, without it."""
SITE = "home"


def event(
    node: str,
    seq: int,
    *,
    kind: str = "yamnet",
    label: str = "Doorbell",
    score: float = 0.9,
    end: datetime | None = None,
    site: str = SITE,
) -> ClassificationEvent:
    end = end or datetime.now(UTC)
    return ClassificationEvent.model_validate(
        {
            "event_id": f"{site}-{node}-{seq}-{re.sub(r'[^A-Za-z0-9]+', '_', label)[:20]}",
            "site": site,
            "node": node,
            "seq": seq,
            "window_start": end - timedelta(seconds=0.96),
            "window_end": end,
            "source": {"kind": kind, "model": "test", "version": "1"},
            "labels": [{"label": label, "score": score}],
            "level_dbfs": -20.0,
        }
    )


def node_status(node: str, *, state: str = "online", mic: float | None = -45.0,
                at: datetime | None = None, site: str = SITE) -> NodeStatus:  # fmt: skip
    return NodeStatus.model_validate(
        {
            "site": site,
            "node": node,
            "state": state,
            "at": at or datetime.now(UTC),
            "heartbeat_s": 15,
            "software": "soundalert-agent test",
            "stats": {} if mic is None else {"mic_dbfs": mic},
        }
    )


@pytest.fixture
def web_settings(mqtt_broker: Broker, topic_root: str, tmp_path: Path) -> WebSettings:
    return WebSettings.model_validate(
        {
            "broker": mqtt_broker.url("service"),
            "topic_root": topic_root,
            "client_id": f"web-{topic_root.split('/')[1]}",
            "state_dir": tmp_path / "web",
            "host": "127.0.0.1",
            "port": 0,
            "token": TOKEN,
            "keepalive_s": 1.0,
        }
    )


@pytest.fixture
def aggregator_settings(mqtt_broker: Broker, topic_root: str, tmp_path: Path
                        ) -> AggregatorSettings:  # fmt: skip
    return AggregatorSettings(
        broker=mqtt_broker.url("service"),
        topic_root=topic_root,
        client_id=f"agg-{topic_root.split('/')[1]}",
        state_dir=tmp_path / "aggregator",
        tick_s=0.2,
    )


@contextlib.asynccontextmanager
async def running(service: WebService | AggregatorService) -> AsyncIterator[asyncio.Task[None]]:
    """Run a service on this loop; stop it (and surface its errors) on the way out."""
    task = asyncio.create_task(service.run())
    try:
        yield task
    finally:
        service.stop()
        async with asyncio.timeout(10):
            await task


async def wait_connected(service: WebService, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        await service.started.wait()
        while not service.context.connected():  # noqa: ASYNC110 - a condition, no event
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def mqtt_client(mosquitto: Broker, name: str) -> AsyncIterator[aiomqtt.Client]:
    async with make_client(BrokerUrl.parse(mosquitto.url("service")), name) as client:
        yield client


async def eventually(check: object, within: float = 5.0) -> None:
    """Poll ``check()`` (sync callable returning truthy) until it holds."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


def alert(
    alert_id: str = "smoke_alarm-000001-abc",
    *,
    category: str = "smoke_alarm",
    state: str = "raised",
    location: str = "kitchen",
    published: datetime | None = None,
    raised: datetime | None = None,
    site: str = SITE,
    priority: str = "critical",
    by: str | None = None,
) -> Alert:
    raised = raised or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    return Alert.model_validate(
        {
            "alert_id": alert_id,
            "site": site,
            "category": category,
            "priority": priority,
            "state": state,
            "location": location,
            "nodes": [{"node": location, "score": 0.9}],
            "first_evidence_at": raised,
            "raised_at": raised,
            "published_at": published or raised,
            "confidence": 0.9,
            "title": "",
            "by": by,
        }
    )


def category_state(site: str, category: str, active: list[str], latest: Alert | None
                   ) -> CategoryState:  # fmt: skip
    return CategoryState(site=site, category=category, active=bool(active),
                         active_alerts=active, latest=latest, at=datetime.now(UTC))  # fmt: skip
