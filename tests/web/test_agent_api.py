"""The phone agent's server side (issue 7): the page, its config endpoint, the model and the
vendored runtime, against the real app (starlette TestClient)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from edge.agent.model import (
    DEFAULT_MODEL,
    EMBEDDING_TENSOR,
    YamnetModel,
    load_interpreter_class,
)
from schemas.topics import Topics
from services.aggregator.policy import load_policy
from services.web.agent import (
    BUILD_HINT,
    REQUIRED_VENDOR_FILES,
    AgentConfig,
    agent_page_html,
    missing_vendor_files,
    model_version,
)
from services.web.app import PAGES_DIR, WebContext, build_app
from services.web.auth import Auth
from services.web.core import WebCore
from services.web.hub import Hub
from services.web.metrics import WebMetrics
from services.web.palette import categories
from services.web.settings import WebSettings
from services.web.store import WebStore
from tests.web.conftest import TOKEN

CABIN_TOKEN = "cabin-only-token-0123456789"  # noqa: S105 - a test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE_PASSWORD = "phones-password"  # noqa: S105 - a test password


async def _nothing(_feedback: object) -> None:
    return None


def _client(vendor: Path, broker_ws: str | None = "ws://{host}:9001/") -> TestClient:
    agent = AgentConfig(broker_ws=broker_ws, topic_root="test/agent/v1", heartbeat_s=15.0,
                        keepalive_s=20, username="phones", password=PHONE_PASSWORD,
                        vendor_dir=vendor)  # fmt: skip
    ctx = WebContext(
        core=WebCore(WebStore(":memory:"), Topics("test/agent/v1")),
        hub=Hub(), auth=Auth(TOKEN, {"cabin": CABIN_TOKEN}), metrics=WebMetrics(),
        categories=categories(load_policy()), publish_feedback=_nothing, agent=agent,
    )  # fmt: skip
    return TestClient(build_app(ctx), base_url="http://hub.local:8080")


@pytest.fixture
def vendor(tmp_path: Path) -> Path:
    """A stand-in for the built front end (services/web/frontend/dist)."""
    for name in REQUIRED_VENDOR_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"// {name}\n")
    return tmp_path


def test_config_needs_a_token_and_says_where_the_broker_is(vendor: Path) -> None:
    client = _client(vendor)
    assert client.get("/api/agent/config").status_code == 401
    doc = client.get("/api/agent/config", headers=AUTH).json()
    assert doc["broker_url"] == "ws://hub.local:9001/"  # the host the page was opened with
    assert (doc["topic_root"], doc["sites"], doc["heartbeat_s"]) == ("test/agent/v1", None, 15.0)
    assert (doc["username"], doc["password"]) == ("phones", PHONE_PASSWORD)
    assert doc["model"]["source"] == {"kind": "yamnet", "model": "yamnet",
                                      "version": YamnetModel().version}  # fmt: skip
    assert doc["pipeline"] == {"hop_s": 0.48, "gate_dbfs": -70.0, "top_k": 10,
                               "min_label_score": 0.05}  # fmt: skip
    assert doc["delivery"] == {"mode": "end-to-end", "ack_timeout_s": 30.0,
                               "ack_timeout_max_s": 600.0}  # fmt: skip
    cabin = client.get("/api/agent/config", headers={"Authorization": f"Bearer {CABIN_TOKEN}"})
    assert cabin.json()["sites"] == ["cabin"]


def test_page_is_the_display_with_the_agent_panel(vendor: Path) -> None:
    client = _client(vendor)
    denied = client.get("/agent")
    assert denied.status_code == 401
    assert 'action="/agent"' in denied.text  # the token form comes back here
    page = client.get(f"/agent?token={TOKEN}")
    assert page.status_code == 200
    html = page.text
    assert html.index('type="importmap"') < html.index('type="module"')
    assert "/static/agent/agent.js" in html
    assert '/static/app.js"' not in html
    for marker in ('id="agent"', 'id="alert"', 'id="history"', 'id="nodes"'):
        assert marker in html, marker
    assert client.cookies.get("soundalert_token") == TOKEN


def test_page_says_how_to_build_the_front_end_when_it_is_missing(tmp_path: Path) -> None:
    client = _client(tmp_path / "nothing")
    page = client.get(f"/agent?token={TOKEN}")
    assert page.status_code == 503
    assert "npm ci --prefix services/web/frontend" in page.text
    assert set(missing_vendor_files(tmp_path)) == set(REQUIRED_VENDOR_FILES)
    assert "build.mjs" in BUILD_HINT


def test_model_and_runtime_are_served_by_soundalert(vendor: Path) -> None:
    client = _client(vendor)
    model = client.get("/agent/model/yamnet.tflite")
    # The agent's own YAMNet, with its embedding as one more output (learned sounds): the
    # same scores as the file, and the embedding the Python agent reads.
    served = load_interpreter_class()(model_content=model.content, num_threads=1)
    served.allocate_tensors()
    window = (np.sin(np.arange(15600) * 0.2) * 0.3).astype(np.float32)
    served.set_tensor(served.get_input_details()[0]["index"], window[None, :])
    served.invoke()
    outputs = {o["name"]: served.get_tensor(o["index"]) for o in served.get_output_details()}
    python = YamnetModel()(window)
    assert np.allclose(outputs["Identity"].reshape(-1), python.scores, atol=1e-6)
    assert python.embedding is not None
    assert np.allclose(outputs[EMBEDDING_TENSOR].reshape(-1), python.embedding, atol=1e-6)
    assert model_version(DEFAULT_MODEL) == YamnetModel().version
    names = client.get("/agent/model/yamnet_class_map.csv")
    assert names.text.startswith("index,mid,display_name")
    assert client.get("/agent/model/..%2Fmodel.py").status_code == 404
    assert client.get("/agent/model/other.tflite").status_code == 404
    assert client.get("/static/vendor/mqtt/mqtt.esm.js").text == "// mqtt/mqtt.esm.js\n"
    assert client.get("/static/agent/core.js").status_code == 200
    assert client.get("/static/app.js").status_code == 200


def test_without_a_websocket_url_the_page_is_told_so(vendor: Path) -> None:
    doc = _client(vendor, broker_ws=None).get("/api/agent/config", headers=AUTH).json()
    assert doc["broker_url"] is None


def test_ipv6_page_hosts_are_bracketed() -> None:
    agent = AgentConfig(broker_ws="wss://{host}/mqtt", topic_root="r", heartbeat_s=15,
                        keepalive_s=20)  # fmt: skip
    assert agent.broker_url("fd00::1") == "wss://[fd00::1]/mqtt"
    assert agent.broker_url(None) == "wss://127.0.0.1/mqtt"


def test_settings_accept_only_websocket_urls() -> None:
    ok = WebSettings.model_validate({"agent_broker_ws": "wss://hub.example/mqtt"})
    assert ok.agent_broker_ws == "wss://hub.example/mqtt"
    assert WebSettings.model_validate({"agent_broker_ws": "ws://{host}:9001/"}).agent_broker_ws
    with pytest.raises(ValidationError, match="ws:// or wss://"):
        WebSettings.model_validate({"agent_broker_ws": "mqtt://hub:1883"})


def test_the_panel_goes_into_the_display_page() -> None:
    index = (PAGES_DIR / "index.html").read_text(encoding="utf-8")
    html = agent_page_html(index, "<section id=agent></section>")
    assert html.index('<main id="main">') < html.index("<section id=agent>")
    with pytest.raises(ValueError, match="agent panel"):
        agent_page_html(index.replace('<main id="main">', "<main>"), "")
