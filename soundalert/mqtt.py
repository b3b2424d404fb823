"""MQTT plumbing shared by every soundalert service: broker URLs, clients, reconnect, errors.

aiomqtt does not reconnect by itself; :func:`run_forever` is the documented pattern (a loop
around ``async with Client``) with capped, jittered exponential backoff and a clear log line
saying why the connection failed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiomqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = [
    "Backoff",
    "BrokerUrl",
    "ack",
    "connect_problem",
    "make_client",
    "run_forever",
]

log = logging.getLogger(__name__)

_VERSIONS = {"3": MQTTProtocolVersion.MQTTv311, "5": MQTTProtocolVersion.MQTTv5}


@dataclass(frozen=True)
class BrokerUrl:
    """A broker address: ``mqtt://[user[:password]@]host[:port][?version=5]``."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    version: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in {"mqtt", "mqtts", "tcp"}:
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        tls = parts.scheme == "mqtts"
        query = parse_qs(parts.query)
        version_text = query.get("version", ["3"])[0]
        if version_text not in _VERSIONS:
            raise ValueError(f"broker URL {url!r}: version must be 3 or 5")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"broker URL {url!r}: {exc}") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            version=_VERSIONS[version_text],
        )

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


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
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion(broker.version.value),
        will=will,
        keepalive=keepalive,
        tls_params=aiomqtt.TLSParameters() if broker.tls else None,
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


def connect_problem(exc: BaseException, broker: BrokerUrl) -> str:
    """One line a person can act on, for a connection failure."""
    text = str(exc)
    rc = getattr(exc, "rc", None)
    code = getattr(rc, "value", rc)
    if code in {4, 5, 134, 135} or "not authori" in text.lower():
        return (
            f"the broker at {broker.host}:{broker.port} refused the credentials "
            f"(user {broker.username!r}): {text}"
        )
    if "refused" in text.lower():
        return f"nothing is accepting MQTT connections at {broker.host}:{broker.port} ({text})"
    if "name or service not known" in text.lower() or "nodename" in text.lower():
        return f"cannot resolve broker host {broker.host!r} ({text})"
    return f"MQTT connection to {broker.host}:{broker.port} failed or was lost: {text}"


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

    def reset(self) -> None:
        self.attempt = 0


async def run_forever(
    broker: BrokerUrl,
    connect: Callable[[], aiomqtt.Client],
    session: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    backoff: Backoff | None = None,
    on_disconnect: Callable[[str], None] | None = None,
) -> None:
    """Run ``session`` on a fresh connection, reconnecting with backoff whenever it drops.

    ``session`` should subscribe (again) at its start: after a reconnect the broker may or may
    not have kept the subscriptions. Returns only when ``session`` returns.
    """
    backoff = backoff or Backoff()
    while True:
        try:
            async with connect() as client:
                log.info("connected to MQTT broker %s", broker)
                backoff.reset()
                await session(client)
                return
        except aiomqtt.MqttError as exc:
            problem = connect_problem(exc, broker)
            if on_disconnect is not None:
                on_disconnect(problem)
            delay = backoff.next_delay()
            log.warning("%s; retrying in %.1f s", problem, delay)
            await asyncio.sleep(delay)
