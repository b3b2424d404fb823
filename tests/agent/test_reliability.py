"""Acceptance 2: a 30 s broker outage and a SIGKILLed agent lose no event and duplicate none.

The agent runs as a subprocess in real time; the aggregator runs in-process and records every
event id it processes. The expected ids come from replaying the same file through the pure
pipeline, which the deterministic ``--start-time`` makes possible.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from edge.agent.demo import write_wav
from edge.agent.events import EventBuilder
from edge.agent.models import DEFAULT_CHOICE, load_models
from edge.agent.pipeline import Pipeline
from edge.agent.sources import WavFileSource
from edge.dsp import synth
from tests.agent.conftest import agent_args, background_bed, running_aggregator, wait_until
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_reconnect")]

START_A = "2024-03-01T08:00:00+00:00"
START_B = "2024-03-01T09:00:00+00:00"
ENV = {**os.environ, "SOUNDALERT_RECONNECT_MAX_S": "1", "SOUNDALERT_HEARTBEAT_S": "2"}


async def expected_ids(wav: Path, start: str) -> list[str]:
    """The event ids an agent replaying ``wav`` from ``start`` publishes, in order (with the
    agent's default models)."""
    models = load_models(DEFAULT_CHOICE)
    pipeline = Pipeline(None, None, heads=[m.head() for m in models])
    builder = EventBuilder("home", "kitchen", datetime.fromisoformat(start), models[0].source,
                           more_sources=[m.source for m in models[1:]])  # fmt: skip
    return [
        builder.build(v).event_id
        async for block in WavFileSource(wav, speed=0).blocks()
        for v in pipeline.feed(block)
    ]


def recording(path: Path, seconds: float, seed: int) -> Path:
    bed = background_bed(seconds, seed=seed)
    alarm = synth.t3(cycles=int(seconds // 4) - 2)
    return write_wav(path, synth.mix_at_snr(alarm, bed, 10.0, offset=16000 * 3))


def outbox_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT payload FROM outbox ORDER BY id").fetchall()
    return [json.loads(payload)["event_id"] for (payload,) in rows]


async def test_a_30_s_broker_outage_loses_and_duplicates_nothing(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    wav = recording(tmp_path / "a.wav", 40.0, seed=3)
    expected = await expected_ids(wav, START_A)
    async with running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg:
        agent = await asyncio.create_subprocess_exec(
            *agent_args(mosquitto, topic_root, tmp_path / "outbox.sqlite3", "--input", str(wav),
                        "--speed", "1", "--start-time", START_A),
            env=ENV, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_until(lambda: len(agg.processed) >= 5, 20, "the first events")
        mosquitto.stop()
        await asyncio.sleep(30)
        mosquitto.start()
        _, err = await asyncio.wait_for(agent.communicate(), 60)
        assert agent.returncode == 0, err.decode()
        await wait_until(lambda: set(agg.processed) >= set(expected), 20, "every event")
        await asyncio.sleep(0.5)
        nodes = {n.node: n for n in agg.service.core.nodes()}
    assert set(agg.processed) == set(expected)
    assert agg.received_total() == len(expected), "each event took effect exactly once"
    assert len(agg.raised("smoke_alarm")) == 1
    assert nodes["kitchen"].state == "stopped"
    stats = json.loads(nodes["kitchen"].stats)
    assert stats["outbox_depth"] == 0
    assert stats["outbox_dropped"] == 0
    assert stats["events_published"] == len(expected)


async def test_a_sigkilled_agent_delivers_its_backlog_after_a_restart(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    wav_a = recording(tmp_path / "a.wav", 30.0, seed=4)
    wav_b = write_wav(tmp_path / "b.wav", 0.01 * np.sin(np.arange(16000 * 3) / 3.0))
    expected_a = await expected_ids(wav_a, START_A)
    expected_b = await expected_ids(wav_b, START_B)
    outbox = tmp_path / "outbox.sqlite3"
    async with running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg:
        first = await asyncio.create_subprocess_exec(
            *agent_args(mosquitto, topic_root, outbox, "--input", str(wav_a), "--speed", "1",
                        "--start-time", START_A),
            env=ENV,
        )  # fmt: skip
        await wait_until(lambda: len(agg.processed) >= 5, 20, "the first events")
        mosquitto.stop()  # the backlog builds up in the outbox...
        await asyncio.sleep(5)
        os.kill(first.pid, signal.SIGKILL)  # ...and the agent crashes
        await first.wait()
        backlog = outbox_ids(outbox)
        delivered = set(agg.processed)
        # End-to-end delivery: the outbox also keeps what reached the aggregator but whose ack
        # the agent had not seen yet; those go again, and the aggregator dedupes them.
        undelivered = [e for e in backlog if e not in delivered]
        assert len(undelivered) >= 5
        produced = delivered | set(backlog)
        mark = len(agg.processed)
        assert produced == set(expected_a[: len(produced)]), "no gap before the crash"

        mosquitto.start()
        second = await asyncio.create_subprocess_exec(
            *agent_args(mosquitto, topic_root, outbox, "--input", str(wav_b), "--speed", "0",
                        "--start-time", START_B),
            env=ENV, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 0, err.decode()
        want = produced | set(expected_b)
        await wait_until(lambda: set(agg.processed) >= want, 20, "the backlog")
        await asyncio.sleep(0.5)
    assert set(agg.processed) == want
    assert agg.received_total() == len(want), "each event took effect exactly once"
    # The aggregator reports a batch that raised an alert as processed only once the alert is
    # published, so the order of arrival is read from its event log (one row per event, in the
    # order it took effect) rather than from the processed reports.
    with sqlite3.connect(tmp_path / "agg" / "aggregator.sqlite3") as db:
        arrived = [i for (i,) in db.execute("SELECT event_id FROM events ORDER BY rowid")]
    assert set(agg.processed[mark:]) <= set(arrived)
    order = [e for e in arrived if e in set(undelivered)]
    assert order == undelivered, "the backlog drained in order"
    assert outbox_ids(outbox) == []
