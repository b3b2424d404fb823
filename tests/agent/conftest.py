"""Agent test helpers: dev-audio beds, WAV writing, an in-process aggregator, agent commands."""

from __future__ import annotations

import asyncio
import csv
import functools
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import soundalert.mqtt
from edge.agent.sources import read_wav
from edge.dsp import synth
from schemas.messages import Alert
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from tests.support.nats import Broker

REPO = Path(__file__).resolve().parents[2]
DEV_AUDIO = REPO.parent / "shared" / "data" / "dev-audio"
AGENT = [sys.executable, "-c", "from soundalert.cli import main; main()", "agent"]
AGGREGATOR_DELIVERY = "end-to-end"
"""How agents deliver to the in-process aggregator: end-to-end, on its DeliveryAcks."""


def dev_audio() -> Path:
    if not (DEV_AUDIO / "meta.csv").is_file():
        pytest.skip(f"development audio not found at {DEV_AUDIO} (../shared/data/dev-audio)")
    return DEV_AUDIO


def clips(category: str) -> list[Path]:
    root = dev_audio()
    with (root / "meta.csv").open(newline="") as handle:
        return sorted(root / r["path"] for r in csv.DictReader(handle) if r["category"] == category)


def background_bed(seconds: float, seed: int = 0) -> npt.NDArray[np.float64]:
    """Household background: the 1 s dev clips, shuffled and concatenated."""
    paths = clips("background")
    rng = np.random.default_rng(seed)
    n = round(seconds * 16000)
    parts: list[npt.NDArray[np.float64]] = []
    total = 0
    while total < n:
        for i in rng.permutation(len(paths)):
            x, rate = read_wav(paths[i])
            assert rate == 16000
            parts.append(x.astype(np.float64))
            total += x.size
            if total >= n:
                break
    return np.concatenate(parts)[:n]


@dataclass
class AggregatorHarness:
    service: AggregatorService
    alerts: list[Alert] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)

    def raised(self, category: str) -> list[Alert]:
        return [a for a in self.alerts if a.category == category and a.state == "raised"]

    def received_total(self) -> float:
        total = 0.0
        for metric in self.service.metrics.events_received.collect():
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return total


async def wait_until(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_aggregator(
    mosquitto: Broker, topic_root: str, state_dir: Path, *, client_id: str | None = None
) -> AsyncIterator[AggregatorHarness]:
    settings = AggregatorSettings(
        broker=mosquitto.url("service"),
        topic_root=topic_root,
        state_dir=state_dir,
        client_id=client_id or f"aggregator-{uuid.uuid4().hex[:8]}",
    )
    holder: list[AggregatorHarness] = []
    service = AggregatorService(
        settings,
        on_alert=lambda alert: holder[0].alerts.append(alert),  # noqa: PLW0108 - late binding
        on_processed=lambda event_id, _wall: holder[0].processed.append(event_id),
    )
    harness = AggregatorHarness(service)
    holder.append(harness)
    task = asyncio.create_task(service.run())
    connected = service.metrics.mqtt_connected
    await wait_until(lambda: connected._value.get() == 1, 10, "the aggregator to connect")  # noqa: SLF001
    try:
        yield harness
    finally:
        service.stop()
        await asyncio.wait_for(task, 10)


@pytest.fixture
def fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process services retry within a second (the default backoff reaches 30 s)."""
    monkeypatch.setattr(
        soundalert.mqtt, "Backoff", functools.partial(soundalert.mqtt.Backoff, maximum=1.0)
    )


def pcm(seconds: float, seed: int = 0, level: float = 0.01) -> bytes:
    """Quiet room tone as s16le 16 kHz mono (each 0.48 s hop is one published window)."""
    noise = np.random.default_rng(seed).normal(0.0, level, round(16000 * seconds))
    return synth.to_int16(noise).astype("<i2").tobytes()


@asynccontextmanager
async def stdin_agent(
    mosquitto: Broker, topic_root: str, outbox: Path, *extra: str, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``soundalert agent --stdin`` as node ``kitchen`` with its own login (the test decides
    what it hears and when); fast reconnects and 1 s heartbeats."""
    agent = await asyncio.create_subprocess_exec(
        *AGENT, "--broker", mosquitto.url("kitchen"), "--topic-root", topic_root,
        "--site", "home", "--node", "kitchen", "--outbox", str(outbox), "--stdin",
        "--log-level", "info", *extra,
        env={**os.environ, "SOUNDALERT_RECONNECT_MAX_S": "0.5", "SOUNDALERT_HEARTBEAT_S": "1",
             **env},
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield agent
    finally:
        if agent.returncode is None:
            agent.terminate()
        assert agent.stdin is not None
        agent.stdin.close()
        _, err = await asyncio.wait_for(agent.communicate(), 20)
        print(err.decode()[-4000:])  # noqa: T201 - the agent's log, shown on failure


async def feed(agent: asyncio.subprocess.Process, data: bytes, *, pace_s: float = 0.1) -> None:
    """Write PCM to the agent's stdin two seconds at a time, pausing ``pace_s`` between, so
    that its pipeline keeps up (a live source drops blocks when it falls behind)."""
    assert agent.stdin is not None
    step = 2 * 16000 * 2
    for at in range(0, len(data), step):
        agent.stdin.write(data[at : at + step])
        await agent.stdin.drain()
        await asyncio.sleep(pace_s)


def agent_args(mosquitto: Broker, topic_root: str, outbox: Path, *extra: str) -> list[str]:
    return [*AGENT, "--broker", mosquitto.url("service"), "--topic-root", topic_root,
            "--site", "home", "--node", "kitchen", "--outbox", str(outbox), "--log-level",
            "warning", "--delivery", AGGREGATOR_DELIVERY, *extra]  # fmt: skip
