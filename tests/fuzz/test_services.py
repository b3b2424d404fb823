"""Fuzz every topic the services subscribe to, against the whole stack as a real process.

`soundalert up --broker` runs the aggregator, the web display and the notifier in one process
on a real Mosquitto; any of them dying ends the process. Hypothesis publishes whole JSON
documents of every contract with extreme values, and bytes that are not JSON. Afterwards the
process is alive, every rejection is counted under a known reason, and a T3 detection still
raises a smoke alarm that reaches the display.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from schemas.decode import Reason
from tests.fuzz.payloads import hostile_messages
from tests.support.mosquitto import Mosquitto
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

ROOT = "soundalert/v1"


@pytest.fixture
def stack(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(mosquitto, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _publisher(broker: Mosquitto) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fuzz-{time.monotonic_ns()}")
    client.username_pw_set("service", broker.users["service"])
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def _rejected(metrics: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("soundalert_messages_rejected_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def _t3(site: str) -> bytes:
    now = datetime.now(UTC)
    return json.dumps({
        "schema": "soundalert.event/1", "event_id": f"after-fuzz-{time.monotonic_ns()}",
        "site": site, "node": "kitchen", "seq": 0,
        "window_start": (now - timedelta(seconds=4)).isoformat(), "window_end": now.isoformat(),
        "source": {"kind": "pattern", "model": "soundalert-patterns", "version": "1"},
        "labels": [{"label": "t3", "score": 0.95}], "level_dbfs": None,
    }).encode()  # fmt: skip


def test_hostile_payloads_on_every_topic_stop_no_service(
    stack: Stack, mosquitto: Mosquitto
) -> None:
    client = _publisher(mosquitto)
    sent = {"n": 0}

    @given(st.lists(st.tuples(hostile_messages(ROOT), st.booleans()), min_size=1, max_size=12))
    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    def publish(batch: list[tuple[tuple[str, bytes], bool]]) -> None:
        infos = [client.publish(topic, payload, qos=1, retain=retain and len(payload) < 1000)
                 for (topic, payload), retain in batch]  # fmt: skip
        for info in infos:
            info.wait_for_publish(timeout=10)
        sent["n"] += len(batch)
        assert stack.alive(), stack.tail()

    try:
        publish()
        time.sleep(2.0)  # let the services work through the backlog
        assert stack.alive(), stack.tail()
        rejected = _rejected(stack.metrics())
        assert sum(rejected.values()) > sent["n"] / 10, (rejected, sent)
        assert set(rejected) <= {reason.value for reason in Reason}, rejected
        for reason in ("malformed_json", "schema_violation"):
            assert rejected.get(reason, 0) > 0, rejected
        # A smoke alarm afterwards still gets through, to the display as well.
        client.publish(f"{ROOT}/afterfuzz/kitchen/events", _t3("afterfuzz"), qos=1
                       ).wait_for_publish(timeout=10)  # fmt: skip
        deadline = time.monotonic() + 20
        while not any(a.get("site") == "afterfuzz" and a.get("category") == "smoke_alarm"
                      for a in stack.alerts()):  # fmt: skip
            assert time.monotonic() < deadline, f"no smoke alarm after the fuzz: {stack.tail()}"
            time.sleep(0.2)
        assert stack.alive(), stack.tail()
    finally:
        client.loop_stop()
        client.disconnect()
