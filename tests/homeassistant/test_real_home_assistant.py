"""Issue 14, acceptance 4: soundalert against a real Home Assistant core (2024.1, its MQTT
integration set up through its REST config flow), a real Mosquitto and ``soundalert up``.

Every category entity is ``off`` (not ``unknown``) after discovery; a smoke alarm turns its
entity ``on``; pressing the acknowledge button in Home Assistant acknowledges the alert in
soundalert (``acknowledged`` on the alerts topic, by "Home Assistant") and the entity goes
``off``; entity names are not doubled; a node that only sends events gets an entity.

Home Assistant lives in its own virtual environment outside the repository:
``tests/homeassistant/install_home_assistant.sh`` makes it (``$SOUNDALERT_HA_VENV``, default
``~/.cache/soundalert/ha-venv``); without it this test skips and says how to install it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.messages import Alert, NodeStatus
from schemas.topics import Topics
from services.aggregator.policy import load_policy
from services.homeassistant.state import ACK_BY
from soundalert.mqtt import BrokerUrl
from tests.notifier.support import event, publish, recording
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

HA_VENV = Path(
    os.environ.get("SOUNDALERT_HA_VENV", Path.home() / ".cache" / "soundalert" / "ha-venv")
)
HASS = HA_VENV / "bin" / "hass"
USER, PASSWORD = "tester", "tester-password-0123"  # a throw-away login of a throw-away HA
ROOT = "soundalert/v1"  # what `soundalert up` uses

skip_without_ha = pytest.mark.skipif(
    not HASS.exists(),
    reason=f"Home Assistant is not installed in {HA_VENV}: run "
    "tests/homeassistant/install_home_assistant.sh (or set SOUNDALERT_HA_VENV)",
)


class HomeAssistant:
    """``hass`` on a free port with a fresh config directory, driven over its REST API."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = ""
        config.mkdir(parents=True)
        (config / "configuration.yaml").write_text(
            "homeassistant:\n  name: soundalert-test\n  latitude: 0\n  longitude: 0\n"
            "  elevation: 0\n  unit_system: metric\n  time_zone: UTC\n  country: GB\n"
            "  auth_providers:\n    - type: homeassistant\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "api:\nconfig:\nauth:\nlogger:\n  default: warning\n"
        )
        subprocess.run([str(HASS), "--script", "auth", "-c", str(config), "add", USER, PASSWORD],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        self.log = (config / "hass.log").open("wb")
        self.process = subprocess.Popen([str(HASS), "-c", str(config)], stdout=self.log,
                                        stderr=subprocess.STDOUT)  # fmt: skip

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                form: bool = False) -> Any:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
            headers["Content-Type"] = ("application/x-www-form-urlencoded" if form
                                       else "application/json")  # fmt: skip
        request = urllib.request.Request(self.base + path, data, headers, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return json.loads(response.read() or b"null")

    def wait_up(self, within: float = 240) -> None:
        deadline = time.monotonic() + within
        while True:
            assert self.process.poll() is None, self.tail()
            try:
                self.request("GET", "/api/")
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # up, and asking for a login
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"Home Assistant did not start: {self.tail()}"
            time.sleep(0.5)

    def log_in(self) -> None:
        """The login flow a browser runs: user and password -> code -> access token."""
        client = self.base + "/"
        start = {"client_id": client, "handler": ["homeassistant", None], "redirect_uri": client}
        flow = self.request("POST", "/auth/login_flow", start)
        done = self.request("POST", f"/auth/login_flow/{flow['flow_id']}", {
            "client_id": client, "username": USER, "password": PASSWORD})  # fmt: skip
        assert done["type"] == "create_entry", done
        token = self.request("POST", "/auth/token", {
            "grant_type": "authorization_code", "code": done["result"], "client_id": client,
        }, form=True)  # fmt: skip
        self.token = token["access_token"]

    def add_mqtt(self, broker: BrokerUrl) -> None:
        """The MQTT integration through its config flow, as the UI does it."""
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        assert flow["step_id"] == "broker", flow
        done = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {
            "broker": broker.host, "port": broker.port, "username": broker.username,
            "password": broker.password})  # fmt: skip
        assert done["type"] == "create_entry", done

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def tail(self) -> str:
        self.log.flush()
        return (self.config / "hass.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def home_assistant(tmp_path: Path) -> Iterator[HomeAssistant]:
    ha = HomeAssistant(tmp_path / "ha")
    try:
        ha.wait_up()
        ha.log_in()
        yield ha
    finally:
        ha.stop()


async def _until(check: Any, what: str, ha: HomeAssistant, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {within:.0f} s; Home Assistant log: {ha.tail()}")
        await asyncio.sleep(0.5)


@skip_without_ha
@pytest.mark.timeout(300)
async def test_home_assistant_shows_defined_states_and_acknowledges(
    mosquitto: Mosquitto, home_assistant: HomeAssistant, tmp_path: Path
) -> None:
    ha = home_assistant
    url = mosquitto.url("service")
    topics = Topics(ROOT)
    stack = Stack(mosquitto, tmp_path)
    try:
        ha.add_mqtt(BrokerUrl.parse(url))
        async with recording(url, [topics.all_alerts]) as alerts:
            hall = NodeStatus(site="home", node="hall", state="online", at=datetime.now(UTC),
                              heartbeat_s=60)  # fmt: skip
            await publish(url, [(topics.status("home", "hall"), hall.to_json())], retain=True)
            categories = [n for n, c in load_policy().categories.items() if c.enabled]
            expected = len(categories) + 2  # and node_offline, storage_trouble

            def site_sensors() -> dict[str, dict[str, Any]] | None:
                found = {e: s for e, s in ha.states().items() if e.startswith("binary_sensor.")
                         and s["attributes"].get("friendly_name", "").startswith(
                             "soundalert home ")}  # fmt: skip
                ready = len(found) == expected and all(
                    s["state"] != "unavailable" for s in found.values()
                )
                return found if ready else None

            sensors = await _until(site_sensors, f"{expected} category entities", ha)
            # Defined from the start: off, never unknown.
            assert {e: s["state"] for e, s in sensors.items() if s["state"] != "off"} == {}
            smoke = next(
                e
                for e, s in sensors.items()
                if s["attributes"]["friendly_name"] == "soundalert home Smoke alarm"
            )
            assert sensors[smoke]["attributes"]["device_class"] == "smoke"
            states = ha.states()
            names = [s["attributes"].get("friendly_name", "") for s in states.values()]
            assert "Hall sensor Listening" in names, names
            for name in names:
                words = name.lower().split()
                assert all(a != b for a, b in itertools.pairwise(words)), name

            # A T3 smoke alarm in the kitchen, from a node that sends only events.
            await publish(url, [event(topics, "home", "kitchen", 0, kind="pattern",
                                      label="t3")])  # fmt: skip
            await _until(lambda: ha.states()[smoke]["state"] == "on", "smoke alarm on", ha)
            on = ha.states()[smoke]["attributes"]
            assert (on["alert_state"], on["location"]) == ("raised", "kitchen"), on
            assert "Kitchen sensor Listening" in [
                s["attributes"].get("friendly_name") for s in ha.states().values()
            ]

            button = await _until(lambda: next(
                (e for e, s in ha.states().items() if e.startswith("button.")
                 and s["attributes"].get("friendly_name") == "soundalert home Acknowledge alerts"),
                None), "the acknowledge button", ha)  # fmt: skip
            await asyncio.to_thread(ha.request, "POST", "/api/services/button/press",
                                    {"entity_id": button})  # fmt: skip

            def acknowledged() -> list[Alert]:
                got = [Alert.model_validate_json(p) for t, p, _ in alerts.messages]
                return [a for a in got if a.category == "smoke_alarm"
                        and a.state == "acknowledged"]  # fmt: skip

            await alerts.wait_until(lambda: bool(acknowledged()), within=30)
            assert acknowledged()[0].by == ACK_BY
            await _until(lambda: ha.states()[smoke]["state"] == "off", "smoke alarm off", ha)
            off = ha.states()[smoke]["attributes"]
            assert (off["alert_state"], off["acknowledged_by"]) == ("acknowledged", ACK_BY), off
        log = ha.tail()
        assert "[homeassistant.components.mqtt" not in log, log  # no MQTT errors or warnings
    finally:
        stack.stop()
