"""SIGKILL of the aggregator process: no open alert lost, none re-sent."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from schemas.messages import Alert
from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import Store
from tests.aggregator.conftest import listening, running
from tests.aggregator.test_service import _events, _publish
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

SOUNDALERT = str(Path(sys.executable).with_name("soundalert"))


async def _start(settings: AggregatorSettings) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "SOUNDALERT_TOPIC_ROOT": settings.topic_root,
        "SOUNDALERT_CLIENT_ID": settings.client_id,
        "SOUNDALERT_TICK_S": "0.2",
    }
    policy = ["--policy", str(settings.policy_file)] if settings.policy_file else []
    process = await asyncio.create_subprocess_exec(
        SOUNDALERT, "aggregator", "--broker", settings.broker, "--state",
        str(settings.state_dir), "--log-level", "info", *policy,
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    stderr = process.stderr
    async with asyncio.timeout(15):
        while b"aggregator ready" not in await stderr.readline():
            pass

    async def drain() -> None:  # a full pipe would block the aggregator's logging
        while chunk := await stderr.read(65536):
            if os.environ.get("DEBUG_AGG"):
                sys.stderr.write(chunk.decode(errors="replace"))

    _DRAINS.add(asyncio.create_task(drain()))
    return process


_DRAINS: set[asyncio.Task[None]] = set()


async def test_sigkill_and_restart_keeps_the_open_alert_and_sends_nothing_twice(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    async with listening(mosquitto.url("service"), topics) as listener:
        first = await _start(agg_settings)
        try:
            await _publish(mosquitto.url("kitchen"), _events(topics, [0, 1, 2]))
            raised = await listener.wait_for(lambda a: a.category == "smoke_alarm", within_s=10)
            await asyncio.sleep(0.3)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()

        # Evidence keeps arriving while the aggregator is dead, and again after it is back.
        await _publish(mosquitto.url("kitchen"), _events(topics, [1, 2, 3, 4]))
        second = await _start(agg_settings)
        try:
            await _publish(mosquitto.url("kitchen"), _events(topics, [2, 5]))
            await asyncio.sleep(1.5)
            smoke = [a for a in listener.alerts if a.category == "smoke_alarm"]
            assert [a.state for a in smoke] == ["raised"], "the alert was sent again"
            feedback = (
                b'{"schema": "soundalert.feedback/1", "alert_id": "' + raised.alert_id.encode()
                + b'", "verdict": "acknowledged", "by": "anna", "at": "2026-11-21T10:00:05Z"}'
            )  # fmt: skip
            await _publish(mosquitto.url("service"), [(topics.feedback("home"), feedback)])
            acked = await listener.wait_for(lambda a: a.state == "acknowledged", within_s=5)
            assert acked.alert_id == raised.alert_id, "the open alert was lost"
        finally:
            second.terminate()
            try:
                await asyncio.wait_for(second.wait(), 15)
            finally:
                if second.returncode is None:
                    second.kill()
        assert second.returncode == 0, "SIGTERM did not stop the aggregator cleanly"


async def test_publications_committed_before_a_crash_go_out_on_restart(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings
) -> None:
    topics = Topics(agg_settings.topic_root)
    alert = Alert.model_validate(
        {"alert_id": "glass_break-000009-abcdef", "site": "home", "category": "glass_break",
         "priority": "high", "state": "raised", "location": "kitchen",
         "first_evidence_at": "2026-11-21T10:00:00Z", "raised_at": "2026-11-21T10:00:01Z",
         "published_at": "2026-11-21T10:00:01Z", "confidence": 0.9}
    )  # fmt: skip
    store = Store(agg_settings.database)
    store.enqueue(topics.alerts("home"), alert.to_json(), retain=False)
    store.commit()
    store.close()
    async with (
        listening(mosquitto.url("service"), topics) as listener,
        running(AggregatorService(agg_settings)),
    ):
        got = await listener.wait_for(lambda a: a.alert_id == alert.alert_id, within_s=5)
    assert got == alert
    assert Store(agg_settings.database).pending_publications() == []
