"""The embedded MQTT broker of ``soundalert up`` (amqtt, pure Python, loopback only)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker

from soundalert.addresses import pick_port, port_is_free

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


@dataclass
class EmbeddedBroker:
    broker: Any
    host: str
    port: int
    ws_port: int | None
    note: str | None
    ws_note: str | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def stop(self) -> None:
        await self.broker.shutdown()


_BROKER_HINT = " (another MQTT broker, such as a system Mosquitto, may be running there)"


async def start_embedded_broker(
    host: str = "127.0.0.1", port: int = 1883, ws_port: int | None = None
) -> EmbeddedBroker:
    """Start amqtt on ``host`` (anonymous access: keep it on loopback), on ``port`` or, when
    another program listens there, the next free port (``EmbeddedBroker.note`` says so)."""
    wanted = port
    port, note = pick_port(host, port, "the embedded broker", _BROKER_HINT)
    if note:
        note += f". To use the broker on {host}:{wanted}, pass --broker mqtt://{host}:{wanted}."
    listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{host}:{port}"}}
    ws_note = None
    if ws_port is not None:
        ws_port, ws_note = pick_port(host, ws_port, "the broker's websocket listener",
                                     avoid=frozenset({port}))  # fmt: skip
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
    return EmbeddedBroker(broker, host, port, ws_port, note, ws_note)
