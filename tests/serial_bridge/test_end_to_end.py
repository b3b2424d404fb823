"""Acceptance 5: simulate-board (the firmware core on a T3 recording) -> pty -> serial-bridge
-> Mosquitto -> aggregator raises exactly one smoke alarm. Both commands run as subprocesses."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import pytest

from edge.agent.demo import write_wav
from edge.dsp import synth
from tests.agent.conftest import background_bed, running_aggregator
from tests.serial_bridge.conftest import wait_until
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "from soundalert.cli import main; main()"]


async def test_a_simulated_board_hearing_t3_raises_exactly_one_smoke_alarm(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build the firmware core for simulate-board")
    bed = background_bed(14.0, seed=3)  # skips when ../shared/data/dev-audio is absent
    alarm = synth.t3(cycles=3)  # 12 s, from 1 s to 13 s
    wav = write_wav(tmp_path / "t3.wav", synth.mix_at_snr(alarm, bed, 10.0, offset=16000))
    port = tmp_path / "ttyACM0"
    async with running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg:
        bridge = await asyncio.create_subprocess_exec(
            *CLI, "serial-bridge", "--port", str(port), "--site", "home", "--node", "kitchen",
            "--broker", mosquitto.url("kitchen"), "--topic-root", topic_root,
            "--state", str(tmp_path / "state"), "--log-level", "warning",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            started = time.monotonic()
            board = await asyncio.create_subprocess_exec(
                *CLI, "simulate-board", "--port", str(port), "--input", str(wav),
                "--wait", "20", "--log-level", "warning", stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, board_err = await asyncio.wait_for(board.communicate(), 60)
            assert board.returncode == 0, board_err.decode()
            replay_s = time.monotonic() - started
            await wait_until(lambda: bool(agg.raised("node_offline")), 5,
                             "node_offline once the simulated board is gone")  # fmt: skip
            await asyncio.sleep(0.5)
        finally:
            bridge.terminate()
            _, bridge_err = await asyncio.wait_for(bridge.communicate(), 10)
    smoke = agg.raised("smoke_alarm")
    assert len(smoke) == 1, [a.model_dump() for a in agg.alerts]
    assert not agg.raised("co_alarm")
    detections = [e for e in agg.processed if ".t3." in e]
    assert len(detections) == 3, agg.processed  # one DET per T3 cycle, each counted once
    assert sum(".level." in e for e in agg.processed) >= 10  # LEVEL frames, about 1 a second
    assert smoke[0].location == "kitchen"
    assert bridge.returncode == 0, bridge_err.decode()
    sys.stderr.write(f"simulate-board real-time replay: {replay_s:.1f} s; "
                     f"smoke alarm raised once from {len(detections)} detections\n")  # fmt: skip
