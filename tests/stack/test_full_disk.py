"""The whole stack with its state on a disk that is full before it starts: the aggregator,
the display and the notifier all keep state in memory, the smoke alarm reaches the display,
and a storage_trouble alert says that nothing is being saved."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.mosquitto import Mosquitto
from tests.support.stack import Stack
from tests.support.tmpfs import fill, tmpfs

pytestmark = pytest.mark.integration


def test_a_full_disk_before_start_still_shows_a_smoke_alarm(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "full", 64) as full:
        (full / "state").mkdir()
        fill(full)
        stack = Stack(mosquitto, tmp_path, state=full / "state")
        try:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id="full-disk-test")
            client.username_pw_set("service", mosquitto.users["service"])
            client.connect("127.0.0.1", mosquitto.port)
            client.loop_start()
            now = datetime.now(UTC)
            event = {
                "schema": "soundalert.event/1", "event_id": "kitchen-t3-full-disk", "site": "home",
                "node": "kitchen", "seq": 0, "labels": [{"label": "t3", "score": 0.95}],
                "window_start": (now - timedelta(seconds=4)).isoformat(),
                "window_end": now.isoformat(),
                "source": {"kind": "pattern", "model": "soundalert-patterns", "version": "1"},
            }  # fmt: skip
            client.publish("soundalert/v1/home/kitchen/events", json.dumps(event), qos=1
                           ).wait_for_publish(timeout=10)  # fmt: skip
            deadline = time.monotonic() + 20
            while {"smoke_alarm", "storage_trouble"} - {a["category"] for a in stack.alerts()}:
                assert stack.alive(), stack.tail()
                assert time.monotonic() < deadline, stack.tail()
                time.sleep(0.2)
            client.loop_stop()
            assert "cannot open" in stack.tail()
        finally:
            stack.stop()
