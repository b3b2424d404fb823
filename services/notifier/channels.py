"""Channel senders (Apprise, MQTT lights, webhook) and the per-channel delivery worker.

Each channel has its own :class:`ChannelWorker` task with its own queue, so a channel that
fails or hangs only ever delays itself. Within a channel, the most urgent ready notification
goes first (critical and escalations before high before normal), a notification waiting for
its retry does not block the ones behind it, and a clearing state supersedes what is still
queued for the same alert (nobody needs a smoke alarm push after they acknowledged it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Protocol

import aiohttp
import aiomqtt
import apprise

from services.notifier.config import AppriseChannel, MqttChannel, RetryConfig, WebhookChannel
from services.notifier.core import Delivery
from services.notifier.metrics import NotifierMetrics
from services.notifier.render import (
    apprise_url,
    effective_priority,
    message,
    mqtt_publishes,
    notify_type,
    webhook_request,
)

__all__ = [
    "AppriseSender",
    "ChannelError",
    "ChannelWorker",
    "MqttSender",
    "Sender",
    "WebhookSender",
    "retry_delay",
]

log = logging.getLogger(__name__)

_RANK = {"critical": 0, "high": 1, "normal": 2}
_SUPERSEDES = {
    # a new delivery of this kind drops queued deliveries of these kinds, for the same alert
    "clear": {"raise", "reminder", "update", "escalation"},
    "reminder": {"raise", "reminder"},
    "escalation": {"escalation"},
}


class ChannelError(Exception):
    """A delivery attempt failed; the worker retries it."""


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> None: ...


def retry_delay(retry: RetryConfig, attempts: int) -> float:
    """Capped exponential backoff with jitter, after ``attempts`` failed attempts (>= 1)."""
    ceiling = min(retry.max_s, retry.initial_s * 2 ** min(attempts - 1, 30))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


class AppriseSender:
    """One Apprise URL (one recipient), with the alert's priority mapped onto its scheme (see
    ``render``). A channel of several URLs has one sender, and one worker, per URL."""

    def __init__(self, name: str, config: AppriseChannel, zone: tzinfo, *, number: int = 1,
                 display_url: str | None = None) -> None:  # fmt: skip
        self.config = config
        self.zone = zone
        self.display_url = display_url
        self._by_priority: dict[str, apprise.Apprise] = {}
        secret = config.urls[number - 1]
        for priority in _RANK:  # build all three now, so a bad URL fails at start-up
            notifier = apprise.Apprise()
            if not notifier.add(apprise_url(secret.get_secret_value(), priority)):
                raise ValueError(f"channel {name}: Apprise does not understand URL "
                                 f"#{number} (check its scheme and fields)")  # fmt: skip
            self._by_priority[priority] = notifier

    async def send(self, delivery: Delivery) -> None:
        title, body = message(delivery, self.zone, self.display_url)
        notifier = self._by_priority[effective_priority(delivery)]
        result = await notifier.async_notify(
            body=body,
            title=title,
            notify_type=apprise.NotifyType(notify_type(delivery)),
            timeout=self.config.retry.timeout_s,
        )
        if not result:
            raise ChannelError(f"Apprise reported {result.status.name.lower()}")


class MqttSender:
    """Publishes for lights, strobes and bed shakers, over the notifier's own connection."""

    def __init__(self, config: MqttChannel, client: Callable[[], aiomqtt.Client | None]) -> None:
        self.config = config
        self._client = client

    async def send(self, delivery: Delivery) -> None:
        publishes = mqtt_publishes(self.config, delivery)
        if not publishes:
            return
        client = self._client()
        if client is None:
            raise ChannelError("not connected to the MQTT broker")
        try:
            for topic, payload, qos, retain in publishes:
                await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise ChannelError(f"MQTT publish failed: {exc}") from exc


class WebhookSender:
    """HTTP POST of the Alert JSON, signed with HMAC-SHA256 when a secret is configured."""

    def __init__(self, config: WebhookChannel,
                 session: Callable[[], aiohttp.ClientSession]) -> None:  # fmt: skip
        self.config = config
        self._session = session
        self._secret = (config.secret.get_secret_value().encode()
                        if config.secret is not None else None)  # fmt: skip

    async def send(self, delivery: Delivery) -> None:
        body, headers = webhook_request(delivery, self._secret, self.config.headers)
        url = self.config.url.get_secret_value()
        try:
            async with self._session().post(url, data=body, headers=headers) as response:
                if response.status >= 300:
                    text = (await response.text())[:200]
                    raise ChannelError(f"webhook answered HTTP {response.status}: {text!r}")
        except aiohttp.ClientError as exc:
            raise ChannelError(f"webhook request failed: {exc}") from exc


@dataclass(slots=True)
class _Item:
    outbox_id: int
    delivery: Delivery
    queued_at: float
    seq: int
    not_before: float = 0.0
    attempts: int = 0

    @property
    def rank(self) -> int:
        return 0 if self.delivery.kind == "escalation" else _RANK[self.delivery.alert.priority]


class ChannelWorker:
    """Delivers one channel's notifications, one at a time, with retries."""

    def __init__(self, key: str, sender: Sender, retry: RetryConfig, metrics: NotifierMetrics,
                 on_settled: Callable[[int], None]) -> None:  # fmt: skip
        self.key = key
        self.sender = sender
        self.retry = retry
        self.metrics = metrics
        self._on_settled = on_settled
        self._items: list[_Item] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._seq = itertools.count()
        self.metrics.pending.labels(key).set(0)

    def put(self, outbox_id: int, delivery: Delivery, queued_at: float) -> None:
        dropped = _SUPERSEDES.get(delivery.kind, set())
        keep: list[_Item] = []
        for item in self._items:
            if item.delivery.alert.alert_id == delivery.alert.alert_id and (
                item.delivery.kind in dropped
            ):
                self._settle(item, "superseded")
            else:
                keep.append(item)
        self._items = keep
        self._items.append(_Item(outbox_id, delivery, queued_at, next(self._seq)))
        self.metrics.pending.labels(self.key).set(len(self._items))
        self._wake.set()

    def _settle(self, item: _Item, outcome: str) -> None:
        self.metrics.notifications.labels(self.key, outcome).inc()
        if outcome == "delivered":
            self.metrics.latency.labels(self.key).observe(max(0.0, time.time() - item.queued_at))
        self._on_settled(item.outbox_id)

    def _next(self, now: float) -> _Item | None:
        ready = [item for item in self._items if item.not_before <= now]
        if not ready:
            return None
        item = min(ready, key=lambda i: (i.rank, i.seq))
        self._items.remove(item)
        return item

    async def run(self) -> None:
        while True:
            now = time.time()
            item = self._next(now)
            if item is None:
                self._wake.clear()
                wait = min((i.not_before for i in self._items), default=None)
                timeout = None if wait is None else max(0.0, wait - now)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            self._idle.clear()
            try:
                await self._attempt(item)
            finally:
                self._idle.set()
            self.metrics.pending.labels(self.key).set(len(self._items))

    async def idle(self) -> None:
        """Wait until no attempt is in flight (for a clean stop that does not re-send)."""
        await self._idle.wait()

    async def _attempt(self, item: _Item) -> None:
        age = time.time() - item.queued_at
        if age > self.retry.give_up_after_s:
            log.warning("%s: gave up on %s of alert %s after %.0f s", self.key,
                        item.delivery.kind, item.delivery.alert.alert_id, age)  # fmt: skip
            self._settle(item, "expired")
            return
        try:
            async with asyncio.timeout(self.retry.timeout_s):
                await self.sender.send(item.delivery)
        except Exception as exc:  # noqa: BLE001 - any failure of a channel is retried, never fatal
            item.attempts += 1
            self.metrics.failures.labels(self.key).inc()
            problem = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            if item.attempts >= self.retry.attempts:
                log.error(  # noqa: TRY400 - the cause is in the message; no traceback
                    "%s: %s of alert %s failed %d times, last: %s", self.key,
                          item.delivery.kind, item.delivery.alert.alert_id, item.attempts,
                          problem)  # fmt: skip
                self._settle(item, "failed")
                return
            delay = retry_delay(self.retry, item.attempts)
            log.warning("%s: %s of alert %s failed (%s); retry %d in %.1f s", self.key,
                        item.delivery.kind, item.delivery.alert.alert_id, problem,
                        item.attempts, delay)  # fmt: skip
            item.not_before = time.time() + delay
            self._items.append(item)
            return
        log.info("%s: delivered %s of alert %s (%s)", self.key, item.delivery.kind,
                 item.delivery.alert.alert_id, item.delivery.alert.category)  # fmt: skip
        self._settle(item, "delivered")
