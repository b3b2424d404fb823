"""The embedded MQTT broker of ``soundalert up`` (amqtt, pure Python, loopback only)."""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker

__all__ = ["EmbeddedBroker", "port_is_free", "start_embedded_broker"]

log = logging.getLogger(__name__)


class _Broker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt's broker with retained delivery limited to the session's own subscriptions.

    amqtt 0.12, on every CONNECT, replays retained messages for *every* subscription filter
    any client holds (it loops over the broker-wide subscription table), so a client that
    subscribed to alerts also received every node's retained status. A retained message is
    only due to a session that holds a matching subscription (MQTT 3.1.1, 3.3.1.3).
    """

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Any
    ) -> None:
        holders = self._subscriptions.get(subscription[0], ())
        if not any(holder is session for holder, _ in holders):
            return
        await super()._publish_retained_messages_for_subscription(subscription, session)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in {errno.EADDRINUSE, errno.EACCES}:
                return False
            raise
    return True


@dataclass
class EmbeddedBroker:
    broker: Any
    host: str
    port: int
    ws_port: int | None
    note: str | None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def stop(self) -> None:
        await self.broker.shutdown()


def _pick(host: str, wanted: int, tries: int = 20) -> tuple[int, str | None]:
    if port_is_free(host, wanted):
        return wanted, None
    for candidate in range(wanted + 1, wanted + 1 + tries):
        if port_is_free(host, candidate):
            return candidate, (
                f"port {wanted} on {host} is already in use (another MQTT broker, such as a "
                f"system Mosquitto, may be running there); the embedded broker uses port "
                f"{candidate} instead. To use the broker on {wanted}, pass "
                f"--broker mqtt://{host}:{wanted}."
            )
    raise OSError(f"ports {wanted}-{wanted + tries} on {host} are all in use; pass --broker")


async def start_embedded_broker(
    host: str = "127.0.0.1", port: int = 1883, ws_port: int | None = None
) -> EmbeddedBroker:
    """Start amqtt on ``host`` (anonymous access: keep it on loopback)."""
    port, note = _pick(host, port)
    listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{host}:{port}"}}
    ws_note = None
    if ws_port is not None:
        ws_port, ws_note = _pick(host, ws_port)
        listeners["ws"] = {"type": "ws", "bind": f"{host}:{ws_port}"}
    config = {
        "listeners": listeners,
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = _Broker(config)
    await broker.start()
    if note:
        log.info("%s", note)
    if ws_note:
        log.info("%s", ws_note)
    return EmbeddedBroker(broker, host, port, ws_port, note)
