"""What happened to an MQTT connection, in words a person can act on.

Three different things look alike from inside a client and must not be confused:

- **refused**: the broker answered CONNECT with a negative CONNACK (aiomqtt raises
  ``MqttConnectError``); "bad user name or password" and "not authorized" are a
  configuration problem that retrying will not fix;
- **lost**: the connection dropped (paho's own codes, ``MQTT_ERR_NO_CONN`` = 4 when publishing
  on a closed connection, ``MQTT_ERR_CONN_LOST`` = 7, are *not* CONNACK codes), or the broker
  closed it before its CONNACK;
- **taken over**: another client connected with the same client id, and the broker closed
  ours. MQTT 5 says so (DISCONNECT reason 142); on MQTT 3.1.1 the broker just closes the
  socket, so :class:`TakeoverWatch` infers it from the pattern the two clients make: each
  connection is dropped soon after it was accepted, while every reconnect succeeds at once.

aiomqtt turns socket and TLS errors into ``MqttError(str(exc))``, so those are recognised by
their (OpenSSL / OS) text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

if TYPE_CHECKING:
    from soundalert.mqtt import BrokerUrl

__all__ = [
    "SESSION_TAKEN_OVER",
    "ClosedBeforeConnack",
    "ConnectionProblem",
    "ProblemKind",
    "TakeoverWatch",
    "closed_by_broker",
    "describe_connect_failure",
    "describe_drop",
]

ProblemKind = Literal["refused_credentials", "refused", "unreachable", "tls", "lost", "taken_over"]

SESSION_TAKEN_OVER: Final = 142
"""MQTT 5 DISCONNECT reason code: another connection took this client id's session over."""
_BAD_CREDENTIALS: Final = frozenset({134, 135})  # Bad user name or password, Not authorized
_MQTT3_CONNACK: Final = {1: 132, 2: 133, 3: 136, 4: 134, 5: 135}  # 3.1.1 return codes -> MQTT 5
_KEEPALIVE_TIMEOUT: Final = 141
_CONNACK_HINTS: Final = {
    132: "it does not speak this MQTT version (try ?version=3 or ?version=5)",
    133: "it does not accept the client id",
    136: "it is unavailable",
    137: "it is busy",
    138: "this client is banned",
    140: "the authentication method is not supported",
}


class ClosedBeforeConnack(aiomqtt.MqttCodeError):
    """The broker closed the connection after the TCP (and TLS) handshake, before CONNACK."""

    def __str__(self) -> str:
        what = super().__str__()
        return f"{self.args[0]}; {what}" if self.args and self.args[0] else what


@dataclass(frozen=True)
class ConnectionProblem:
    """What went wrong, for logs, metrics and the decision to give up."""

    kind: ProblemKind
    message: str

    @property
    def configuration(self) -> bool:
        """Retrying cannot fix it: a login or TLS setting is wrong."""
        return self.kind in {"refused_credentials", "tls"}

    def __str__(self) -> str:
        return self.message


def _codes(exc: BaseException) -> list[int]:
    """Every MQTT reason code on the exception and its causes, innermost last. Plain ints are
    paho's own error numbers (``MQTT_ERR_*``), except on a CONNACK refusal."""
    codes: list[int] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        rc = getattr(current, "rc", None)
        if isinstance(rc, ReasonCode):
            codes.append(rc.value)
        elif isinstance(current, MqttConnectError) and isinstance(rc, int):
            codes.append(_MQTT3_CONNACK.get(rc, rc))
        current = current.__cause__ or current.__context__
    return codes


def _where(broker: BrokerUrl) -> str:
    return f"the broker at {broker.host}:{broker.port}"


def _tls_problem(text: str, broker: BrokerUrl) -> ConnectionProblem | None:
    lowered = text.lower()
    where = _where(broker)
    trusted = f"the CA in {broker.ca_file}" if broker.ca_file else "the system's trusted CAs"
    if "certificate verify failed" in lowered:
        if "mismatch" in lowered or "doesn't match" in lowered:
            return ConnectionProblem(
                "tls",
                f"the certificate of {where} is not valid for the name {broker.host!r} "
                f"({text}); connect with a name or address in its certificate (soundalert "
                "node init --san NAME adds one)",
            )
        if "expired" in lowered or "not yet valid" in lowered:
            return ConnectionProblem(
                "tls", f"the certificate of {where} is outside its validity period ({text})"
            )
        return ConnectionProblem(
            "tls",
            f"{where} presented a certificate that {trusted} did not sign ({text}); pass the "
            "CA that signed it: ?ca=/path/to/ca.crt in the broker URL",
        )
    if "wrong_version_number" in lowered or "wrong version number" in lowered:
        return ConnectionProblem(
            "tls",
            f"{where} does not speak TLS on port {broker.port} ({text}); use its TLS port "
            "(usually 8883) or mqtt:// on a plain listener",
        )
    if "certificate required" in lowered or "certificate_required" in lowered:
        return ConnectionProblem(
            "tls",
            f"{where} requires a client certificate ({text}); add ?cert=/path/client.crt"
            "&key=/path/client.key to the broker URL",
        )
    if "bad certificate" in lowered or "unknown ca" in lowered or "bad_certificate" in lowered:
        return ConnectionProblem(
            "tls", f"{where} rejected our client certificate ({text}); is it signed by its CA?"
        )
    if "[ssl" in lowered or "ssl:" in lowered:
        return ConnectionProblem("tls", f"TLS with {where} failed: {text}")
    return None


def describe_connect_failure(exc: BaseException, broker: BrokerUrl) -> ConnectionProblem:
    """A failure before the broker accepted the connection (no positive CONNACK)."""
    text = str(exc)
    where = _where(broker)
    if isinstance(exc, MqttConnectError):
        codes = _codes(exc)
        code = codes[0] if codes else None
        if code in _BAD_CREDENTIALS:
            return ConnectionProblem(
                "refused_credentials",
                f"{where} refused the credentials (user {broker.username!r}): {text}",
            )
        hint = _CONNACK_HINTS.get(code or 0, "")
        return ConnectionProblem(
            "refused", f"{where} refused the connection{': ' + hint if hint else ''} ({text})"
        )
    if (tls_problem := _tls_problem(text, broker)) is not None:
        return tls_problem
    if isinstance(exc, ClosedBeforeConnack):
        tls = "" if broker.tls else "; if it only takes TLS on this port, use mqtts://"
        return ConnectionProblem(
            "lost", f"{where} closed the connection before accepting it ({text}){tls}"
        )
    lowered = text.lower()
    if broker.tls and ("reset by peer" in lowered or "eof occurred" in lowered):
        return ConnectionProblem(
            "unreachable",
            f"{where} closed the connection during the TLS handshake ({text}); is port "
            f"{broker.port} its TLS listener (usually 8883)?",
        )
    if "refused" in lowered:
        return ConnectionProblem(
            "unreachable", f"nothing is accepting MQTT connections at {broker.host}:{broker.port} "
            f"({text})"
        )  # fmt: skip
    if "name or service not known" in lowered or "nodename" in lowered:
        return ConnectionProblem(
            "unreachable", f"cannot resolve broker host {broker.host!r} ({text})"
        )
    if "timed out" in lowered:
        return ConnectionProblem(
            "unreachable", f"{where} did not answer the connection attempt in time ({text})"
        )
    return ConnectionProblem("unreachable", f"cannot connect to {where}: {text}")


def _detail(exc: BaseException) -> str:
    """The most specific text on an exception chain ('Unexpected disconnection: [code:128]
    Unspecified error' rather than aiomqtt's 'Disconnected during message iteration')."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 4:
        text = str(current)
        if text and text not in parts:
            parts.append(text)
        current = current.__cause__
    return "; ".join(parts) or type(exc).__name__


def takeover_message(broker: BrokerUrl, client_id: str, evidence: str, *, certain: bool) -> str:
    who = "another client is" if certain else "most likely another client is"
    return (
        f"{_where(broker)} handed the session of client id {client_id!r} to another "
        f"connection ({evidence}): {who} connected with the same client id {client_id!r}, and "
        "each takes the other's session over. Stop the other instance, or give each its own "
        "client id (setting client_id, SOUNDALERT_CLIENT_ID; a node: its own --node)"
    )


def closed_by_broker(exc: BaseException) -> bool:
    """The connection ended because the broker (or the network) closed it, not because we
    stopped waiting for an answer."""
    return "timed out" not in _detail(exc).lower()


def describe_drop(
    exc: BaseException,
    broker: BrokerUrl,
    client_id: str,
    *,
    taken_over: bool,
    socket_error: str | None = None,
) -> ConnectionProblem:
    """A connection the broker had accepted ended. ``taken_over``: :class:`TakeoverWatch`
    saw the pattern of a second client with the same id; ``socket_error``: what the socket
    said last, if anything."""
    codes = _codes(exc)
    detail = _detail(exc) + (f"; {socket_error}" if socket_error else "")
    if SESSION_TAKEN_OVER in codes:
        evidence = f"MQTT 5 DISCONNECT reason {SESSION_TAKEN_OVER}, Session taken over"
        message = takeover_message(broker, client_id, evidence, certain=True)
        return ConnectionProblem("taken_over", message)
    if taken_over:
        evidence = (
            "it dropped this connection soon after accepting it, again and again, while "
            "accepting every reconnect at once"
        )
        message = takeover_message(broker, client_id, evidence, certain=False)
        return ConnectionProblem("taken_over", message)
    if _KEEPALIVE_TIMEOUT in codes:
        return ConnectionProblem(
            "lost", f"the connection to {_where(broker)} was lost: no keep-alive answer ({detail})"
        )
    if "timed out" in detail.lower():
        return ConnectionProblem(
            "lost",
            f"{_where(broker)} did not acknowledge in time; dropping the connection ({detail})",
        )
    return ConnectionProblem("lost", f"the connection to {_where(broker)} was lost ({detail})")


@dataclass
class TakeoverWatch:
    """Infers a session takeover on MQTT 3.1.1, where the broker just closes the socket.

    Two clients with one client id make a signature no network fault makes: the broker keeps
    accepting each reconnect at the first attempt and keeps dropping each accepted connection
    soon after (when the other one reconnects). ``streak`` counts consecutive connections that
    were made at once after a drop and then dropped within ``short_s``; from ``needed`` on, a
    drop is a takeover. A failed attempt, or a connection that lasts, resets it: a broker that
    restarts or a network that goes away refuses at least one attempt.
    """

    needed: int = 2
    short_s: float = 60.0
    streak: int = 0
    _connected_at: float | None = None
    _after_drop: bool = False
    _instant: bool = False

    def connected(self, now: float) -> None:
        self._instant = self._after_drop
        self._connected_at = now

    def failed(self) -> None:
        """A connection attempt failed: the broker or the network is really unavailable."""
        self.streak = 0
        self._after_drop = False
        self._instant = False

    def dropped(self, now: float, *, by_broker: bool = True) -> bool:
        """The accepted connection ended: the broker closed it (``by_broker``), or we gave up
        on it (a timeout: no evidence of a takeover). True: this looks like a takeover."""
        lasted = now - (self._connected_at if self._connected_at is not None else now)
        if not by_broker:
            self.failed()
            return False
        if self._instant and lasted < self.short_s:
            self.streak += 1
        else:
            self.streak = 0
        self._after_drop = True
        self._connected_at = None
        return self.streak >= self.needed
