"""The recording rules on a real Prometheus, scraping a real aggregator and notifier.

Debian's ``prometheus`` runs on a free port with 1 s scrape and evaluation intervals and the
shipped rule files, their windows shortened to 2 minutes (every expression otherwise as
shipped: the test checks that nothing but the windows changed). The test drives alerts and
feedback through Mosquitto, with detection latencies it chooses (event-time windows) and
notification latencies it chooses (a webhook receiver that answers late), and asserts the
false-alarm ratios and latency quantiles that Prometheus records.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from schemas.messages import Alert, ClassificationEvent, Feedback, NodeStatus
from schemas.topics import Topics
from services.aggregator.metrics import DETECTION_BUCKETS, NODE_REVIEWS_MIN
from soundalert.mqtt import BrokerUrl, make_client
from tests.deploy.support import (
    PROMETHEUS,
    REPO,
    SOUNDALERT,
    Process,
    Prometheus,
    bucket_counts,
    child_env,
    histogram_quantile,
    observe,
    running,
    scrape,
    wait_until,
)
from tests.support.mosquitto import Mosquitto, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMETHEUS is None, reason="prometheus is not installed (apt-get install prometheus)"
    ),
]

RULES = REPO / "deploy" / "prometheus" / "rules"
TEST_WINDOW = "2m"
SITE = "home"
QUANTILES = ("0.5", "0.95", "0.99")

POLICY = {
    "reorder_bound_s": 0,
    "default_heartbeat_s": 600,
    "categories": {
        name: {
            "title": name.title(),
            "priority": priority,
            "labels": {"test": {name: {"threshold": 0.5}}},
            "confirm": {"windows": 1, "within_s": 1},
            "hold_s": 0.2,
            "cooldown_s": 0,
        }
        for name, priority in (("doorbell", "high"), ("knock", "normal"))
    },
}


@dataclass(frozen=True)
class Step:
    node: str
    category: str
    detection_s: float  # event time from the window's start to its end: the detection latency
    notify_s: float  # how long the webhook receiver takes to answer
    verdict: str | None


# doorbell: kitchen 1 false of 1, hall 1 false of 5 -> 2/6 (the average of the per-node
# ratios would be 0.6); knock: kitchen 1 false of 2 -> 0.5. Per node: kitchen 2 of 3, hall
# 1 of 5. The first step is a warm-up: its notification creates the channel's histogram
# series, which rate() cannot see the first observation of; it gets no feedback.
STEPS = [
    Step("bedroom", "knock", 0.8, 0.15, None),
    Step("kitchen", "doorbell", 0.7, 0.35, "false_alarm"),
    Step("hall", "doorbell", 1.2, 0.15, "acknowledged"),
    Step("hall", "doorbell", 1.2, 0.7, "acknowledged"),
    Step("hall", "doorbell", 2.5, 0.35, "false_alarm"),
    Step("kitchen", "knock", 0.4, 0.2, "acknowledged"),
    Step("hall", "doorbell", 3.5, 1.4, "acknowledged"),
    Step("kitchen", "knock", 1.8, 0.35, "false_alarm"),
    Step("hall", "doorbell", 6.0, 0.7, "acknowledged"),
]
NOTIFICATION_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    900.0,
)


def _expected_ratio(steps: list[Step], key: str) -> dict[str, float]:
    reviewed: dict[str, list[bool]] = {}
    for step in steps:
        if step.verdict is not None:
            reviewed.setdefault(getattr(step, key), []).append(step.verdict == "false_alarm")
    return {k: sum(v) / len(v) for k, v in reviewed.items()}


def test_rules_files_shortened_only_in_their_windows() -> None:
    for path in RULES.glob("*.yml"):
        original = path.read_text()
        short = _shorten(original)
        assert re.sub(r"\[\w+\]", "[W]", original) == re.sub(r"\[\w+\]", "[W]", short)
        assert short != original or "[" not in original


def _shorten(rules: str) -> str:
    return re.sub(r"\[(1h|1d|7d|5m|10m|15m)\]", f"[{TEST_WINDOW}]", rules)


# -- a webhook receiver that answers as late as the test says -----------------------------------
class _Receiver(BaseHTTPRequestHandler):
    delays: ClassVar[list[float]] = []
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        index = len(self.received)
        time.sleep(self.delays[index] if index < len(self.delays) else 0.0)
        self.send_response(200)
        self.end_headers()
        self.received.append(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type(
        "Receiver", (_Receiver,), {"delays": [s.notify_s for s in STEPS], "received": []}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


# -- driving the stack ---------------------------------------------------------------------------
@dataclass
class Driver:
    topics: Topics
    alerts: list[Alert] = field(default_factory=list)
    seq: int = 0

    def event(self, step: Step) -> ClassificationEvent:
        self.seq += 1
        end = datetime.now(UTC)
        return ClassificationEvent.model_validate(
            {
                "event_id": f"ev-{uuid.uuid4().hex[:16]}",
                "site": SITE,
                "node": step.node,
                "seq": self.seq,
                "window_start": end - timedelta(seconds=step.detection_s),
                "window_end": end,
                "source": {"kind": "test", "model": "test", "version": "1"},
                "labels": [{"label": step.category, "score": 0.9}],
            }
        )

    async def wait_for(self, within_s: float, **match: str) -> Alert:
        async with asyncio.timeout(within_s):
            while True:
                for alert in self.alerts:
                    if all(getattr(alert, k) == v for k, v in match.items()):
                        return alert
                await asyncio.sleep(0.02)


async def _drive(mosquitto: Mosquitto, topics: Topics, webhook: type[_Receiver]) -> None:
    driver = Driver(topics)
    nodes = {
        n: make_client(BrokerUrl.parse(mosquitto.url(n)), f"node-{n}-{uuid.uuid4().hex[:6]}")
        for n in ("kitchen", "hall", "bedroom")
    }
    service = make_client(BrokerUrl.parse(mosquitto.url("service")), f"drv-{uuid.uuid4().hex[:6]}")
    async with service, nodes["kitchen"], nodes["hall"], nodes["bedroom"]:
        await service.subscribe(topics.all_alerts, qos=1)

        async def pump() -> None:
            async for message in service.messages:
                driver.alerts.append(Alert.model_validate_json(message.payload))

        pumping = asyncio.create_task(pump())
        for name, client in nodes.items():  # nodes announce themselves when they start
            status = NodeStatus(
                site=SITE, node=name, state="online", at=datetime.now(UTC), heartbeat_s=600
            )
            await client.publish(topics.status(SITE, name), status.to_json(), qos=1, retain=True)
        await asyncio.sleep(2.5)  # and Prometheus scrapes their series (at zero) first
        try:
            for i, step in enumerate(STEPS):
                await nodes[step.node].publish(
                    topics.events(SITE, step.node), driver.event(step).to_json(), qos=1
                )
                raised = await driver.wait_for(
                    10, category=step.category, state="raised", location=step.node
                )
                driver.alerts.remove(raised)
                if step.verdict is not None:
                    feedback = Feedback(
                        alert_id=raised.alert_id,
                        verdict=step.verdict,
                        by="test",
                        at=datetime.now(UTC),
                    )
                    await service.publish(topics.feedback(SITE), feedback.to_json(), qos=1)
                end = "false_alarm" if step.verdict == "false_alarm" else "resolved"
                await driver.wait_for(10, alert_id=raised.alert_id, state=end)
                # One notification at a time, so that each one's latency is known.
                async with asyncio.timeout(10):
                    while len(webhook.received) <= i:  # noqa: ASYNC110 - a thread appends
                        await asyncio.sleep(0.02)
                if i == 0:
                    await asyncio.sleep(2.5)  # Prometheus scrapes the warm-up's series first
        finally:
            pumping.cancel()


def _prometheus_config(aggregator_port: int, notifier_port: int) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["recording.yml", "alerts.yml"],
            "scrape_configs": [
                {
                    "job_name": "aggregator",
                    "static_configs": [{"targets": [f"127.0.0.1:{aggregator_port}"]}],
                },
                {
                    "job_name": "notifier",
                    "static_configs": [{"targets": [f"127.0.0.1:{notifier_port}"]}],
                },
            ],
        }
    )


def test_recording_rules_on_a_real_prometheus(
    mosquitto: Mosquitto,
    topic_root: str,
    tmp_path: Path,
    receiver: tuple[str, type[_Receiver]],
) -> None:
    assert PROMETHEUS is not None
    hook_url, webhook = receiver
    topics = Topics(topic_root)
    agg_port, notifier_port = free_port(), free_port()
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    env = child_env(
        SOUNDALERT_TOPIC_ROOT=topic_root,
        SOUNDALERT_TICK_S="0.2",
        SOUNDALERT_STATUS_HEARTBEAT_S="3600",
        SOUNDALERT_REVIEW_S="0.5",
    )
    aggregator = Process(
        "aggregator",
        [
            SOUNDALERT,
            "aggregator",
            "--broker",
            mosquitto.url("service"),
            "--policy",
            str(policy),
            "--state",
            str(tmp_path / "agg"),
            "--metrics-port",
            str(agg_port),
        ],
        tmp_path / "aggregator.log",
        env={**env, "SOUNDALERT_CLIENT_ID": f"agg-{uuid.uuid4().hex[:6]}"},
    )
    notifier_config = tmp_path / "notifier.yaml"
    notifier_config.write_text(
        yaml.safe_dump(
            {
                "homeassistant": {"enabled": False},
                "policy_file": str(policy),
                "sites": {
                    SITE: {
                        "channels": {"hook": {"type": "webhook", "url": hook_url}},
                        "routes": [{"channels": ["hook"], "categories": ["doorbell", "knock"]}],
                    }
                },
            }
        )
    )
    notifier = Process(
        "notifier",
        [
            SOUNDALERT,
            "notifier",
            "--broker",
            mosquitto.url("service"),
            "--config",
            str(notifier_config),
            "--state",
            str(tmp_path / "notifier"),
            "--metrics-port",
            str(notifier_port),
        ],
        tmp_path / "notifier.log",
        env={**env, "SOUNDALERT_CLIENT_ID": f"ntf-{uuid.uuid4().hex[:6]}"},
    )
    prometheus = Prometheus(
        tmp_path / "prometheus",
        free_port(),
        _prometheus_config(agg_port, notifier_port),
        {p.name: _shorten(p.read_text()) for p in RULES.glob("*.yml")},
    )
    agg_metrics = f"http://127.0.0.1:{agg_port}/metrics"
    notifier_metrics = f"http://127.0.0.1:{notifier_port}/metrics"
    with running(aggregator, notifier, prometheus):
        aggregator.start()
        notifier.start()
        for url in (agg_metrics, notifier_metrics):
            wait_until(partial(_connected, url), 20, f"{url} did not report connected")
        prometheus.start(PROMETHEUS)
        wait_until(
            lambda: len(prometheus.values("up == 1", "job")) == 2,
            20,
            "prometheus did not scrape both services",
        )
        baseline = scrape(agg_metrics)
        time.sleep(1.5)

        asyncio.run(_drive(mosquitto, topics, webhook))

        final = scrape(agg_metrics)
        notifier_final = scrape(notifier_metrics)
        feedback = sum(
            v for (name, _), v in final.items() if name == "soundalert_alert_feedback_total"
        )
        assert feedback == sum(1 for s in STEPS if s.verdict is not None)
        _assert_recorded(prometheus, STEPS, baseline, final, notifier_final)
        _check_dashboard_queries(prometheus)
        if os.environ.get("SOUNDALERT_SCREENSHOTS"):
            _screenshot(prometheus, Path(os.environ["SOUNDALERT_SCREENSHOTS"]), tmp_path)


def _connected(metrics_url: str) -> bool:
    return scrape(metrics_url)[("soundalert_mqtt_connected", ())] == 1


def _close(got: float, want: float, rel: float) -> bool:
    return math.isclose(got, want, rel_tol=rel, abs_tol=1e-9)


def _settled(
    prometheus: Prometheus,
    record: str,
    by: tuple[str, ...],
    want: Mapping[Any, float],
    rel: float,
) -> dict[tuple[str, ...], float]:
    """Wait until the recorded series carry the expected values (the last scrapes and rule
    evaluations lag the drive by a second or two), then return them."""

    def check() -> dict[tuple[str, ...], float] | None:
        got = prometheus.values(record, *by)
        ok = all(k in got and _close(got[k], v, rel) for k, v in want.items())
        return got if ok else None

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = check()
        if got is not None:
            return got
        time.sleep(0.5)
    pytest.fail(f"{record}: want {want}, Prometheus recorded {prometheus.values(record, *by)}")


def _assert_recorded(
    prometheus: Prometheus,
    steps: list[Step],
    baseline: dict[Any, float],
    final: dict[Any, float],
    notifier_final: dict[Any, float],
) -> None:
    measured = steps[1:]
    report: dict[str, Any] = {}
    # False-alarm ratios. Series born at different times extrapolate by up to a scrape
    # interval over their lifetime (about 1 s in 30): 3 % covers it; the wrong answers the
    # test guards against (averaged ratios, ratios of counts of alerts) are 30 % off or more.
    by_category = {(k,): v for k, v in _expected_ratio(measured, "category").items()}
    for window in ("1h", "1d", "7d"):
        report[f"category_{window}"] = _settled(
            prometheus,
            f"category:soundalert_alert_false_alarm:ratio_rate{window}",
            ("category",),
            by_category,
            0.03,
        )
    # Per node, the aggregator itself exports the day's ratio of a node with 5 reviews or more
    # (hall: 1 false of 5); kitchen (3 reviews) has no series at all.
    reviews = Counter(s.node for s in measured if s.verdict is not None)
    noisy = {(SITE, k): v for k, v in _expected_ratio(measured, "node").items()
             if reviews[k] >= NODE_REVIEWS_MIN}  # fmt: skip
    assert noisy, "the drive gives at least one node 5 reviews"
    report["node_1d"] = _settled(
        prometheus, "soundalert_node_false_alarm_ratio", ("site", "node"), noisy, 1e-9
    )
    assert set(report["node_1d"]) == set(noisy), report["node_1d"]

    # Detection latency: the aggregator creates each category's series at zero, so rate()
    # sees every observation and every bucket extrapolates alike: exact up to rounding.
    detection: dict[tuple[str, ...], float] = {}
    for category in ("doorbell", "knock"):
        observed = [s.detection_s for s in steps if s.category == category]
        buckets = observe(DETECTION_BUCKETS, observed)
        for q in QUANTILES:
            detection[(category, q)] = histogram_quantile(float(q), buckets)
    report["detection"] = _settled(
        prometheus,
        "category:soundalert_detection_latency_seconds:quantile_rate1h",
        ("category", "quantile"),
        detection,
        1e-6,
    )

    # Notification latency: the notifier's own histogram (the receiver's delays plus the
    # notifier's overhead, which on a loaded machine can cross a bucket edge), less the warm-up
    # that created the series: rate() counts the others exactly.
    own = bucket_counts(notifier_final, "soundalert_notification_seconds")
    warm_up = observe(NOTIFICATION_BUCKETS, [steps[0].notify_s])
    buckets = {le: n - warm_up[le] for le, n in own.items()}
    channel = f"{SITE}/hook"
    notification = {(channel, q): histogram_quantile(float(q), buckets) for q in QUANTILES}
    report["notification"] = _settled(
        prometheus,
        "channel:soundalert_notification_seconds:quantile_rate1h",
        ("channel", "quantile"),
        notification,
        1e-6,
    )
    assert bucket_counts(notifier_final, "soundalert_notification_seconds")[math.inf] == len(steps)

    # Processing time: whatever the aggregator measured during the drive, from its own
    # /metrics; the buckets that already held a status message extrapolate slightly apart.
    before = bucket_counts(baseline, "soundalert_processing_seconds")
    after = bucket_counts(final, "soundalert_processing_seconds")
    increase = {le: after[le] - before.get(le, 0.0) for le in after}
    processing = {("aggregator", q): histogram_quantile(float(q), increase) for q in QUANTILES}
    report["processing"] = _settled(
        prometheus,
        "job:soundalert_processing_seconds:quantile_rate5m",
        ("job", "quantile"),
        processing,
        0.05,
    )
    report["expected"] = {
        "by_category": by_category,
        "by_node": noisy,
        "detection": detection,
        "notification": notification,
        "processing": processing,
    }
    print(json.dumps(_plain(report), indent=1))  # noqa: T201 - `pytest -s` shows the values

    rate = prometheus.values("site:soundalert_alerts_raised:rate5m", "site")
    assert rate.get((SITE,), 0) > 0


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {"/".join(k) if isinstance(k, tuple) else k: _plain(v) for k, v in value.items()}
    return round(value, 6) if isinstance(value, float) else value


def _check_dashboard_queries(prometheus: Prometheus) -> None:
    """Every query of the Grafana dashboard is valid PromQL, and the panels about alerts,
    false alarms, latency and nodes have data."""
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/soundalert.json").read_text())
    empty = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$category", ".*")
                .replace("$quantile", ".*")
            )
            if not prometheus.query(expr):
                empty.append(panel["title"])
    assert not [
        t
        for t in empty
        if not t.startswith(
            ("Messages rejected", "Notifications by", "Services up", "Events received")
        )
    ], empty


SCREENSHOT_QUERIES = (
    "category:soundalert_alert_false_alarm:ratio_rate1h",
    "soundalert_node_false_alarm_ratio",
    "category:soundalert_detection_latency_seconds:quantile_rate1h",
    "channel:soundalert_notification_seconds:quantile_rate1h",
)


def _screenshot(prometheus: Prometheus, directory: Path, tmp_path: Path) -> None:
    """``SOUNDALERT_SCREENSHOTS=docs/screenshots pytest tests/deploy/test_prometheus.py``:
    Prometheus' own graph page for the recording rules, in headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    params: dict[str, str] = {}
    for i, expr in enumerate(SCREENSHOT_QUERIES):
        params |= {f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": "40s",
                   f"g{i}.stacked": "0", f"g{i}.show_exemplars": "0"}  # fmt: skip
    url = f"{prometheus.url}/graph?{urllib.parse.urlencode(params)}"
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium'}",
         "--window-size=1400,2900", "--virtual-time-budget=15000",
         f"--screenshot={directory / 'prometheus-rules.png'}", url],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
