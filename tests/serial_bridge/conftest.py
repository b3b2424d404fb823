"""Serial bridge test helpers: a board on a real pseudo-terminal behind a udev-like symlink,
an in-process bridge, and an MQTT watcher."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import tty
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from edge.dsp.protocol import Detection, Frame, Heartbeat, Hello, encode
from edge.serial_bridge.metrics import BridgeMetrics
from edge.serial_bridge.service import SerialBridge
from edge.serial_bridge.settings import BridgeSettings
from tests.agent.conftest import fast_reconnect, wait_until
from tests.support.mosquitto import Mosquitto

__all__ = [
    "Board",
    "Watcher",
    "bridge_settings",
    "fast_reconnect",
    "rejected",
    "running_bridge",
    "wait_until",
    "watching",
]


class Board:
    """A fake RP2040 on a pty; ``path`` is a symlink to the pty's slave end, re-pointed at a
    new pty on :meth:`plug` (as udev re-creates /dev/ttyACM0 when a board is plugged in)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.master: int | None = None
        self.seq = 0
        self.uptime_ms = 0

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        temporary = self.path.with_name(f".{self.path.name}.new")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(os.ttyname(slave))
        temporary.replace(self.path)
        os.close(slave)
        self.master = master

    def unplug(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def write(self, data: bytes) -> None:
        assert self.master is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view) :]

    def send(self, frame: Frame) -> None:
        self.write(encode(frame))

    def _next(self, step_ms: int) -> tuple[int, int]:
        seq, self.seq = self.seq, (self.seq + 1) % 65536
        self.uptime_ms += step_ms
        return seq, self.uptime_ms

    def boot(self, board_id: str = "rp2040-E66138935F2A1B2C") -> None:
        """A reboot: seq and uptime start again with a HELLO."""
        self.seq, self.uptime_ms = 0, 0
        self.send(Hello(*self._next(0), board_id, "0.1.0", 16000, 6))

    def heartbeat(self) -> None:
        seq, up = self._next(1000)
        self.send(Heartbeat(seq, up, up // 16, 0))

    def detection(self, detector: str = "t3", confidence: float = 0.93) -> Detection:
        seq, up = self._next(500)
        frame = Detection(seq, up, detector, confidence, max(0, up - 4100), 3125, 1)
        self.send(frame)
        return frame

    async def wait_for_reader(self, within_s: float = 10.0) -> None:
        """Until the bridge has the pty open (POLLHUP clears), plus pyserial's input flush."""
        import select  # noqa: PLC0415

        assert self.master is not None
        poller = select.poll()
        poller.register(self.master, select.POLLOUT)
        deadline = time.monotonic() + within_s
        while poller.poll(0)[0][1] & select.POLLHUP:
            assert time.monotonic() < deadline, "the bridge did not open the port"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)


@dataclass
class Watcher:
    """Every message under a topic root, with its arrival time."""

    messages: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def on(self, suffix: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, topic, m in self.messages if topic.endswith(suffix)]

    def states(self) -> list[tuple[float, str]]:
        return [(t, m["state"]) for t, m in self.on("/status")]

    def last_state(self) -> str | None:
        states = self.states()
        return states[-1][1] if states else None

    def events(self) -> list[dict[str, Any]]:
        return [m for _, m in self.on("/events")]


@asynccontextmanager
async def watching(mosquitto: Mosquitto, topic_root: str) -> AsyncIterator[Watcher]:
    watcher = Watcher()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="service",
                              password=mosquitto.users["service"],
                              identifier=f"watch-{uuid.uuid4().hex[:8]}") as client:  # fmt: skip
        await client.subscribe(f"{topic_root}/#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                watcher.messages.append((time.monotonic(), str(message.topic),
                                         json.loads(payload)))  # fmt: skip

        task = asyncio.create_task(collect())
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def bridge_settings(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path, port: Path, **overrides: Any
) -> BridgeSettings:
    values: dict[str, Any] = {
        "broker": mosquitto.url("kitchen"),
        "topic_root": topic_root,
        "site": "home",
        "node": "kitchen",
        "port": str(port),
        "state_dir": tmp_path / "state",
        "heartbeat_s": 2.0,
        "reconnect_max_s": 1.0,
        "reopen_max_s": 0.5,
        "outbox_sync": "normal",
    }
    values.update(overrides)
    return BridgeSettings.model_validate(values)


@asynccontextmanager
async def running_bridge(settings: BridgeSettings) -> AsyncIterator[SerialBridge]:
    bridge = SerialBridge(settings, metrics=BridgeMetrics())
    task = asyncio.create_task(bridge.run())
    try:
        yield bridge
        assert not task.done(), "the bridge stopped by itself"
    finally:
        bridge.stop()
        await asyncio.wait_for(task, 10)


def rejected(bridge: SerialBridge) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in bridge.metrics.rejected.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.value:
                out[sample.labels["reason"]] = sample.value
    return out


def counter(bridge: SerialBridge, name: str) -> float:
    """The value of one of the bridge's unlabelled counters, e.g. ``resets``."""
    metric: Callable[[], Any] = getattr(bridge.metrics, name).collect
    return float(sum(s.value for m in metric() for s in m.samples if s.name.endswith("_total")))
