"""What every soundalert service does around its work: its MQTT link and status, signals,
/metrics, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiomqtt
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    disable_created_metrics,
    start_http_server,
)

from schemas.common import utc_now
from schemas.messages import NodeState, NodeStatus
from schemas.topics import SERVICES_LEVEL
from soundalert import __version__
from soundalert.mqtt import BrokerUrl, make_client, run_forever

__all__ = [
    "ServiceMetrics",
    "announced",
    "cancel_until_done",
    "handle_signals",
    "heartbeat",
    "metrics_server",
    "open_state",
    "save_state",
    "service_link",
    "service_status",
]

log = logging.getLogger(__name__)

S = TypeVar("S")

# Every counter would also carry a <name>_created series, as many bytes again on /metrics, that
# no rule or dashboard here reads.
disable_created_metrics()  # type: ignore[no-untyped-call]


class ServiceMetrics:
    """The series every soundalert service has, on a registry passed in (tests stay isolated):
    rejected messages by reason, its MQTT link, and its build."""

    def __init__(
        self,
        service: str,
        registry: CollectorRegistry | None = None,
        *,
        rejected_help: str = "Messages rejected, by reason.",
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.rejected = Counter("soundalert_messages_rejected_total", rejected_help, ["reason"],
                                registry=self.registry)  # fmt: skip
        self.mqtt_connected = Gauge(
            "soundalert_mqtt_connected",
            "1 while the service is connected to its MQTT broker.",
            registry=self.registry,
        )
        Info("soundalert_build", "Build information.", registry=self.registry).info(
            {"version": __version__, "service": service}
        )
        self.state_saved = Gauge(
            "soundalert_state_saved",
            "1 while the service's state commits to disk, 0 while it cannot (a full or "
            "read-only disk): the service keeps working from memory.",
            registry=self.registry,
        )
        self.commit_failures = Counter(
            "soundalert_state_commit_failures_total",
            "Commits of the service's state that failed (disk full, I/O error).",
            registry=self.registry,
        )
        self.state_saved.set(1)


def open_state(
    opener: Callable[[Path], S], path: Path, metrics: ServiceMetrics
) -> tuple[S, str | None]:
    """Open a service's SQLite state; returns it and, if it could not be opened, why. When
    that fails (a full or read-only disk), the state lives in memory until a restart: a
    service that exits raises no alert at all."""
    try:
        return opener(path), None
    except (sqlite3.Error, OSError) as exc:
        log.exception("cannot open %s; keeping state in memory until a restart", path)
        metrics.state_saved.set(0)
        return opener(Path(":memory:")), f"cannot open {path}: {exc}"


def save_state(commit: Callable[[], None], metrics: ServiceMetrics) -> bool:
    """Commit; when the disk refuses, say so and carry on from memory (``False``)."""
    try:
        commit()
    except sqlite3.Error as exc:
        if metrics.state_saved._value.get() != 0:  # noqa: SLF001 - log once per outage
            log.error("cannot save state (%s): working from memory", exc)  # noqa: TRY400
        metrics.commit_failures.inc()
        metrics.state_saved.set(0)
        return False
    metrics.state_saved.set(1)
    return True


def service_status(
    name: str, state: NodeState, *, heartbeat_s: float, capabilities: list[str]
) -> bytes:
    """The retained status (and last will) of a soundalert service."""
    return NodeStatus(
        site=SERVICES_LEVEL,
        node=name,
        state=state,
        at=utc_now(),
        heartbeat_s=heartbeat_s,
        software=f"soundalert-{name} {__version__}",
        capabilities=capabilities,
    ).to_json()


def handle_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT call ``stop`` (a service asked to stop cleanly publishes 'stopped')."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)


@contextlib.contextmanager
def metrics_server(
    port: int | None, host: str, registry: CollectorRegistry
) -> Iterator[int | None]:
    """Serve ``registry`` on http://host:port/metrics for the duration; yields the port."""
    if port is None:
        yield None
        return
    server, _ = start_http_server(port, host, registry)
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    try:
        yield server.server_port
    finally:
        server.shutdown()


async def cancel_until_done(tasks: list[asyncio.Task[None]], grace_s: float = 3.0) -> None:
    """Cancel, and cancel again if a task is still running after ``grace_s``.

    Python 3.11's ``asyncio.wait_for`` (used inside aiomqtt) can swallow a cancellation that
    races with the awaited result; a single ``cancel()`` could then leave a service running
    after SIGTERM.
    """
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=grace_s)


async def heartbeat(
    client: aiomqtt.Client, topic: str, status: Callable[[], bytes], every_s: float
) -> None:
    """Re-publish a retained status every ``every_s`` on ``client`` (the connection carrying
    the last will), so a reader can tell a live service from a stale retained message. Ends
    quietly when the connection goes; the session reconnects and starts a new one."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await client.publish(topic, status(), qos=1, retain=True)
        except aiomqtt.MqttError:
            return


async def service_link(
    broker: BrokerUrl,
    client_id: str,
    status_topic: str,
    status: Callable[[NodeState], bytes],
    session: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    on_lost: Callable[[], None],
) -> None:
    """A service's inbound connection, for good: persistent session, manual PUBACK, its
    'offline' status as the last will; ``on_lost`` runs whenever the connection goes."""
    will = aiomqtt.Will(status_topic, status("offline"), qos=1, retain=True)

    def connect() -> aiomqtt.Client:
        return make_client(broker, client_id, will=will, persistent=True, manual_ack=True)

    await run_forever(broker, connect, session, on_disconnect=lambda _problem: on_lost())


@contextlib.asynccontextmanager
async def announced(
    client: aiomqtt.Client,
    topic: str,
    status: Callable[[NodeState], bytes],
    heartbeat_s: float,
) -> AsyncIterator[None]:
    """While the body runs: retained 'online', re-published every ``heartbeat_s``. When the
    body is cancelled (the service is stopping) 'stopped' goes out first, within 2 s."""
    await client.publish(topic, status("online"), qos=1, retain=True)
    beat = asyncio.create_task(heartbeat(client, topic, lambda: status("online"), heartbeat_s))
    try:
        yield
    except asyncio.CancelledError:
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(2):
                await client.publish(topic, status("stopped"), qos=1, retain=True)
        raise
    finally:
        beat.cancel()
