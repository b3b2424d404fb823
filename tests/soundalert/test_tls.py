"""TLS everywhere: every component reaches a real Mosquitto's TLS listeners with a CA the
fixture generates (``tls_mosquitto``), through the one broker URL option (``mqtts://...?ca=``,
``&cert=&key=`` for a client certificate). A client that does not trust the broker's CA, or
has no client certificate where one is required, fails with one clear line."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from edge.agent.demo import ensure_demo_recording
from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.notifier.config import NotifierSettings
from services.notifier.service import NotifierService
from services.web.service import WebService
from services.web.settings import WebSettings
from soundalert.mqtt import BrokerUrl
from soundalert.settings import ConfigError, load_settings
from tests.aggregator.conftest import listening
from tests.aggregator.conftest import running as running_aggregator
from tests.notifier.support import recording, running_notifier
from tests.serial_bridge.conftest import Board, bridge_settings, running_bridge, wait_until
from tests.support.mosquitto import Mosquitto, TlsFiles, free_port
from tests.support.policy import quick_policy_file
from tests.web.conftest import running as running_web
from tests.web.conftest import wait_connected

CLI = [sys.executable, "-c", "from soundalert.cli import main; main()"]
TOKEN = "tls-test-token-0123456789"  # noqa: S105 - a test display token


# -- the broker URL ------------------------------------------------------------------------------
def test_the_broker_url_carries_the_tls_options(tmp_path: Path) -> None:
    files = TlsFiles.generate(tmp_path)
    url = (f"mqtts://ana:pw@hub.local?ca={quote(str(files.ca_cert))}"
           f"&cert={files.client_cert}&key={files.client_key}&version=5")  # fmt: skip
    broker = BrokerUrl.parse(url)
    assert (broker.tls, broker.port, broker.ca_file) == (True, 8883, files.ca_cert)
    assert (broker.cert_file, broker.key_file) == (files.client_cert, files.client_key)
    assert broker.ssl_context.check_hostname
    assert str(broker) == "mqtts://ana@hub.local:8883"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("ca={missing}", "CA file {missing}: no such file"),
        ("ca={not_pem}", "CA file {not_pem}: not a usable PEM file"),
        ("ca={ca}&cert={ca}&key={key}", "client certificate {ca} / key {key}"),
        ("key={key}", "key= needs cert="),
        ("cafile={ca}", "unknown option(s) cafile"),
    ],
)
def test_a_wrong_tls_option_is_a_clear_configuration_error(
    tmp_path: Path, query: str, says: str
) -> None:
    files = TlsFiles.generate(tmp_path)
    (tmp_path / "not.pem").write_text("hello\n")
    paths = {"missing": tmp_path / "nope.crt", "not_pem": tmp_path / "not.pem",
             "ca": files.ca_cert, "key": files.client_key}  # fmt: skip
    url = "mqtts://hub.local?" + query.format(**paths)
    with pytest.raises(ValueError, match=r"broker URL hub\.local") as raised:
        BrokerUrl.parse(url)
    assert says.format(**paths) in str(raised.value)
    with pytest.raises(ConfigError, match="broker"):
        load_settings(AggregatorSettings, None, broker=url)


def test_tls_files_need_mqtts(tmp_path: Path) -> None:
    files = TlsFiles.generate(tmp_path)
    with pytest.raises(ValueError, match="ca need TLS: use mqtts://"):
        BrokerUrl.parse(f"mqtt://hub.local?ca={files.ca_cert}")


# -- every component over TLS --------------------------------------------------------------------
@pytest.mark.integration
async def test_every_service_over_tls_a_t3_from_an_agent_raises_an_alert(
    tls_mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    """The agent (with a client certificate, on the listener that requires one) replays a
    recorded T3 smoke alarm; the aggregator raises it; the display shows it and sends the
    acknowledgement; the notifier switches a lamp on. Every connection is TLS."""
    broker = tls_mosquitto
    topics = Topics(topic_root)
    run = uuid.uuid4().hex[:6]
    aggregator = AggregatorService(AggregatorSettings(
        broker=broker.url("service", tls=True), topic_root=topic_root,
        state_dir=tmp_path / "aggregator", policy_file=quick_policy_file(tmp_path / "policy"),
        tick_s=0.2, client_id=f"agg-{run}",
    ))  # fmt: skip
    web = WebService(WebSettings.model_validate({
        "broker": broker.url("service", tls=True), "topic_root": topic_root,
        "client_id": f"web-{run}", "state_dir": tmp_path / "web", "host": "127.0.0.1",
        "port": 0, "token": TOKEN,
    }))  # fmt: skip
    lamp = "z/lamp/set"
    notifier = NotifierService(NotifierSettings.model_validate({
        "broker": broker.url("service", tls=True), "topic_root": topic_root,
        "state_dir": tmp_path / "notifier", "client_id": f"notifier-{run}", "tick_s": 0.1,
        "sites": {"home": {
            "channels": {"lamp": {"type": "mqtt", "actions": [{"topic": lamp, "payload": "on"}]}},
            "routes": [{"channels": ["lamp"], "kinds": ["raise"]}]}},
    }))  # fmt: skip
    recording_file = ensure_demo_recording(tmp_path / "demo")
    async with (
        listening(broker.url("service", tls=True), topics) as alerts,
        recording(broker.url("service", tls=True), [lamp]) as actions,
        running_aggregator(aggregator),
        running_web(web),
        running_notifier(notifier),
    ):
        await wait_connected(web)
        agent = await asyncio.create_subprocess_exec(
            *CLI, "agent", "--broker", broker.url("kitchen", client_cert=True),
            "--topic-root", topic_root, "--site", "home", "--node", "kitchen",
            "--input", str(recording_file), "--speed", "0",
            "--outbox", str(tmp_path / "agent.sqlite3"), "--log-level", "warning",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, agent_err = await asyncio.wait_for(agent.communicate(), 120)
        assert agent.returncode == 0, agent_err.decode()
        smoke = await alerts.wait_for(lambda a: a.category == "smoke_alarm", within_s=30)
        assert smoke.location == "kitchen"
        await actions.wait_until(lambda: b"on" in actions.on(lamp), within=10)

        shown = await asyncio.to_thread(_api, web, f"/api/alerts?site={smoke.site}")
        assert smoke.alert_id in {row["alert"]["alert_id"] for row in shown["alerts"]}
        await asyncio.to_thread(_api, web, f"/api/alerts/{smoke.alert_id}/feedback",
                                {"verdict": "acknowledged", "by": "ana"})  # fmt: skip
        acked = await alerts.wait_for(
            lambda a: a.alert_id == smoke.alert_id and a.state == "acknowledged", within_s=10
        )
    assert acked.by == "ana"


def _api(web: WebService, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the test's own display
        f"{web.url.rstrip('/')}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local URL
        return json.loads(response.read() or b"null")


@pytest.mark.integration
async def test_the_serial_bridge_publishes_over_tls(
    tls_mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    board = Board(tmp_path / "ttyACM0")
    board.plug()
    settings = bridge_settings(tls_mosquitto, topic_root, tmp_path, board.path,
                               broker=tls_mosquitto.url("kitchen", tls=True),
                               delivery="broker")  # no aggregator acks here  # fmt: skip
    topics = Topics(topic_root)
    async with (
        listening(tls_mosquitto.url("service", tls=True), topics),
        running_bridge(settings) as bridge,
    ):
        await board.wait_for_reader()
        board.boot()
        board.detection()
        await wait_until(lambda: bridge.publisher is not None and bridge.publisher.published >= 1,
                         10, "the detection to be published over TLS")  # fmt: skip
        assert bridge.publisher is not None
        assert bridge.publisher.broker.tls
    board.unplug()


# -- a client that does not trust the broker -----------------------------------------------------
def _agent(broker: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    wav = ensure_demo_recording(tmp_path / "demo")
    return subprocess.run(
        [*CLI, "agent", "--broker", broker, "--input", str(wav), "--speed", "0",
         "--outbox", str(tmp_path / "o.sqlite3"), "--node", "kitchen", "--log-level", "error"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.integration
def test_an_agent_that_does_not_trust_the_broker_says_so_in_one_line(
    tls_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    other = TlsFiles.generate(tmp_path / "other", "another CA")
    url = f"mqtts://kitchen:kitchen-secret@127.0.0.1:{tls_mosquitto.tls_port}?ca={other.ca_cert}"
    result = _agent(url, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"presented a certificate that the CA in {other.ca_cert} did not sign" in line
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert "kitchen-secret" not in result.stderr


@pytest.mark.integration
def test_an_agent_without_the_required_client_certificate_says_so(
    tls_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    url = tls_mosquitto.url("kitchen", tls=True).replace(
        f":{tls_mosquitto.tls_port}?", f":{tls_mosquitto.mtls_port}?"
    )
    result = _agent(url, tmp_path)
    assert result.returncode == 2, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "requires a client certificate" in line
    assert "?cert=/path/client.crt&key=/path/client.key" in line


@pytest.mark.integration
async def test_a_service_that_does_not_trust_the_broker_keeps_saying_why(
    tls_mosquitto: Mosquitto, topic_root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A service never exits for it (the CA may be fixed under it); it says why at ERROR."""
    other = TlsFiles.generate(tmp_path / "other", "another CA")
    url = f"mqtts://service:service-secret@127.0.0.1:{tls_mosquitto.tls_port}?ca={other.ca_cert}"
    service = AggregatorService(AggregatorSettings(
        broker=url, topic_root=topic_root, state_dir=tmp_path / "state", tick_s=0.2,
        client_id=f"agg-{uuid.uuid4().hex[:6]}",
    ))  # fmt: skip
    caplog.set_level(logging.WARNING, logger="soundalert.mqtt")
    task = asyncio.create_task(service.run())
    try:
        deadline = time.monotonic() + 20
        while not any("did not sign" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, caplog.text
            assert not task.done(), "the aggregator exited"
            await asyncio.sleep(0.05)
        assert service.metrics.registry.get_sample_value("soundalert_mqtt_connected") == 0
    finally:
        service.stop()
        await asyncio.wait_for(task, 10)
    record = next(r for r in caplog.records if "did not sign" in r.getMessage())
    assert record.levelno == logging.ERROR
    assert str(other.ca_cert) in record.getMessage()


@pytest.mark.integration
async def test_up_with_a_tls_broker_runs_the_stack_and_its_demo_node_over_tls(
    tls_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """`soundalert up --broker mqtts://...?ca=...`: the aggregator, display, notifier and the
    demo node all reach the broker over TLS, and the demo's smoke alarm is raised."""
    url = tls_mosquitto.url("service", tls=True)
    process = await asyncio.create_subprocess_exec(
        *CLI, "up", "--broker", url, "--demo", "--state", str(tmp_path / "state"),
        "--metrics-port", str(free_port()), "--web-port", str(free_port()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any("RAISED" in line and "Smoke alarm" in line for line in lines):
                raw = await process.stdout.readline()
                assert raw, f"soundalert up exited early:\n{''.join(lines)}"
                lines.append(raw.decode())
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    text = "".join(lines)
    assert f"MQTT broker   : mqtts://service@127.0.0.1:{tls_mosquitto.tls_port}\n" in text
    assert "service-secret" not in text
    assert "retrying" not in text, text
