"""Fixtures shared by every test package: a real Mosquitto per test, a unique topic root."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto, TlsFiles
from tests.support.nats import Broker, NatsServer

pytest_plugins = ["tests.support.room"]  # the virtual room with a microphone (PulseAudio)

SERVICE_USER = "service"
NODE_USERS = ("kitchen", "hall", "bedroom")

# Services read and write everything; a node may only write under its own node id, in any site,
# read its own delivery acknowledgements, and read and write its site's learned sounds.
DEFAULT_ACL = "\n".join(
    [
        f"user {SERVICE_USER}",
        "topic readwrite #",
        "",
        "pattern write soundalert/v1/+/%u/#",
        "pattern write test/+/v1/+/%u/#",
        "pattern read soundalert/v1/+/%u/ack",
        "pattern read test/+/v1/+/%u/ack",
        "pattern read soundalert/v1/+/%u/learn",
        "pattern read test/+/v1/+/%u/learn",
        "pattern readwrite soundalert/v1/+/sounds/+",
        "pattern readwrite test/+/v1/+/sounds/+",
        "",
    ]
)


def _test_users() -> dict[str, str]:
    return {SERVICE_USER: "service-secret", **{node: f"{node}-secret" for node in NODE_USERS}}


def _running(tmp_path: Path, tls: TlsFiles | None) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto", users=_test_users(), acl=DEFAULT_ACL, tls=tls)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    yield from _running(tmp_path, None)


@pytest.fixture
def tls_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """The same Mosquitto with TLS listeners and a CA generated for the test
    (``url(user, tls=True)``, ``url(user, client_cert=True)``)."""
    yield from _running(tmp_path, TlsFiles.generate(tmp_path / "tls"))


@pytest.fixture(params=["mosquitto", "nats"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mosquitto | NatsServer]:
    """The broker of a home (Mosquitto) and of the hosted mode (NATS's MQTT listener, MQTT
    3.1.1 on JetStream), for the MQTT-level tests of components that run in hosted mode. Both
    have the same users; only Mosquitto has the per-node ACL. What differs: docs/hosted.md."""
    if request.param == "mosquitto":
        yield from _running(tmp_path, None)
        return
    server = NatsServer(tmp_path / "nats", users=_test_users())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def mqtt_broker(request: pytest.FixtureRequest) -> Broker:
    """The broker a test's services connect to: ``broker`` (Mosquitto, then NATS) when the
    test asks for it, else ``mosquitto``; package fixtures build settings on this one."""
    name = "broker" if "broker" in request.fixturenames else "mosquitto"
    server: Broker = request.getfixturevalue(name)
    return server


@pytest.fixture
def topic_root() -> str:
    """A unique topic root per test, so tests never see each other's retained messages."""
    return f"test/{uuid.uuid4().hex[:10]}/v1"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a PostgreSQL database created for this test session (dropped after it)."""
    from tests.support.postgres import scratch_database  # noqa: PLC0415 - needs the hosted extra

    with scratch_database() as url:
        yield url
