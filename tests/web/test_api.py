"""The HTTP API against the real app (starlette TestClient); MQTT is replaced by a recorder
at the publish boundary (tests/web/test_service.py covers the real broker)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from schemas.messages import Feedback
from schemas.topics import Topics
from services.aggregator.policy import load_policy
from services.web.app import COOKIE, BrokerUnavailableError, WebContext, build_app
from services.web.auth import Auth
from services.web.core import Update, WebCore
from services.web.hub import Hub
from services.web.metrics import WebMetrics
from services.web.palette import categories
from services.web.store import WebStore
from tests.web.conftest import SITE, TOKEN, alert, node_status

T = Topics("test/api/v1")
CABIN_TOKEN = "cabin-only-token-0123456789"  # noqa: S105 - a test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 11, 21, 12, 0, 5, tzinfo=UTC).timestamp()


@dataclass
class Broker:
    sent: list[Feedback] = field(default_factory=list)
    up: bool = True

    async def publish(self, feedback: Feedback) -> None:
        if not self.up:
            raise BrokerUnavailableError("not connected to the MQTT broker")
        self.sent.append(feedback)


@dataclass
class Env:
    client: TestClient
    core: WebCore
    broker: Broker
    metrics: WebMetrics
    hub: Hub
    auth: Auth

    def rejected(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "soundalert_web_requests_rejected_total", {"reason": reason}
        )
        return value or 0.0


@pytest.fixture
def env() -> Env:
    core = WebCore(WebStore(":memory:"), T)
    broker = Broker()
    metrics = WebMetrics()
    hub, auth = Hub(), Auth(TOKEN, {"cabin": CABIN_TOKEN})
    ctx = WebContext(
        core=core, hub=hub, auth=auth, metrics=metrics,
        categories=categories(load_policy()), publish_feedback=broker.publish,
        connected=lambda: broker.up, clock=lambda: NOW,
    )  # fmt: skip
    t1 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    t2 = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    for message in (
        alert("smoke-1", raised=t1),
        alert("door-1", category="doorbell", location="hall", priority="high", raised=t2),
        alert("cabin-1", site="cabin", raised=t2),
    ):
        core.handle(T.alerts(message.site), message.to_json(), retained=False, now=NOW)
    core.handle(T.status(SITE, "kitchen"), node_status("kitchen", mic=-33.0).to_json(),
                retained=False, now=NOW)  # fmt: skip
    core.store.commit()
    return Env(TestClient(build_app(ctx)), core, broker, metrics, hub, auth)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/api/alerts"), ("GET", "/api/nodes"), ("GET", "/api/categories"),
     ("POST", "/api/alerts/smoke-1/feedback"), ("POST", "/api/stream/ticket"),
     ("GET", "/api/stream")],
)  # fmt: skip
def test_without_a_token_everything_but_static_files_answers_401(
    env: Env, method: str, path: str
) -> None:
    response = env.client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = env.client.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert env.rejected("unauthorized") == 2


def test_static_assets_and_the_manifest_are_public(env: Env) -> None:
    manifest = env.client.get("/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    for icon in manifest.json()["icons"]:
        assert env.client.get(icon["src"]).status_code == 200, icon["src"]
    assert env.client.get("/static/app.js").status_code == 200


def test_the_page_takes_the_token_once_and_remembers_it_in_a_cookie(env: Env) -> None:
    page = env.client.get(f"/?token={TOKEN}")
    assert page.status_code == 200
    assert "<title>soundalert</title>" in page.text
    cookie = page.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    again = env.client.get("/")  # the client kept the cookie
    assert again.status_code == 200
    env.client.cookies.clear()
    refused = env.client.get("/?token=wrong-token-0123456789")
    assert refused.status_code == 401
    assert 'data-wrong="true"' in refused.text


def test_alerts_by_site_and_since(env: Env) -> None:
    everything = env.client.get("/api/alerts", headers=AUTH).json()["alerts"]
    assert [r["alert"]["alert_id"] for r in everything] == ["door-1", "cabin-1", "smoke-1"]
    home = env.client.get("/api/alerts", params={"site": SITE}, headers=AUTH).json()["alerts"]
    assert {r["alert"]["site"] for r in home} == {SITE}
    since = env.client.get(
        "/api/alerts", params={"site": SITE, "since": "2026-11-21T12:30:00Z"}, headers=AUTH
    ).json()["alerts"]
    assert [r["alert"]["alert_id"] for r in since] == ["door-1"]
    epoch = env.client.get("/api/alerts", params={"since": str(NOW + 3000)}, headers=AUTH)
    assert [r["alert"]["alert_id"] for r in epoch.json()["alerts"]] == ["door-1", "cabin-1"]
    by_room = env.client.get("/api/alerts", params={"location": "hall"}, headers=AUTH)
    assert [r["alert"]["alert_id"] for r in by_room.json()["alerts"]] == ["door-1"]


def test_bad_queries_are_explained(env: Env) -> None:
    naive = env.client.get("/api/alerts", params={"since": "2026-11-21T12:00"}, headers=AUTH)
    assert naive.status_code == 400
    assert "time zone" in naive.json()["message"]
    garbage = env.client.get("/api/alerts", params={"since": "yesterday"}, headers=AUTH)
    assert garbage.status_code == 400
    assert env.rejected("bad_query") == 2


def test_a_site_token_sees_only_its_site(env: Env) -> None:
    cabin = {"Authorization": f"Bearer {CABIN_TOKEN}"}
    alerts = env.client.get("/api/alerts", headers=cabin).json()["alerts"]
    assert [r["alert"]["alert_id"] for r in alerts] == ["cabin-1"]
    other = env.client.get("/api/alerts", params={"site": SITE}, headers=cabin)
    assert other.status_code == 403
    assert env.client.get("/api/nodes", headers=cabin).json()["nodes"] == []
    # Feedback on another site's alert is answered like an unknown alert.
    fb = env.client.post("/api/alerts/smoke-1/feedback", json={"verdict": "false_alarm"},
                         headers=cabin)  # fmt: skip
    assert fb.status_code == 404
    assert env.broker.sent == []


def test_a_site_tokens_live_stream_carries_only_its_site(env: Env) -> None:
    """Hosted, one display serves many tenants: a site token's stream ticket names only its
    site, and live updates of every other site never reach it."""
    cabin = {"Authorization": f"Bearer {CABIN_TOKEN}"}
    ticket = env.client.post("/api/stream/ticket", headers=cabin).json()["ticket"]
    grant = env.auth.check_ticket(ticket, NOW)
    everything = env.auth.check_token(TOKEN)
    assert grant is not None
    assert everything is not None
    assert grant.scope() == ["cabin"]
    tenant, operator = env.hub.subscribe(grant), env.hub.subscribe(everything)
    for message in (alert("smoke-2"), alert("cabin-2", site="cabin")):
        env.hub.publish(env.core.handle(T.alerts(message.site), message.to_json(),
                                        retained=False, now=NOW))  # fmt: skip

    def received(queue: asyncio.Queue[Update | None]) -> list[str]:
        ids = []
        while not queue.empty():
            update = queue.get_nowait()
            assert update is not None
            ids.append(update.record["alert"]["alert_id"])
        return ids

    assert received(tenant.queue) == ["cabin-2"]
    assert received(operator.queue) == ["smoke-2", "cabin-2"]


def test_nodes_and_categories(env: Env) -> None:
    nodes = env.client.get("/api/nodes", headers=AUTH).json()
    assert nodes["nodes"][0]["node"] == "kitchen"
    assert nodes["nodes"][0]["mic_dbfs"] == -33.0
    cats = env.client.get("/api/categories", headers=AUTH).json()["categories"]
    assert cats["smoke_alarm"]["color"] == "#d00000"
    assert cats["smoke_alarm"]["text"] == "#ffffff"


def test_feedback_is_published_and_recorded(env: Env) -> None:
    body = {"verdict": "false_alarm", "by": "Sam"}
    response = env.client.post("/api/alerts/smoke-1/feedback", json=body, headers=AUTH)
    assert response.status_code == 202
    [sent] = env.broker.sent
    assert (sent.alert_id, sent.verdict, sent.by, sent.site) == ("smoke-1", "false_alarm", "Sam",
                                                                 SITE)  # fmt: skip
    entry = env.core.store.alert("smoke-1")
    assert entry is not None
    assert entry.handled
    assert (
        env.metrics.registry.get_sample_value(
            "soundalert_web_feedback_sent_total", {"verdict": "false_alarm"}
        )
        == 1.0
    )


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{nope", 400, "malformed_json"),
        (b"[1, 2]", 422, "schema_violation"),
        (b'{"verdict": "maybe"}', 422, "schema_violation"),
        (b'{"verdict": "acknowledged", "extra": 1}', 422, "schema_violation"),
        (b'{"verdict": "acknowledged", "by": ""}', 422, "schema_violation"),
        (b'{"verdict": "acknowledged", "by": "a\\u0000b"}', 422, "schema_violation"),
        (b'{"verdict": "acknowledged", "by": "' + b"x" * 5000 + b'"}', 413, "payload_too_large"),
    ],
)
def test_bad_feedback_bodies_are_refused_and_counted(
    env: Env, body: bytes, status: int, reason: str
) -> None:
    response = env.client.post("/api/alerts/smoke-1/feedback", content=body,
                               headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == status, response.text
    assert response.json()["error"] == reason
    assert response.json()["message"]
    assert env.rejected(reason) == 1
    assert env.broker.sent == []


def test_feedback_for_an_unknown_alert_or_with_the_broker_down(env: Env) -> None:
    unknown = env.client.post("/api/alerts/nope/feedback", json={"verdict": "acknowledged"},
                              headers=AUTH)  # fmt: skip
    assert unknown.status_code == 404
    assert env.rejected("unknown_alert") == 1
    env.broker.up = False
    down = env.client.post("/api/alerts/smoke-1/feedback", json={"verdict": "acknowledged"},
                           headers=AUTH)  # fmt: skip
    assert down.status_code == 503
    assert "not connected" in down.json()["message"]
    assert env.rejected("broker_unavailable") == 1
    entry = env.core.store.alert("smoke-1")
    assert entry is not None
    assert not entry.handled


def test_stream_needs_a_valid_ticket(env: Env) -> None:
    ticket = env.client.post("/api/stream/ticket", headers=AUTH).json()["ticket"]
    body, sig = ticket.split(".")
    tampered = env.client.get("/api/stream", params={"ticket": f"{body}.{sig[::-1]}"})
    assert tampered.status_code == 401
