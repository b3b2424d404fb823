"""Finding 4 of issue 11: an agent whose disk is full keeps listening, and publishes what it
hears afterwards.

The agent's outbox is on a real 300 KB tmpfs, the broker is down, and the agent hears a quiet
room until its outbox has filled the disk. Today's agent then exited with "audio source failed:
cannot rollback - no transaction is active". Now it drops the oldest quiet windows (counted as
``disk_full``); when the broker is back and a smoke alarm sounds, the T3 detection made after the
disk filled is published, and the drops show in the metrics and the heartbeat.
"""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.dsp import synth
from schemas.topics import Topics
from tests.agent.conftest import feed, pcm, stdin_agent, wait_until
from tests.support.acks import acking_aggregator
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.tmpfs import tmpfs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_reconnect")]

QUIET = 1e-4
"""-80 dBFS: below the level gate, so each window is a small event and needs no inference."""


def metric(port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_an_agent_on_a_full_disk_keeps_listening_and_publishes_new_detections(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    port = free_port()
    with tmpfs(tmp_path / "disk", 300) as disk:
        outbox = disk / "outbox.sqlite3"
        mosquitto.stop()  # the broker is down: everything stays in the outbox
        async with stdin_agent(mosquitto, topic_root, outbox, "--metrics-port", str(port),
                               env={}) as agent:  # fmt: skip

            def dropped(reason: str) -> float:
                return metric(port, "soundalert_events_dropped_total", reason=reason)

            await wait_until(lambda: agent.returncode is None and _up(port), 60, "the agent")
            for minute in range(20):  # ~125 windows a minute, ~400 bytes each
                await feed(agent, pcm(60.0, seed=minute, level=QUIET))
                await asyncio.sleep(0.5)
                if dropped("disk_full"):
                    break
            await wait_until(lambda: dropped("disk_full") > 0, 60, "the disk to fill up")
            assert agent.returncode is None, "still running"
            queued_when_full = metric(port, "soundalert_events_queued_total")
            assert dropped("outbox_full") == 0

            mosquitto.start()
            topics = Topics(topic_root)
            async with acking_aggregator(mosquitto.url("service"), topics, "home",
                                         "kitchen") as agg:  # fmt: skip
                alarm = np.concatenate([np.zeros(8000), synth.t3(cycles=3, amplitude=0.4),
                                        np.zeros(16000)])  # fmt: skip
                await feed(agent, synth.to_int16(alarm).astype("<i2").tobytes())

                def t3() -> list[dict[str, object]]:
                    return [e for e in agg.events if ".t3." in str(e["event_id"])]

                await wait_until(lambda: bool(t3()), 90, "the T3 detection heard after the "
                                 "disk filled")  # fmt: skip
                seq = t3()[0]["seq"]
                assert isinstance(seq, int)
                assert seq >= queued_when_full, "made after the disk was full"
                assert agent.returncode is None

                def stats() -> dict[str, object]:
                    status = agg.statuses[-1] if agg.statuses else {}
                    figures = status.get("stats", {})
                    return figures if isinstance(figures, dict) else {}

                await wait_until(lambda: stats().get("outbox_dropped_disk_full", 0) != 0, 10,
                                 "a heartbeat reporting the drops")  # fmt: skip
                assert stats()["outbox_dropped_disk_full"] == dropped("disk_full")
                assert stats()["outbox_dropped_outbox_full"] == 0
        assert agent.returncode == 0, "stopped cleanly when told to"


def _up(port: int) -> bool:
    try:
        metric(port, "soundalert_events_queued_total")
    except OSError:
        return False
    return True
