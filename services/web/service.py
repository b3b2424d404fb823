"""The display's async shell: MQTT in (alerts, category state, status, feedback), feedback out,
the HTTP server, signals.

Delivery: the service keeps a persistent MQTT session and acknowledges each QoS 1 message only
after it is committed to its SQLite history, so alerts raised while the display was down are
delivered when it comes back, and retained category states restore what is active.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Iterator
from datetime import datetime

import aiomqtt
import uvicorn
from prometheus_client import start_http_server

from schemas.decode import Rejected
from schemas.messages import Feedback, NodeState
from schemas.soundpack import LearnRequest
from schemas.topics import Topics
from services.aggregator.policy import Policy, load_policy
from services.web.agent import BUILD_HINT, AgentConfig, missing_vendor_files
from services.web.app import BrokerUnavailableError, WebContext, build_app
from services.web.auth import Auth
from services.web.core import WebCore
from services.web.hub import Hub
from services.web.metrics import WebMetrics
from services.web.palette import categories
from services.web.settings import WebSettings
from services.web.store import WebStore
from soundalert.lifecycle import (
    announced,
    cancel_until_done,
    handle_signals,
    open_state,
    save_state,
    service_link,
    service_status,
)
from soundalert.mqtt import BrokerUrl, ack

__all__ = ["WebService"]

log = logging.getLogger(__name__)

_TRUNCATE = 200
_PUBLISH_TIMEOUT_S = 5.0
_PRUNE_EVERY_S = 3600.0
SERVICE_NAME = "web"
_HEARTBEAT_S = 60.0  # the display's retained status is re-published this often


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebService:
    """Runs the display until :meth:`stop` (or SIGTERM/SIGINT when ``handle_signals``)."""

    def __init__(
        self,
        settings: WebSettings,
        *,
        policy: Policy | None = None,
        metrics: WebMetrics | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.settings = settings
        self.broker = BrokerUrl.parse(settings.broker)
        self.topics = Topics(settings.topic_root)
        self.metrics = metrics or WebMetrics()
        self.store, _ = open_state(WebStore, settings.database, self.metrics)
        self.core = WebCore(self.store, self.topics)
        self.hub = Hub(on_count=self.metrics.stream_clients.set)
        token = settings.token.get_secret_value() if settings.token is not None else None
        site_tokens = {s: t.get_secret_value() for s, t in settings.site_tokens.items()}
        self.generated_token = token is None and not site_tokens
        if self.generated_token:
            token = secrets.token_urlsafe(18)
        self.token = token
        """The all-sites token (generated when none was configured), or ``None``."""
        self.auth = Auth(token, site_tokens, ticket_ttl_s=settings.stream_ticket_s)
        self.context = WebContext(
            core=self.core,
            hub=self.hub,
            auth=self.auth,
            metrics=self.metrics,
            categories=categories(policy or load_policy(settings.policy_file)),
            publish_feedback=self.publish_feedback,
            connected=lambda: self._client is not None,
            keepalive_s=settings.keepalive_s,
            agent=_agent_config(settings),
            publish_learn=self.publish_learn,
            remove_sound=self.remove_sound,
        )
        self.app = build_app(self.context)
        self.port: int | None = None
        """The bound HTTP port, once :attr:`started` is set."""
        self.started = asyncio.Event()
        self._handle_signals = handle_signals
        self._client: aiomqtt.Client | None = None
        self._stop = asyncio.Event()

    @property
    def url(self) -> str:
        host = self.settings.host
        shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
        return f"http://{shown}:{self.port or self.settings.port}/"

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        if self._handle_signals:
            handle_signals(self.stop)
        sock = self._bind()
        server = _Server(uvicorn.Config(self.app, log_level="warning", lifespan="off",
                                        timeout_graceful_shutdown=3, access_log=False))  # fmt: skip
        metrics_server = None
        if self.settings.metrics_port is not None:
            metrics_server, _ = start_http_server(
                self.settings.metrics_port, self.settings.metrics_host, self.metrics.registry
            )
        self.store.prune(time.time() - self.settings.history_days * 86400)
        save_state(self.store.commit, self.metrics)
        try:
            async with asyncio.TaskGroup() as group:
                http = group.create_task(server.serve(sockets=[sock]))
                mqtt_task = group.create_task(self._mqtt())
                housekeeping = group.create_task(self._housekeeping())
                self.started.set()
                if self.generated_token:
                    log.warning("no token configured; this run's token is %s -- open %s?token=%s",
                                self.token, self.url, self.token)  # fmt: skip
                log.info("alert display on %s", self.url)
                if missing := missing_vendor_files():
                    log.warning("/agent is unavailable: %s (missing %s)", BUILD_HINT,
                                ", ".join(missing))  # fmt: skip
                stopped = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({stopped, http}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                self.hub.close()
                server.should_exit = True
                # One cancel() can be swallowed by aiomqtt racing a connect (Python 3.11):
                # Ctrl-C right after start-up then never ended the display.
                await cancel_until_done([mqtt_task, housekeeping])
        finally:
            sock.close()
            if metrics_server is not None:
                metrics_server.shutdown()
            save_state(self.store.commit, self.metrics)
            self.store.close()
            log.info("web display stopped")

    def _bind(self) -> socket.socket:
        host, port = self.settings.host, self.settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror}") from exc
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(_PRUNE_EVERY_S)
            removed = self.store.prune(time.time() - self.settings.history_days * 86400)
            save_state(self.store.commit, self.metrics)
            if removed:
                log.info("pruned %d old alerts from the history", removed)

    # -- MQTT --------------------------------------------------------------------------------
    def _status(self, state: NodeState) -> bytes:
        return service_status(SERVICE_NAME, state, heartbeat_s=_HEARTBEAT_S,
                              capabilities=["display", "feedback"])  # fmt: skip

    async def _mqtt(self) -> None:
        await service_link(self.broker, self.settings.client_id,
                           self.topics.service_status(SERVICE_NAME), self._status, self._session,
                           on_lost=self._disconnected)  # fmt: skip

    def _disconnected(self) -> None:
        self._client = None
        self.metrics.mqtt_connected.set(0)

    async def _session(self, client: aiomqtt.Client) -> None:
        status_topic = self.topics.service_status(SERVICE_NAME)
        root = self.topics.root
        try:
            await client.subscribe([
                (f"{root}/+/alerts", 1),
                (f"{root}/+/alerts/+/state", 1),
                (f"{root}/+/+/status", 1),
                (f"{root}/+/feedback", 1),
                (f"{root}/+/sounds/+", 1),
            ])  # fmt: skip
            async with announced(client, status_topic, self._status, _HEARTBEAT_S):
                self._client = client
                self.metrics.mqtt_connected.set(1)
                async for message in client.messages:
                    self._handle(message)
                    ack(client, message)
        finally:
            self._disconnected()

    def _handle(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        raw = message.payload
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        now = time.time()
        try:
            updates = self.core.handle(topic, payload, retained=message.retain, now=now)
        except Rejected as rejected:
            self.metrics.rejected.labels(rejected.reason.value).inc()
            log.warning("rejected message on %s (%s): %s; payload %r", topic,
                        rejected.reason.value, rejected.detail, payload[:_TRUNCATE])  # fmt: skip
            return
        except Exception:  # never let one message stop the loop
            self.metrics.rejected.labels("internal_error").inc()
            log.exception("failed to process message on %s; payload %r", topic,
                          payload[:_TRUNCATE])  # fmt: skip
            return
        # Shown even when the disk cannot keep it: a smoke alarm must reach the screen.
        save_state(self.store.commit, self.metrics)
        for update in updates:
            if update.kind == "alert" and not message.retain:
                published = update.record["alert"]["published_at"]
                with contextlib.suppress(ValueError):
                    sent = time.time() - _timestamp(published)
                    self.metrics.alert_to_stream.observe(max(sent, 0.0))
        self.hub.publish(updates)

    async def publish_feedback(self, feedback: Feedback) -> None:
        """Hand ``feedback`` to the broker (QoS 1, waits for the PUBACK)."""
        client = self._client
        if client is None:
            raise BrokerUnavailableError(f"not connected to the MQTT broker at {self.broker}")
        assert feedback.site is not None
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                await client.publish(self.topics.feedback(feedback.site), feedback.to_json(),
                                     qos=1)  # fmt: skip
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"the broker did not take it: {exc}") from exc

    async def publish_learn(self, request: LearnRequest) -> None:
        """Send "this was my ..." to the node that heard it (QoS 1, waits for the PUBACK)."""
        client = self._client
        if client is None:
            raise BrokerUnavailableError(f"not connected to the MQTT broker at {self.broker}")
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                await client.publish(self.topics.learn(request.site, request.node),
                                     request.to_json(), qos=1)  # fmt: skip
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"the broker did not take it: {exc}") from exc

    async def remove_sound(self, site: str, sound: str) -> None:
        """Clear a learned sound's retained pack: every node of the site forgets it."""
        client = self._client
        if client is None:
            raise BrokerUnavailableError(f"not connected to the MQTT broker at {self.broker}")
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                await client.publish(self.topics.sound_pack(site, sound), b"", qos=1,
                                     retain=True)  # fmt: skip
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"the broker did not take it: {exc}") from exc


def _agent_config(settings: WebSettings) -> AgentConfig:
    password = settings.agent_broker_password
    return AgentConfig(
        broker_ws=settings.agent_broker_ws,
        topic_root=settings.topic_root,
        heartbeat_s=settings.agent_heartbeat_s,
        keepalive_s=settings.agent_keepalive_s,
        username=settings.agent_broker_username,
        password=password.get_secret_value() if password is not None else None,
        delivery=settings.agent_delivery,
        ack_timeout_s=settings.agent_ack_timeout_s,
    )


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
