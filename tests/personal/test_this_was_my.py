""" "This was my ...": the display asks the node that heard an alert to learn its sound, and the
node learns it from the embeddings it kept of those windows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest
from starlette.testclient import TestClient

from edge.dsp import synth
from schemas.common import utc_now
from schemas.decode import decode
from schemas.soundpack import LearnRequest, SoundPack
from schemas.topics import Topics
from services.aggregator.policy import load_policy
from services.web.app import BrokerUnavailableError, WebContext, build_app
from services.web.auth import Auth
from services.web.core import WebCore
from services.web.hub import Hub
from services.web.metrics import WebMetrics
from services.web.palette import categories
from services.web.store import WebStore
from tests.agent.conftest import background_bed, feed, stdin_agent
from tests.personal.sounds import beeps, pack_payload
from tests.support.mosquitto import Mosquitto
from tests.web.conftest import TOKEN, alert

AUTH = {"Authorization": f"Bearer {TOKEN}"}
T = Topics("test/learn/v1")


@dataclass
class Sent:
    requests: list[LearnRequest] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    up: bool = True

    async def publish(self, request: LearnRequest) -> None:
        if not self.up:
            raise BrokerUnavailableError("not connected to the MQTT broker")
        self.requests.append(request)

    async def remove(self, site: str, sound: str) -> None:
        self.removed.append((site, sound))


def _client(sent: Sent) -> tuple[TestClient, WebCore]:
    core = WebCore(WebStore(":memory:"), T)
    ctx = WebContext(core=core, hub=Hub(), auth=Auth(TOKEN, {}), metrics=WebMetrics(),
                     categories=categories(load_policy()), publish_feedback=_never,
                     publish_learn=sent.publish, remove_sound=sent.remove)  # fmt: skip
    raised = datetime(2026, 11, 21, 12, 0, 10, tzinfo=UTC)
    message = alert("beep-1", category="alarm_beep", location="hall", priority="normal",
                    raised=raised)  # fmt: skip
    core.handle(T.alerts(message.site), message.to_json(), retained=False, now=raised.timestamp())
    core.store.commit()
    return TestClient(build_app(ctx)), core


async def _never(_feedback: object) -> None:
    raise AssertionError("no feedback expected")


def test_the_display_asks_the_node_that_heard_it() -> None:
    sent = Sent()
    client, _ = _client(sent)
    response = client.post("/api/alerts/beep-1/learn", headers=AUTH,
                           json={"title": "Oven timer", "by": "Sam"})  # fmt: skip
    assert response.status_code == 202, response.text
    (request,) = sent.requests
    assert (request.node, request.sound, request.title, request.by) == (
        "hall", "oven_timer", "Oven timer", "Sam")  # fmt: skip
    raised = datetime(2026, 11, 21, 12, 0, 10, tzinfo=UTC)
    assert request.heard_from == raised - timedelta(seconds=1)
    assert request.heard_to == raised + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/api/alerts/beep-1/learn", {"title": "x"}, {}, 401),
        ("/api/alerts/nope/learn", {"title": "x"}, AUTH, 404),
        ("/api/alerts/beep-1/learn", {"title": ""}, AUTH, 422),
        ("/api/alerts/beep-1/learn", {"title": "x", "priority": "urgent"}, AUTH, 422),
    ],
)
def test_bad_requests_are_refused(path: str, body: dict[str, str], headers: dict[str, str],
                                  status: int) -> None:  # fmt: skip
    sent = Sent()
    client, _ = _client(sent)
    assert client.post(path, headers=headers, json=body).status_code == status
    assert sent.requests == []


def test_the_display_lists_and_removes_learned_sounds() -> None:
    sent = Sent()
    client, core = _client(sent)
    core.handle(T.sound_pack("home", "microwave"), pack_payload(), retained=True, now=0.0)
    (sound,) = client.get("/api/sounds", headers=AUTH).json()["sounds"]
    assert (sound["sound"], sound["title"], sound["version"], sound["learned_on"]) == (
        "microwave", "Microwave", 1, "kitchen")  # fmt: skip
    assert sound["quality"]["leave_one_out"] == 1.0
    assert "weights" not in sound, "the display never holds a sound's weights"
    assert client.delete("/api/sounds/home/oven", headers=AUTH).status_code == 404
    assert client.delete("/api/sounds/home/microwave").status_code == 401
    assert client.delete("/api/sounds/home/microwave", headers=AUTH).status_code == 202
    assert sent.removed == [("home", "microwave")]
    assert client.get("/api/sounds", headers=AUTH).json()["sounds"] == []
    # the broker's echo of the removal (an empty retained payload) is taken too
    core.handle(T.sound_pack("home", "microwave"), b"", retained=False, now=0.0)


def test_a_broker_that_is_away_is_said() -> None:
    sent = Sent(up=False)
    client, _ = _client(sent)
    response = client.post("/api/alerts/beep-1/learn", headers=AUTH, json={"title": "x"})
    assert response.status_code == 503
    assert "not connected" in response.json()["message"]


async def test_the_node_learns_from_the_windows_it_kept_and_shares_the_pack(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    """A live agent hears 12 s of its room with a microwave at 8 s; asked afterwards to learn
    what it heard from 7.5 to 10.5 s, it publishes the sound pack for the site."""
    topics = Topics(topic_root)
    bed = background_bed(12.0, seed=21)
    audio = synth.mix_at_snr(beeps(3), bed, 15.0, offset=8 * 16000)
    pcm = synth.to_int16(audio).astype("<i2").tobytes()
    env = {"SOUNDALERT_STATE_DIR": str(tmp_path)}
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="service",
                              password=mosquitto.users["service"]) as spy:  # fmt: skip
        await spy.subscribe(topics.sound_pack("home", "microwave"), qos=1)
        async with stdin_agent(mosquitto, topic_root, tmp_path / "o.sqlite3", env=env) as agent:
            started = utc_now()
            await feed(agent, pcm)
            await asyncio.sleep(1.0)
            request = LearnRequest(
                request_id="learn-1", site="home", node="kitchen", sound="microwave",
                title="Microwave", heard_from=started + timedelta(seconds=7.5),
                heard_to=started + timedelta(seconds=10.5), by="test", at=utc_now(),
            )  # fmt: skip
            await spy.publish(topics.learn("home", "kitchen"), request.to_json(), qos=1)
            async with asyncio.timeout(15):
                message = await anext(aiter(spy.messages))
        assert isinstance(message.payload, bytes)
        pack = decode(SoundPack, message.payload)
        assert (pack.sound, pack.title, pack.learned_on, pack.version) == (
            "microwave", "Microwave", "kitchen", 1)  # fmt: skip
        assert 1 <= int(pack.quality["examples"]) <= 5
