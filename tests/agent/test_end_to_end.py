"""Acceptance 1: agent -> Mosquitto -> aggregator on a 60 s T3 smoke alarm in household noise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.agent.demo import write_wav
from edge.dsp import synth
from tests.agent.conftest import agent_args, background_bed, running_aggregator
from tests.support.mosquitto import Mosquitto
from tests.support.nats import Broker

pytestmark = pytest.mark.integration


async def _replay(
    mosquitto: Broker, topic_root: str, tmp_path: Path, wav: Path
) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *agent_args(mosquitto, topic_root, tmp_path / "outbox.sqlite3", "--input", str(wav),
                    "--speed", "0", "--start-time", "2024-03-01T08:00:00Z"),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err


async def test_a_t3_smoke_alarm_raises_exactly_one_smoke_alert(
    broker: Broker, topic_root: str, tmp_path: Path
) -> None:
    bed = background_bed(60.0, seed=1)
    alarm = synth.t3(cycles=13)  # 52 s of T3, from 4 s to 56 s
    wav = write_wav(tmp_path / "t3.wav", synth.mix_at_snr(alarm, bed, 10.0, offset=4 * 16000))
    async with running_aggregator(broker, topic_root, tmp_path / "agg") as agg:
        rc, err = await _replay(broker, topic_root, tmp_path, wav)
        assert rc == 0, err.decode()
        await asyncio.sleep(1.0)
    smoke = agg.raised("smoke_alarm")
    assert len(smoke) == 1, [a.model_dump() for a in agg.alerts]
    raised = smoke[0].raised_at.timestamp() - smoke[0].first_evidence_at.timestamp()  # type: ignore[union-attr]
    assert 0 <= raised < 10
    assert ".t3." in " ".join(agg.processed), "the pattern detector's verdicts were published"
    assert not agg.raised("co_alarm")


async def test_household_background_alone_raises_no_alarm(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    wav = write_wav(tmp_path / "bg.wav", background_bed(60.0, seed=2))
    async with running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg:
        rc, err = await _replay(mosquitto, topic_root, tmp_path, wav)
        assert rc == 0, err.decode()
        await asyncio.sleep(1.0)
    assert len(agg.processed) >= 120
    assert not agg.raised("smoke_alarm")
    assert not agg.raised("co_alarm")
