"""Escalation of unacknowledged critical alerts, through a real aggregator and Mosquitto."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.messages import Alert, Feedback
from schemas.topics import Topics
from services.aggregator.policy import DEFAULT_POLICY_PATH
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.notifier.service import NotifierService
from tests.notifier.conftest import NotifierFactory
from tests.notifier.support import (
    HttpReceiver,
    alert,
    event,
    publish,
    receiving,
    running_aggregator,
    running_notifier,
)
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
log = logging.getLogger("measurements")


def site(phone: HttpReceiver, carer: HttpReceiver, *, after_s: float, repeat_s: float
         ) -> dict[str, Any]:  # fmt: skip
    return {
        "timezone": "UTC",
        "channels": {
            "phone": {"type": "apprise", "urls": [f"json://{phone.base}/phone"]},
            "carer": {"type": "webhook", "url": f"http://{carer.base}/carer", "secret": "k"},
        },
        "routes": [{"channels": ["phone"]}],
        "escalation": {"after_s": after_s, "repeat_s": repeat_s, "channels": ["carer"]},
    }


def kinds(receiver: HttpReceiver) -> list[tuple[str, str]]:
    return [(r.headers["X-Soundalert-Kind"], r.headers["X-Soundalert-Escalation"])
            for r in receiver.requests]  # fmt: skip


async def _acknowledge(url: str, topics: Topics, alert_id: str) -> None:
    feedback = Feedback(alert_id=alert_id, verdict="acknowledged", by="ana", at=datetime.now(UTC))
    await publish(url, [(topics.feedback("home"), feedback.to_json())])


async def test_unacknowledged_smoke_escalates_repeats_and_stops_once_acknowledged(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings, make_notifier_settings: NotifierFactory
) -> None:
    """The aggregator's own reminders are a minute apart here: escalation runs on its timer."""
    topics = Topics(agg_settings.topic_root)
    url = mosquitto.url("service")
    async with receiving() as phone, receiving() as carer:
        notifier = NotifierService(make_notifier_settings(
            {"home": site(phone, carer, after_s=1.0, repeat_s=1.0)}
        ))  # fmt: skip
        async with running_aggregator(AggregatorService(agg_settings)), running_notifier(notifier):
            await publish(url, [event(topics, "home", "kitchen", 1, kind="pattern", label="t3")])
            [raised] = await phone.wait_for(1)
            first, second = await carer.wait_for(2, within=4)
            smoke = Alert.model_validate_json(first.body)
            await _acknowledge(url, topics, smoke.alert_id)
            cleared = await carer.wait_for(3, within=3)
            acked_at = time.monotonic()
            await asyncio.sleep(2.5)  # more than two escalation intervals
    after = (first.at - raised.at, second.at - raised.at)
    log.info("escalations after the first notification: %.2f s, %.2f s (configured 1 s, 1 s)",
             *after)  # fmt: skip
    assert 0.7 < after[0] < 1.6
    assert 0.8 < after[1] - after[0] < 1.5
    assert kinds(carer) == [("escalation", "1"), ("escalation", "2"), ("clear", "2")]
    assert Alert.model_validate_json(cleared[2].body).state == "acknowledged"
    assert all(r.at <= acked_at for r in carer.requests)
    assert len(phone.requests) == 1  # the primary channel only routes raise and reminders
    assert smoke.category == "smoke_alarm"
    assert notifier.metrics.registry.get_sample_value(
        "soundalert_escalations_total", {"category": "smoke_alarm"}) == 2  # fmt: skip


async def test_escalation_is_not_doubled_by_the_aggregators_reminders(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings,
    make_notifier_settings: NotifierFactory, tmp_path: Path,
) -> None:  # fmt: skip
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    policy["operating_points"] = str(DEFAULT_POLICY_PATH.parent / policy["operating_points"])
    policy["categories"]["smoke_alarm"]["escalation_interval_s"] = 0.5
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    agg = agg_settings.model_copy(update={"policy_file": tmp_path / "policy.yaml"})
    topics = Topics(agg.topic_root)
    url = mosquitto.url("service")
    async with receiving() as phone, receiving() as carer:
        notifier = NotifierService(make_notifier_settings(
            {"home": site(phone, carer, after_s=1.5, repeat_s=1.5)}
        ))  # fmt: skip
        async with running_aggregator(AggregatorService(agg)), running_notifier(notifier):
            await publish(url, [event(topics, "home", "kitchen", 1, kind="pattern", label="t3")])
            [raised] = await phone.wait_for(1)
            await carer.wait_for(2, within=5)  # at about 1.5 s and 3 s
            window = time.monotonic() - raised.at
            smoke = Alert.model_validate_json(carer.requests[0].body)
            await _acknowledge(url, topics, smoke.alert_id)
            await carer.wait_for(3, within=3)
            stopped = time.monotonic()
            phone_count = len(phone.requests)
            await asyncio.sleep(1.6)
    reminders = [json.loads(r.body) for r in phone.requests[1:]]
    log.info("%d aggregator reminders and %d escalations in %.2f s", len(reminders),
             2, window)  # fmt: skip
    assert len(reminders) >= 4  # the aggregator reminded every 0.5 s ...
    assert all("not yet acknowledged" in r["message"] for r in reminders)
    assert kinds(carer)[:2] == [("escalation", "1"), ("escalation", "2")]  # ... escalation
    assert kinds(carer)[2:] == [("clear", "2")]  # kept its own 1.5 s timer, then stopped
    assert len(phone.requests) == phone_count  # no reminders once acknowledged
    assert all(r.at <= stopped for r in carer.requests)


async def test_a_pending_escalation_survives_a_restart(
    mosquitto: Mosquitto, make_notifier_settings: NotifierFactory, topic_root: str
) -> None:
    url = mosquitto.url("service")
    async with receiving() as phone, receiving() as carer:
        settings = make_notifier_settings({"home": site(phone, carer, after_s=2.0, repeat_s=30)})
        raised = alert(raised_at=datetime.now(UTC))
        started = time.monotonic()
        async with running_notifier(NotifierService(settings)):
            await publish(url, [(Topics(topic_root).alerts("home"), raised.to_json())])
            await phone.wait_for(1)
        assert carer.requests == []
        async with running_notifier(NotifierService(settings)):
            [escalated] = await carer.wait_for(1, within=4)
            await asyncio.sleep(0.5)
    after = escalated.at - started
    log.info("escalation across a restart after %.2f s (configured 2 s)", after)
    assert 1.7 < after < 3.0
    assert kinds(carer) == [("escalation", "1")]
    assert len(phone.requests) == 1
