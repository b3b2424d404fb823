"""The committed board image (firmware/rp2040/release/soundalert.uf2) on an emulated RP2040
(rp2040js): audio reaches it as sigma-delta PDM bits on its microphone pins, its USB CDC is a
pseudo-terminal, and ``soundalert serial-bridge`` (a subprocess) reads it into a real
Mosquitto and the real aggregator, exactly as it would read a board on /dev/ttyACM0.

The board runs in real time (the emulator never runs ahead of the wall clock); on a loaded
machine it may run slower, so the bridge is given a longer ``--silence`` than a board needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.dsp import synth
from edge.dsp.protocol import ErrorFrame, Hello, Level
from tests.agent.conftest import (
    AggregatorHarness,
    background_bed,
    running_aggregator,
    wait_until,
)
from tests.firmware.conftest import parse_all
from tests.serial_bridge.conftest import Watcher, watching
from tests.support.mosquitto import Mosquitto
from tests.support.rp2040_emulator import (
    EmulatedBoard,
    emulator_missing,
    release_manifest,
    write_audio,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(emulator_missing() is not None, reason=emulator_missing() or ""),
]

CLI = [sys.executable, "-c", "from soundalert.cli import main; main()"]
HEARTBEAT_S = 1.0
NODE_ALERTS = {"node_offline", "node_online"}


@contextlib.asynccontextmanager
async def bridged(board: EmulatedBoard, mosquitto: Mosquitto, topic_root: str,
                  tmp_path: Path) -> AsyncIterator[tuple[AggregatorHarness, Watcher]]:  # fmt: skip
    """The aggregator, an MQTT watcher and ``soundalert serial-bridge`` on the board's port
    while the board runs; on the way out, until the bridge has said the board is gone."""
    async with (
        running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg,
        watching(mosquitto, topic_root) as watcher,
    ):
        bridge = await asyncio.create_subprocess_exec(
            *CLI, "serial-bridge", "--port", str(board.port), "--site", "home", "--node",
            "kitchen", "--broker", mosquitto.url("kitchen"), "--topic-root", topic_root,
            "--state", str(tmp_path / "state"), "--heartbeat", str(HEARTBEAT_S), "--silence",
            "10", "--log-level", "warning", stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with board.running():
                yield agg, watcher
            await wait_until(lambda: watcher.last_state() == "offline", 15,
                             "the bridge to report the board gone")  # fmt: skip
        finally:
            bridge.terminate()
            _, err = await asyncio.wait_for(bridge.communicate(), 10)
        assert bridge.returncode == 0, err.decode()


def last_stats(watcher: Watcher) -> dict[str, Any]:
    """The bridge's latest figures (its last will, which the broker may publish after it, has
    none)."""
    stats = [s[1]["stats"] for s in watcher.on("/status") if s[1].get("stats")]
    return dict(stats[-1]) if stats else {}


async def test_the_board_hearing_t3_raises_exactly_one_smoke_alarm(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    bed = background_bed(10.0, seed=5)  # skips when ../shared/data/dev-audio is absent
    audio = synth.mix_at_snr(synth.t3(cycles=2), bed, 10.0, offset=16000)  # 1 s .. 9 s
    board = EmulatedBoard(tmp_path / "ttyACM0", write_audio(tmp_path / "t3.s16", audio))
    manifest = release_manifest()
    async with bridged(board, mosquitto, topic_root, tmp_path) as (agg, watcher):
        end = await board.finished(within_s=120)
    frames, rejections = parse_all(bytes(board.serial))
    assert not rejections, rejections
    hello = frames[0]
    assert isinstance(hello, Hello), frames[:3]
    assert hello.fw_version == manifest["fw_version"]
    assert hello.board_id.startswith("rp2040-")
    smoke = agg.raised("smoke_alarm")
    assert len(smoke) == 1, [a.model_dump() for a in agg.alerts]
    assert {a.category for a in agg.alerts} - NODE_ALERTS == {"smoke_alarm"}
    detections = [e for e in watcher.events() if e["labels"] and e["labels"][0]["label"] == "t3"]
    assert len(detections) == 2, detections  # one DET per T3 cycle
    assert {e["source"]["version"] for e in watcher.events()} == {manifest["fw_version"]}
    assert last_stats(watcher).get("firmware") == manifest["fw_version"]
    assert board.resets == 0
    sys.stderr.write(f"emulated board: {end['audio_s']:.1f} s of audio in {end['wall_s']:.1f} s; "
                     f"{len(detections)} T3 detections, one smoke alarm\n")  # fmt: skip


async def test_background_raises_nothing_and_a_watchdog_reset_is_a_reboot(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    """The microphone's PIO state machine freezes at 4 s (a stalled audio path): the main loop
    stops feeding the watchdog, which resets the chip 1 s later; USB disconnects and comes
    back, the board says HELLO again, then ERR,internal with its watchdog reset count."""
    audio = background_bed(9.0, seed=7)
    board = EmulatedBoard(tmp_path / "ttyACM0", write_audio(tmp_path / "bg.s16", audio),
                          stall_at_s=4.0)  # fmt: skip
    async with bridged(board, mosquitto, topic_root, tmp_path) as (agg, watcher):
        await wait_until(lambda: board.resets == 1, 60, "the watchdog reset")
        before_reset = {a.category for a in agg.alerts}
        await board.finished(within_s=60)
    assert before_reset <= NODE_ALERTS  # background alone raises no sound alert
    assert {a.category for a in agg.alerts} <= NODE_ALERTS, [a.model_dump() for a in agg.alerts]
    assert not [e for e in watcher.events() if e["labels"]]  # no detection at all
    frames, rejections = parse_all(bytes(board.serial))
    assert not rejections, rejections
    hellos = [i for i, f in enumerate(frames) if isinstance(f, Hello)]
    assert len(hellos) == 2, frames
    after_reboot = frames[hellos[1] + 1]
    assert isinstance(after_reboot, ErrorFrame), frames[hellos[1] :]
    assert (after_reboot.code, after_reboot.value) == ("internal", 1)
    assert [e["reason"] for e in board.events if e["event"] == "reset"] == ["watchdog"]
    stats = last_stats(watcher)
    assert stats["board_resets"] == 1
    assert stats["board_last_error"] == "internal"
    assert stats["firmware"] == release_manifest()["fw_version"]
    # After the reboot the microphone runs again: it hears the background (about -29 dBFS),
    # not the -93 dBFS of the modulator's idle noise.
    levels = [f.level_dbfs for f in frames[hellos[1] :] if isinstance(f, Level)]
    assert max(levels) > -60, levels
