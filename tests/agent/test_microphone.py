"""The live-capture path: ``soundalert agent`` with no --input listens to a real PortAudio input.

There is no sound card here, so the test starts its own PulseAudio server with a null sink (a
"room" at 48 kHz) and makes the sink's monitor the default input: PortAudio reaches it through
ALSA's pulse plugin, as on a desktop Linux box. A T3 smoke alarm played into the room with
``paplay`` must come out of the agent as a t3 pattern event and a smoke_alarm alert.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import numpy as np
import pytest

from edge.agent.demo import write_wav
from edge.dsp import synth
from tests.agent.conftest import agent_args, running_aggregator, wait_until
from tests.support.mosquitto import Mosquitto
from tests.support.room import Room

pytestmark = pytest.mark.integration


async def test_a_smoke_alarm_played_into_the_room_reaches_the_aggregator(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path, room: Room
) -> None:
    alarm = np.concatenate([np.zeros(8000), synth.t3(cycles=3, amplitude=0.4), np.zeros(32000)])
    wav = write_wav(tmp_path / "t3.wav", alarm)
    async with running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg:
        agent = await asyncio.create_subprocess_exec(
            *agent_args(mosquitto, topic_root, tmp_path / "outbox.sqlite3"),
            env=room.env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            # Windows of the silent room arrive first: the microphone is open and analysed.
            await wait_until(lambda: len(agg.processed) >= 3, 30, "windows from the microphone")
            assert not agg.raised("smoke_alarm")
            player = room.play(wav)
            await wait_until(lambda: bool(agg.raised("smoke_alarm")), 30, "a smoke alarm")
            assert await asyncio.to_thread(player.wait, 30) == 0
        finally:
            if agent.returncode is None:
                agent.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(agent.communicate(), 20)
        assert agent.returncode == 0, err.decode()
    [smoke] = agg.raised("smoke_alarm")
    assert any(".t3." in e for e in smoke.evidence), smoke.evidence
    assert smoke.location == "kitchen"
