"""docker-compose.yml: accepted by docker-compose, and every service started natively with its
compose command and environment reports healthy through its compose healthcheck, against a
Mosquitto started from the compose's own mosquitto config with the logins and the TLS
certificate that ``soundalert node init`` / ``soundalert node add`` write. Every service talks
TLS to the broker; plain MQTT is only on its loopback. The broker's ACL keeps nodes in their
own topics and anonymous clients out.
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from edge.agent.demo import ensure_demo_recording
from soundalert.cli import app
from tests.deploy.compose import COMPOSE_FILE, NativeStack, load_compose
from tests.deploy.support import REPO, Process, child_env, require, wait_until

pytestmark = pytest.mark.integration

NODES = ("kitchen", "hall")
NATIVE = ("mosquitto", "aggregator", "notifier", "web", "demo", "prometheus")


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@dataclass
class Stack:
    native: NativeStack
    env: dict[str, str]
    node_passwords: dict[str, str]
    processes: dict[str, Process]
    ca: Path

    @property
    def mqtt_port(self) -> int:
        """The broker's TLS listener, which nodes and services use."""
        return self.native.port(8883)


def _healthy(stack: NativeStack, name: str, env: dict[str, str]) -> bool:
    result = subprocess.run(
        stack.healthcheck(name), env=env, capture_output=True, timeout=15, check=False
    )
    return result.returncode == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require("mosquitto")
    require("mosquitto_sub")
    workdir = tmp_path_factory.mktemp("compose")
    config_dir = workdir / "binds" / "deploy_mosquitto"
    shutil.copytree(REPO / "deploy" / "mosquitto", config_dir)
    tls_dir = workdir / "binds" / "deploy_tls"  # what compose mounts as ./deploy/tls
    _cli("node", "init", "--config-dir", str(config_dir), "--env-file", str(workdir / ".env"),
         "--ca-dir", str(workdir / "ca"), "--tls-dir", str(tls_dir))  # fmt: skip
    passwords = {}
    for node in NODES:
        passwords[node] = f"{node}-{uuid.uuid4().hex[:8]}"
        _cli(
            "node",
            "add",
            "--site",
            "home",
            "--node",
            node,
            "--password",
            passwords[node],
            "--config-dir",
            str(config_dir),
        )
    env = _env_file(workdir / ".env")
    native = NativeStack(load_compose(env), workdir)
    # Ports and paths of the compose's own mosquitto config, for this machine.
    conf = config_dir / "mosquitto.conf"
    text = native.rewrite(conf.read_text(), "mosquitto")
    text = re.sub(
        r"^listener (\d+)(?: \S+)?$",
        lambda m: f"listener {native.port(int(m.group(1)))} 127.0.0.1",
        text,
        flags=re.MULTILINE,
    )
    conf.write_text(
        text + "\n# test: keep the invoking user (root would switch to mosquitto)\n"
        f"user {getpass.getuser()}\n"
        "# test: stderr is unbuffered, so the log can be read while the broker runs\n"
        "log_dest stderr\n"
    )
    prometheus_yml = native.mounts["prometheus"]["/etc/prometheus"] / "prometheus.yml"
    prometheus_yml.write_text(native.rewrite(prometheus_yml.read_text()))
    ensure_demo_recording(Path(native.rewrite("/opt/soundalert/demo")))

    processes: dict[str, Process] = {}
    try:
        for name in NATIVE:
            if name == "prometheus" and shutil.which("prometheus") is None:
                continue
            env_vars = child_env(**native.environment(name))
            processes[name] = Process(
                name, native.argv(name), workdir / f"{name}.log", env=env_vars, cwd=workdir
            ).start()
            if name == "mosquitto":
                wait_until(
                    partial(_healthy, native, "mosquitto", env_vars),
                    20,
                    f"mosquitto healthy: {processes['mosquitto'].output()}",
                )
        yield Stack(native, env, passwords, processes, tls_dir / "ca.crt")
    finally:
        for process in reversed(processes.values()):
            process.stop()


# -- docker-compose config -----------------------------------------------------------------------
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    binary = require("docker-compose")
    _cli(
        "node",
        "init",
        "--config-dir",
        str(tmp_path / "mosquitto"),
        "--env-file",
        str(tmp_path / ".env"),
    )
    env = {**child_env(), **_env_file(tmp_path / ".env")}
    command = [binary, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE)]
    result = subprocess.run(
        [*command, "--profile", "demo", "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "soundalert health" not in result.stderr
    services = subprocess.run(
        [*command, "--profile", "demo", "config", "--services"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert set(services.split()) == {
        "mosquitto",
        "aggregator",
        "notifier",
        "web",
        "demo",
        "prometheus",
        "grafana",
    }
    volumes = subprocess.run(
        [*command, "config", "--volumes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert {"mosquitto-data", "aggregator-state", "notifier-state", "web-state"} <= set(volumes)
    # Without the secrets that `soundalert node init` writes, compose says what to do.
    bare = subprocess.run(
        [*command, "config"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bare.returncode != 0
    assert "soundalert node init" in bare.stderr


def test_images_run_as_non_root_with_healthchecks() -> None:
    raw = COMPOSE_FILE.read_text()
    services = load_compose(dict.fromkeys(re.findall(r"\$\{(\w+):\?", raw), "x" * 20))["services"]
    for name, service in services.items():
        assert "healthcheck" in service, name
        if service.get("image", "").startswith("soundalert") or name == "mosquitto":
            assert service.get("user") not in (None, "0", "root"), name
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^USER soundalert", dockerfile, flags=re.MULTILINE)


# -- every service, natively ---------------------------------------------------------------------
@pytest.mark.parametrize("name", [*NATIVE, "grafana"])
def test_service_starts_natively_and_reports_healthy(stack: Stack, name: str) -> None:
    if name == "grafana" and shutil.which("grafana-server") is None:
        pytest.skip(
            "grafana is not packaged in Debian; its provisioning is checked by "
            "test_grafana_provisioning and its queries by test_prometheus"
        )
    if name == "prometheus" and "prometheus" not in stack.processes:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    process = stack.processes[name]
    env = child_env(**stack.native.environment(name))
    wait_until(
        lambda: _healthy(stack.native, name, env) or not process.alive(), 40, f"{name} healthy"
    )
    assert process.alive(), process.output()
    assert _healthy(stack.native, name, env), process.output()


def test_demo_node_raises_a_smoke_alarm_on_the_web_display(stack: Stack) -> None:
    """The whole stack under the compose ACL: the demo node's events reach the aggregator,
    its alert reaches the display (and nothing was refused on the way)."""
    web = f"http://127.0.0.1:{stack.native.port(8080)}/api/alerts?site=home"
    request = urllib.request.Request(
        web, headers={"Authorization": f"Bearer {stack.env['WEB_TOKEN']}"}
    )

    def smoke() -> list[Any]:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local URL
            body = json.loads(response.read())
        return [r["alert"] for r in body["alerts"] if r["alert"]["category"] == "smoke_alarm"]

    [alert, *_] = wait_until(smoke, 45, "a smoke alarm from the demo node on the display")
    assert alert["location"] == "demo"
    for name in ("aggregator", "notifier", "web"):
        assert "not authorised" not in stack.processes[name].output(20000).lower()


# -- the broker's ACL ----------------------------------------------------------------------------
@dataclass
class _Client:
    client: paho.Client
    connack: list[ReasonCode]
    pubacks: dict[int, ReasonCode]
    subacks: list[list[ReasonCode]]
    received: list[str]
    lock: threading.Event


def _connect(
    port: int,
    user: str | None,
    password: str | None,
    *,
    ca: Path | None,
    transport: Literal["tcp", "websockets"] = "tcp",
) -> _Client:
    """A paho client (MQTT 5), over TLS trusting ``ca`` unless it is None."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"t-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
        transport=transport,
    )
    state = _Client(client, [], {}, [], [], threading.Event())
    if ca is not None:
        client.tls_set(ca_certs=str(ca))
    if user is not None:
        client.username_pw_set(user, password)

    def on_connect(_c: paho.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        state.connack.append(rc)
        state.lock.set()

    def on_publish(_c: paho.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        state.pubacks[mid] = rc

    def on_subscribe(
        _c: paho.Client, _u: object, _m: int, rcs: list[ReasonCode], _p: object
    ) -> None:
        state.subacks.append(list(rcs))

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        state.received.append(msg.topic)

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    state.lock.wait(5)
    return state


def _stop(*clients: _Client) -> None:
    for c in clients:
        c.client.disconnect()
        c.client.loop_stop()


def test_a_node_cannot_publish_under_another_node(stack: Stack) -> None:
    port = stack.mqtt_port
    watcher = _connect(port, "aggregator", stack.env["AGGREGATOR_MQTT_PASSWORD"], ca=stack.ca)
    kitchen = _connect(port, "home.kitchen", stack.node_passwords["kitchen"], ca=stack.ca)
    try:
        assert watcher.connack == [ReasonCode(PacketTypes.CONNACK, "Success")]
        watcher.client.subscribe([(f"soundalert/v1/home/{n}/events", 1) for n in NODES])
        wait_until(lambda: watcher.subacks, 5, "SUBACK")
        assert not any(rc.is_failure for rc in watcher.subacks[0])

        foreign = kitchen.client.publish("soundalert/v1/home/hall/events", b"{}", qos=1)
        own = kitchen.client.publish("soundalert/v1/home/kitchen/events", b"{}", qos=1)
        wait_until(lambda: len(kitchen.pubacks) == 2, 5, "two PUBACKs")
        assert kitchen.pubacks[foreign.mid].value == 0x87, kitchen.pubacks  # Not authorized
        assert not kitchen.pubacks[own.mid].is_failure
        wait_until(lambda: watcher.received, 5, "the node's own event at the subscriber")
        time.sleep(0.5)
        assert watcher.received == ["soundalert/v1/home/kitchen/events"]

        # ... and reads nothing but the aggregator's acknowledgements of its own events, not
        # even its own other topics. (Mosquitto 2.0 grants the subscription and applies the
        # read ACL on delivery.)
        kitchen.client.subscribe([("soundalert/v1/#", 1), ("$SYS/#", 0)])
        wait_until(lambda: kitchen.subacks, 5, "SUBACK")
        watcher.client.publish("soundalert/v1/home/alerts", b"{}", qos=1)  # aggregator may
        watcher.client.publish("soundalert/v1/home/hall/ack", b"{}", qos=1)  # ... and acks
        watcher.client.publish("soundalert/v1/home/kitchen/ack", b"{}", qos=1)
        kitchen.client.publish("soundalert/v1/home/kitchen/status", b"{}", qos=1)
        wait_until(lambda: len(kitchen.pubacks) == 3 and len(watcher.pubacks) == 3, 5, "PUBACKs")
        assert not any(rc.is_failure for rc in watcher.pubacks.values()), watcher.pubacks
        wait_until(lambda: kitchen.received, 5, "the node's own ack")
        time.sleep(1.0)
        assert kitchen.received == ["soundalert/v1/home/kitchen/ack"]
    finally:
        _stop(watcher, kitchen)


def test_anonymous_and_wrong_password_clients_are_refused(stack: Stack) -> None:
    anonymous = _connect(stack.mqtt_port, None, None, ca=stack.ca)
    wrong = _connect(stack.mqtt_port, "home.kitchen", "not-the-password", ca=stack.ca)
    try:
        assert [rc.value for rc in anonymous.connack] == [0x87]  # Not authorized
        assert [rc.value for rc in wrong.connack] in ([0x86], [0x87])  # Bad user name or password
        assert not anonymous.client.is_connected()
    finally:
        _stop(anonymous, wrong)


# -- TLS -----------------------------------------------------------------------------------------
SERVICE_LOGINS = {"aggregator": "aggregator", "notifier": "notifier", "web": "web",
                  "demo": "home.demo"}  # fmt: skip


def test_every_soundalert_service_is_configured_for_tls_and_plain_mqtt_is_loopback() -> None:
    raw = COMPOSE_FILE.read_text()
    services = load_compose(dict.fromkeys(re.findall(r"\$\{(\w+):\?", raw), "x" * 20))["services"]
    for name in SERVICE_LOGINS:
        url = services[name]["environment"]["SOUNDALERT_BROKER"]
        assert url.startswith("mqtts://"), (name, url)
        assert url.endswith("@mosquitto:8883?ca=/etc/ssl/soundalert/ca.crt"), (name, url)
        assert "./deploy/tls:/etc/ssl/soundalert:ro" in services[name]["volumes"], name
    published = [p.split(":")[-1] for p in services["mosquitto"]["ports"]]
    assert published == ["8883", "9001"], "plain MQTT (1883) is never published"
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    listeners = re.findall(r"^listener (\d+)(.*)$", conf, flags=re.MULTILINE)
    assert ("1883", " 127.0.0.1") in listeners
    for port in ("8883", "9001"):
        block = conf.split(f"listener {port}", 1)[1].split("\nlistener ", 1)[0]
        assert "certfile /mosquitto/config/tls/broker.crt" in block, port
        assert "keyfile /mosquitto/config/tls/broker.key" in block, port


def test_the_compose_services_talk_tls_to_mosquitto(stack: Stack) -> None:
    """Each service's compose command, run natively, connects on the broker's TLS listener:
    the broker's own log says which listener each login came in on."""
    for name in SERVICE_LOGINS:
        env = child_env(**stack.native.environment(name))
        wait_until(partial(_healthy, stack.native, name, env), 40, f"{name} healthy")
    log = stack.processes["mosquitto"].output(1_000_000)
    ports = dict(re.findall(r"New connection from (\S+) on port (\d+)\.", log))
    logins: dict[str, set[int]] = {}
    for peer, user in re.findall(r"New client connected from (\S+) as .*?u'([^']+)'\)", log):
        logins.setdefault(user, set()).add(int(ports[peer]))
    tls_port = stack.native.port(8883)
    for name, login in SERVICE_LOGINS.items():
        assert logins.get(login) == {tls_port}, (name, logins, log[-3000:])
    # The TLS listener takes no plain MQTT, and trusts no client that does not trust its CA.
    plain = _connect(tls_port, "aggregator", stack.env["AGGREGATOR_MQTT_PASSWORD"], ca=None)
    try:
        assert plain.connack == []
        assert not plain.client.is_connected()
    finally:
        _stop(plain)


def test_browser_agents_reach_the_broker_over_secure_websockets(stack: Stack) -> None:
    wss = _connect(stack.native.port(9001), "home.kitchen", stack.node_passwords["kitchen"],
                   ca=stack.ca, transport="websockets")  # fmt: skip
    try:
        assert [rc.value for rc in wss.connack] == [0]
    finally:
        _stop(wss)


def test_grafana_provisioning() -> None:
    """The datasource points at the compose Prometheus; the dashboard is valid JSON whose
    panels cover alerts by category, latency quantiles, false alarms and node health."""
    import yaml  # noqa: PLC0415 - only here

    grafana = REPO / "deploy" / "grafana"
    datasource = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text())
    [ds] = datasource["datasources"]
    assert (ds["type"], ds["url"]) == ("prometheus", "http://prometheus:9090")
    provider = yaml.safe_load((grafana / "provisioning/dashboards/soundalert.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads((grafana / "dashboards/soundalert.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for needle in (
        "soundalert_alerts_total",
        "category:soundalert_alert_false_alarm:ratio_rate1d",
        "soundalert_node_false_alarm_ratio",
        "job:soundalert_processing_seconds:quantile_rate5m",
        "category:soundalert_detection_latency_seconds:quantile_rate1h",
        "channel:soundalert_notification_seconds:quantile_rate1h",
        "soundalert_node_up",
    ):
        assert needle in exprs, needle
    compose = COMPOSE_FILE.read_text()
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in compose
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards" in compose
