"""MQTT plumbing shared by every soundalert service: broker URLs, clients, reconnect, errors.

aiomqtt does not reconnect by itself; :func:`run_forever` is the documented pattern (a loop
around ``async with Client``) with capped, jittered exponential backoff and a clear log line
saying what happened (:mod:`soundalert.connection`): refused credentials, a lost connection,
or a session taken over by another client with the same id.

One broker URL carries everything a component needs to reach its broker, TLS included, so the
same ``--broker`` / ``SOUNDALERT_BROKER`` works for every command::

    mqtts://user:password@host:8883?ca=/etc/soundalert/ca.crt&cert=client.crt&key=client.key
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from soundalert.connection import (
    ClosedBeforeConnack,
    ConnectionProblem,
    TakeoverWatch,
    closed_by_broker,
    describe_connect_failure,
    describe_drop,
)

__all__ = [
    "BROKER_URL_HELP",
    "Backoff",
    "BrokerUrl",
    "ConnectionProblem",
    "ack",
    "connect_problem",
    "make_client",
    "run_forever",
]

log = logging.getLogger(__name__)

_VERSIONS = {"3": MQTTProtocolVersion.MQTTv311, "5": MQTTProtocolVersion.MQTTv5}
_TLS_OPTIONS: Final = ("ca", "cert", "key")
BROKER_URL_HELP: Final = (
    "Broker URL: mqtt://[user[:password]@]host[:port], or mqtts:// for TLS (port 8883) with "
    "?ca=CA.crt (trust this CA instead of the system's), &cert=CLIENT.crt&key=CLIENT.key (a "
    "client certificate); &version=5 for MQTT 5."
)


@dataclass(frozen=True)
class BrokerUrl:
    """A broker address: ``mqtt[s]://[user[:password]@]host[:port][?version=5&ca=...]``."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    version: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Parse and check ``url``; with TLS, the CA and client certificate files are loaded
        here, so a wrong path or file is a configuration error at start, not at connect."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in {"mqtt", "mqtts", "tcp"}:
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        tls = parts.scheme == "mqtts"
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"version", *_TLS_OPTIONS})
        if unknown:
            raise ValueError(
                f"broker URL {parts.hostname}: unknown option(s) {', '.join(unknown)} "
                "(known: version, ca, cert, key)"
            )
        version_text = query.get("version", ["3"])[0]
        if version_text not in _VERSIONS:
            raise ValueError(f"broker URL {url!r}: version must be 3 or 5")
        files = {name: Path(query[name][0]) for name in _TLS_OPTIONS if query.get(name, [""])[0]}
        if files and not tls:
            raise ValueError(
                f"broker URL {parts.hostname}: {', '.join(files)} need TLS: use mqtts://"
            )
        if "key" in files and "cert" not in files:
            raise ValueError(f"broker URL {parts.hostname}: key= needs cert= (its certificate)")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"broker URL {parts.hostname}: {exc}") from None
        broker = cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            version=_VERSIONS[version_text],
            ca_file=files.get("ca"),
            cert_file=files.get("cert"),
            key_file=files.get("key"),
        )
        if tls:
            _ = broker.ssl_context
        return broker

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the broker's certificate and host name against ``ca_file`` (or the system's
        CAs); presents ``cert_file``/``key_file`` when given. Raises ``ValueError`` saying which
        file is wrong."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"broker URL {self.host}: CA file {self.ca_file}: {_why(exc)}"
            ) from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"broker URL {self.host}: client certificate {self.cert_file} / key "
                    f"{self.key_file or '(in the certificate file)'}: {_why(exc)}"
                ) from None
        return context

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def _why(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, ssl.SSLError):
        return f"not a usable PEM file ({exc.reason or exc})"
    return str(exc)


class _Client(aiomqtt.Client):
    """aiomqtt's client, failing at once when the broker closes the connection before its
    CONNACK (aiomqtt ignores that disconnect and waits out its 10 s timeout), and keeping the
    socket error paho logged last (a TLS alert such as "certificate required" arrives only
    as a failed read, not in the disconnect's reason)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_error: str | None = None
        self._client.on_log = self._on_paho_log

    def _on_paho_log(self, _client: paho.Client, _userdata: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            self.socket_error = text

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():
            # paho may call this from the executor thread that runs connect().
            self._loop.call_soon_threadsafe(self._closed_before_connack, reason_code)
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _closed_before_connack(self, reason_code: ReasonCode) -> None:
        if self._lock.locked() and not self._connected.done():  # __aenter__ is waiting
            self._connected.set_exception(ClosedBeforeConnack(reason_code, self.socket_error))


def make_client(
    broker: BrokerUrl,
    client_id: str,
    *,
    will: aiomqtt.Will | None = None,
    persistent: bool = False,
    manual_ack: bool = False,
    keepalive: int = 30,
) -> aiomqtt.Client:
    """Build a client. ``persistent`` keeps the broker-side session (and queued QoS 1
    messages) across reconnects and restarts; ``manual_ack`` withholds each PUBACK until the
    caller has durably handled the message (see :func:`ack`)."""
    kwargs: dict[str, Any] = {}
    if broker.version == MQTTProtocolVersion.MQTTv5:
        kwargs["clean_start"] = not persistent
        if persistent:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 7 * 24 * 3600
            kwargs["properties"] = props
    else:
        kwargs["clean_session"] = not persistent
    client = _Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion(broker.version.value),
        will=will,
        keepalive=keepalive,
        tls_context=broker.ssl_context if broker.tls else None,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        **kwargs,
    )
    if manual_ack:
        # aiomqtt 2.x has no public switch; paho's documented manual_ack_set is the mechanism.
        client._client.manual_ack_set(True)  # noqa: SLF001
    return client


def ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """Send the PUBACK for a message received with ``manual_ack``."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)  # noqa: SLF001


def connect_problem(exc: BaseException, broker: BrokerUrl) -> ConnectionProblem:
    """What a failed connection attempt means (see :mod:`soundalert.connection`)."""
    return describe_connect_failure(exc, broker)


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter."""

    initial: float = 0.5
    maximum: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security

    def longest(self) -> float:
        """A delay at the cap (jittered), for a problem that an early retry only repeats."""
        return random.uniform(self.maximum / 2, self.maximum)  # noqa: S311

    def reset(self) -> None:
        self.attempt = 0


STABLE_S: Final = 10.0
"""A connection that lasted this long was working: the next reconnect starts the backoff anew
(a broker that drops every connection at once is not retried twice a second)."""
TAKEOVER_WINDOW_S: Final = 60.0
"""Connections shorter than this (or twice the longest backoff) count towards a takeover."""


async def run_forever(
    broker: BrokerUrl,
    connect: Callable[[], aiomqtt.Client],
    session: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    backoff: Backoff | None = None,
    on_disconnect: Callable[[ConnectionProblem], None] | None = None,
) -> None:
    """Run ``session`` on a fresh connection, reconnecting with backoff whenever it drops.

    ``session`` should subscribe (again) at its start: after a reconnect the broker may or may
    not have kept the subscriptions. Returns only when ``session`` returns. ``on_disconnect``
    hears what happened each time (it may raise to give up). The backoff starts anew only
    after a connection that lasted :data:`STABLE_S`, so a broker that drops every connection
    at once is not hammered; a session taken over by another client with the same id waits
    the longest delay (:class:`~soundalert.connection.TakeoverWatch`), so two such clients do
    not take turns twice a second.
    """
    backoff = backoff or Backoff()
    watch = TakeoverWatch(short_s=max(TAKEOVER_WINDOW_S, 2 * backoff.maximum))
    while True:
        client = connect()
        connected_at: float | None = None
        try:
            async with client:
                connected_at = time.monotonic()
                watch.connected(connected_at)
                log.info("connected to MQTT broker %s as %r", broker, client.identifier)
                await session(client)
                return
        except aiomqtt.MqttError as exc:
            if connected_at is None:
                watch.failed()
                problem = describe_connect_failure(exc, broker)
            else:
                now = time.monotonic()
                if now - connected_at >= STABLE_S:
                    backoff.reset()
                suspected = watch.dropped(now, by_broker=closed_by_broker(exc))
                socket_error = getattr(client, "socket_error", None)
                problem = describe_drop(exc, broker, client.identifier, taken_over=suspected,
                                        socket_error=socket_error)  # fmt: skip
            if on_disconnect is not None:
                on_disconnect(problem)
            taken_over = problem.kind == "taken_over"
            delay = backoff.longest() if taken_over else backoff.next_delay()
            level = logging.ERROR if taken_over or problem.configuration else logging.WARNING
            log.log(level, "%s; retrying in %.1f s", problem, delay)
            await asyncio.sleep(delay)
