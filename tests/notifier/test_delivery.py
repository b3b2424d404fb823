"""Delivery against real parts: Mosquitto, a real aggregator, local HTTP and SMTP receivers."""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from schemas.common import utc_now
from schemas.messages import Alert, Feedback
from schemas.topics import Topics
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.notifier.service import NotifierService
from tests.notifier.conftest import NotifierFactory
from tests.notifier.support import (
    HttpReceiver,
    alert,
    event,
    eventually,
    publish,
    receiving,
    recording,
    running_aggregator,
    running_notifier,
)
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.nats import Broker

pytestmark = pytest.mark.integration
log = logging.getLogger("measurements")


def sample(service: NotifierService, name: str, **labels: str) -> float:
    return service.metrics.registry.get_sample_value(name, labels) or 0.0


def apprise_site(*urls: str, retry: dict[str, Any] | None = None, **site: Any
                 ) -> dict[str, Any]:  # fmt: skip
    channel: dict[str, Any] = {"type": "apprise", "urls": list(urls)}
    if retry:
        channel["retry"] = retry
    return {"timezone": "UTC", "channels": {"phone": channel},
            "routes": [{"channels": ["phone"]}], **site}  # fmt: skip


async def test_apprise_json_and_form_carry_content_and_priority_within_a_bound(
    broker: Broker, agg_settings: AggregatorSettings, make_notifier_settings: NotifierFactory
) -> None:
    topics = Topics(agg_settings.topic_root)
    async with receiving() as phone:
        settings = make_notifier_settings(
            {"home": apprise_site(f"json://{phone.base}/json", f"form://{phone.base}/form")}
        )
        notifier = NotifierService(settings)
        async with running_aggregator(AggregatorService(agg_settings)), running_notifier(notifier):
            started = time.monotonic()
            await publish(broker.url("service"), [
                event(topics, "home", "kitchen", 1, kind="pattern", label="t3")
            ])  # fmt: skip
            [smoke] = await phone.wait_for(1, path="/json")
            [form] = await phone.wait_for(1, path="/form")
            latency = smoke.at - started
            await publish(broker.url("service"), [
                event(topics, "home", "hall", 1, kind="yamnet", label="Doorbell")
            ])  # fmt: skip
            door = (await phone.wait_for(2, path="/json"))[1]
            await phone.wait_for(2, path="/form")
            await asyncio.sleep(0.1)  # the channel settles once every URL answered
    log.info("event -> Apprise json:// receiver: %.3f s", latency)
    assert latency < 2.0
    body = json.loads(smoke.body)
    assert body["title"] == "SMOKE ALARM in kitchen"
    assert "Smoke alarm in kitchen at home" in body["message"]
    assert (body["type"], body["priority"]) == ("failure", "critical")
    fields = dict(pair.split("=", 1) for pair in form.body.decode().split("&"))
    assert (fields["type"], fields["priority"]) == ("failure", "critical")
    body = json.loads(door.body)
    assert (body["title"], body["type"], body["priority"]) == ("Doorbell in hall", "warning",
                                                                "high")  # fmt: skip
    for recipient in ("home/phone#1", "home/phone#2"):  # each URL is its own delivery
        assert sample(notifier, "soundalert_notifications_total", channel=recipient,
                      outcome="delivered") == 2  # fmt: skip
        assert sample(notifier, "soundalert_notification_seconds_count", channel=recipient) == 2


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: SMTP, _session: Session,  # noqa: N802 - aiosmtpd's name
                          envelope: Envelope) -> str:  # fmt: skip
        assert isinstance(envelope.content, bytes)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


async def test_apprise_email_to_a_local_smtp_server(
    mosquitto: Mosquitto, make_notifier_settings: NotifierFactory, topic_root: str
) -> None:
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        url = (f"mailto://127.0.0.1:{port}?from=soundalert@example.com&to=ana@example.com"
               "&mode=insecure")  # fmt: skip
        notifier = NotifierService(make_notifier_settings({"home": apprise_site(url)}))
        async with running_notifier(notifier):
            await publish(mosquitto.url("service"), [
                (Topics(topic_root).alerts("home"), alert().to_json())
            ])  # fmt: skip
            await eventually(lambda: bool(mailbox.messages))
    finally:
        controller.stop()
    [mail] = mailbox.messages
    assert mail["Subject"] == "SMOKE ALARM in kitchen"
    assert mail["To"] == "ana@example.com"
    assert mail["X-Priority"] == "1"
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    payload = text.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert "Smoke alarm in kitchen at home" in payload.decode()


async def test_receiver_down_then_up_gets_the_alert_once_after_a_retry(
    mosquitto: Mosquitto, make_notifier_settings: NotifierFactory, topic_root: str
) -> None:
    phone = HttpReceiver()  # its port is free: nothing listens yet
    retry = {"initial_s": 0.2, "max_s": 0.4, "timeout_s": 2}
    notifier = NotifierService(
        make_notifier_settings({"home": apprise_site(f"json://{phone.base}/p", retry=retry)})
    )
    async with running_notifier(notifier):
        await publish(mosquitto.url("service"), [(Topics(topic_root).alerts("home"),
                                                  alert().to_json())])  # fmt: skip
        await eventually(lambda: sample(notifier, "soundalert_notification_failures_total",
                                        channel="home/phone") >= 2)  # fmt: skip
        await phone.start()
        try:
            await phone.wait_for(1, within=3)
            await asyncio.sleep(1.0)  # nothing more arrives
        finally:
            await phone.stop()
    assert len(phone.requests) == 1
    assert json.loads(phone.requests[0].body)["priority"] == "critical"
    assert sample(notifier, "soundalert_notifications_total", channel="home/phone",
                  outcome="delivered") == 1  # fmt: skip
    assert sample(notifier, "soundalert_notifications_pending", channel="home/phone") == 0


async def test_a_failing_and_a_hanging_channel_do_not_delay_another(
    mosquitto: Mosquitto, make_notifier_settings: NotifierFactory, topic_root: str
) -> None:
    retry = {"initial_s": 0.5, "max_s": 1, "timeout_s": 1}
    async with (
        receiving() as fast,
        receiving(delay_s=5) as hanging,
        receiving(status=500) as broken,
    ):
        site = {
            "timezone": "UTC",
            "channels": {
                "hanging": {"type": "apprise", "urls": [f"json://{hanging.base}/h?rto=6"],
                            "retry": retry},
                "broken": {"type": "webhook", "url": f"http://{broken.base}/b", "retry": retry},
                "fast": {"type": "apprise", "urls": [f"json://{fast.base}/f"]},
            },
            "routes": [{"channels": ["hanging", "broken", "fast"]}],
        }  # fmt: skip
        notifier = NotifierService(make_notifier_settings({"home": site}))
        latencies = []
        async with running_notifier(notifier):
            for n in range(3):  # the later ones queue behind failing attempts on the others
                started = time.monotonic()
                door = alert(alert_id=f"door-{n}", category="doorbell", priority="high")
                await publish(mosquitto.url("service"), [(Topics(topic_root).alerts("home"),
                                                          door.to_json())])  # fmt: skip
                got = await fast.wait_for(n + 1)
                latencies.append(got[n].at - started)
                await asyncio.sleep(0.7)
            hanging_failures = sample(notifier, "soundalert_notification_failures_total",
                                      channel="home/hanging")  # fmt: skip
            broken_failures = sample(notifier, "soundalert_notification_failures_total",
                                     channel="home/broken")  # fmt: skip
    log.info("fast channel latency with a hanging and a failing neighbour: %s s",
             ", ".join(f"{x:.3f}" for x in latencies))  # fmt: skip
    assert max(latencies) < 0.5
    assert hanging_failures >= 1  # its attempts time out after 1 s
    assert broken_failures >= 2
    assert sample(notifier, "soundalert_notifications_total", channel="home/fast",
                  outcome="delivered") == 3  # fmt: skip


async def test_webhook_posts_the_alert_signed_with_hmac(
    mosquitto: Mosquitto, make_notifier_settings: NotifierFactory, topic_root: str
) -> None:
    async with receiving() as hook:
        site = {"channels": {"ha": {"type": "webhook", "url": f"http://{hook.base}/hook",
                                    "secret": "s3cret", "headers": {"X-Home": "1"}}},
                "routes": [{"channels": ["ha"]}]}  # fmt: skip
        notifier = NotifierService(make_notifier_settings({"home": site}))
        sent = alert()
        async with running_notifier(notifier):
            await publish(mosquitto.url("service"), [(Topics(topic_root).alerts("home"),
                                                      sent.to_json())])  # fmt: skip
            [got] = await hook.wait_for(1)
    assert Alert.model_validate_json(got.body) == sent
    digest = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Soundalert-Signature"] == f"sha256={digest}"
    assert got.headers["X-Soundalert-Kind"] == "raise"
    assert got.headers["X-Home"] == "1"
    assert "s3cret" not in repr(notifier.settings)


async def test_lights_blink_in_the_category_colour_and_stop_on_acknowledge(
    mosquitto: Mosquitto, make_notifier_settings: NotifierFactory, topic_root: str
) -> None:
    bulb = "zigbee2mqtt/bedroom_bulb/set"
    site = {
        "channels": {"bulb": {"type": "mqtt", "actions": [
            {"topic": bulb, "payload": {"effect": "blink", "color": {"hex": "{color}"}}}],
            "clear": [{"topic": bulb, "payload": {"effect": "finish_effect"}}]}},
        "routes": [{"channels": ["bulb"], "kinds": ["raise", "reminder", "clear"]}],
    }  # fmt: skip
    notifier = NotifierService(make_notifier_settings({"home": site}))
    topic = Topics(topic_root).alerts("home")
    now = datetime.now(UTC)
    async with running_notifier(notifier), recording(mosquitto.url("service"), [bulb]) as rec:
        await publish(mosquitto.url("service"), [(topic, alert().to_json())])
        await rec.wait_until(lambda: len(rec.on(bulb)) == 1)
        door = alert(alert_id="door-1", category="doorbell", priority="high")
        await publish(mosquitto.url("service"), [(topic, door.to_json())])
        await rec.wait_until(lambda: len(rec.on(bulb)) == 2)
        acked = alert(state="acknowledged", by="ana", published_at=now + timedelta(seconds=1))
        await publish(mosquitto.url("service"), [(topic, acked.to_json())])
        await rec.wait_until(lambda: len(rec.on(bulb)) == 3)
    payloads = [json.loads(p) for p in rec.on(bulb)]
    assert payloads == [
        {"effect": "blink", "color": {"hex": "#ff0000"}},
        {"effect": "blink", "color": {"hex": "#00ff00"}},
        {"effect": "finish_effect"},
    ]


async def test_snooze_holds_back_dog_but_never_a_smoke_alarm(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings, make_notifier_settings: NotifierFactory
) -> None:
    topics = Topics(agg_settings.topic_root)
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with receiving() as phone:
        site = apprise_site(
            f"json://{phone.base}/p",
            snoozes=[{"category": "dog", "until": in_an_hour},
                     {"category": "smoke_alarm", "until": in_an_hour}],
            quiet_hours=[{"start": "00:00", "end": "00:00", "categories": ["doorbell"]}],
        )  # fmt: skip
        notifier = NotifierService(make_notifier_settings({"home": site}))
        async with running_aggregator(AggregatorService(agg_settings)), running_notifier(notifier):
            now = datetime.now(UTC)
            await publish(mosquitto.url("service"), [
                event(topics, "home", "yard", 1, kind="yamnet", label="Dog", end=now),
                event(topics, "home", "yard", 2, kind="yamnet", label="Dog",
                      end=now + timedelta(seconds=0.5)),
                event(topics, "home", "hall", 1, kind="yamnet", label="Doorbell"),
            ])  # fmt: skip
            await eventually(lambda: sample(notifier, "soundalert_notifications_total",
                                            channel="home/phone",
                                            outcome="quiet_hours") >= 1)  # fmt: skip
            await publish(mosquitto.url("service"), [
                event(topics, "home", "kitchen", 1, kind="pattern", label="t3")
            ])  # fmt: skip
            await phone.wait_for(1)
            await asyncio.sleep(0.5)
    assert [json.loads(r.body)["title"] for r in phone.requests] == ["SMOKE ALARM in kitchen"]
    for outcome, count in (("snoozed", 1), ("quiet_hours", 1), ("delivered", 1)):
        assert sample(notifier, "soundalert_notifications_total", channel="home/phone",
                      outcome=outcome) == count, outcome  # fmt: skip


async def test_runtime_snooze_refuses_critical_categories(
    make_notifier_settings: NotifierFactory,
) -> None:
    notifier = NotifierService(make_notifier_settings({}))
    with pytest.raises(ValueError, match="critical"):
        notifier.snooze("home", "co_alarm", time.time() + 3600)
    notifier.snooze("home", "dog", time.time() + 3600)
    assert ("home", "dog") in notifier.store.snoozes(time.time())
    notifier.store.close()


async def test_a_redelivered_state_change_notifies_once(
    broker: Broker, make_notifier_settings: NotifierFactory, topic_root: str
) -> None:
    async with receiving() as phone:
        notifier = NotifierService(make_notifier_settings(
            {"home": apprise_site(f"json://{phone.base}/p")}
        ))  # fmt: skip
        payload = alert().to_json()
        topic = Topics(topic_root).alerts("home")
        async with running_notifier(notifier):
            await publish(broker.url("service"), [(topic, payload), (topic, payload)])
            await phone.wait_for(1)
            reminder = alert(state="updated", repeat=1).to_json()
            await publish(broker.url("service"), [(topic, reminder), (topic, reminder)])
            await phone.wait_for(2)
            await asyncio.sleep(0.5)
        assert len(phone.requests) == 2
        assert sample(notifier, "soundalert_alert_states_duplicate_total") == 2
        # After a restart, the same message is still a duplicate.
        again = NotifierService(notifier.settings)
        async with running_notifier(again):
            await publish(broker.url("service"), [(topic, payload)])
            await asyncio.sleep(0.5)
    assert len(phone.requests) == 2
    assert sample(again, "soundalert_alert_states_duplicate_total") == 1


async def test_a_bad_payload_is_counted_and_skipped(
    mosquitto: Mosquitto, make_notifier_settings: NotifierFactory, topic_root: str
) -> None:
    async with receiving() as phone:
        notifier = NotifierService(make_notifier_settings(
            {"home": apprise_site(f"json://{phone.base}/p")}
        ))  # fmt: skip
        topic = Topics(topic_root).alerts("home")
        async with running_notifier(notifier):
            await publish(mosquitto.url("service"), [(topic, b"{nope"), (topic, alert().to_json())])
            await phone.wait_for(1)
    assert sample(notifier, "soundalert_messages_rejected_total", reason="malformed_json") == 1


async def test_one_unreachable_recipient_never_repeats_a_message_to_the_others(
    mosquitto: Mosquitto, agg_settings: AggregatorSettings, make_notifier_settings: NotifierFactory
) -> None:
    """Issue 14, acceptance 3: a channel of three recipients (a JSON receiver, an address
    nobody listens on, an SMTP server). The smoke alarm and its all-clear reach each working
    recipient once, however often the unreachable one is retried; the all-clear goes out at
    normal priority; the text links to the alert on the display."""
    topics = Topics(agg_settings.topic_root)
    mailbox = _Mailbox()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    down = HttpReceiver()  # nothing listens on its port
    retry = {"initial_s": 0.1, "max_s": 0.2, "timeout_s": 2, "attempts": 1000}
    try:
        async with receiving() as phone:
            urls = (f"json://{phone.base}/p", f"json://{down.base}/p",
                    f"mailto://127.0.0.1:{smtp_port}?from=soundalert@example.com"
                    "&to=ana@example.com&mode=insecure")  # fmt: skip
            routes = [{"channels": ["phone"], "kinds": ["raise", "reminder", "clear"]}]
            site = apprise_site(*urls, retry=retry, routes=routes)
            settings = make_notifier_settings({"home": site})
            settings = settings.model_copy(update={"display_url": "http://hub.local:8080/"})
            notifier = NotifierService(settings)
            async with (running_aggregator(AggregatorService(agg_settings)),
                        running_notifier(notifier)):  # fmt: skip
                await publish(mosquitto.url("service"), [
                    event(topics, "home", "kitchen", 1, kind="pattern", label="t3")
                ])  # fmt: skip
                [raised] = await phone.wait_for(1)
                await eventually(lambda: len(mailbox.messages) == 1)
                # The unreachable recipient is retried while the others already have it.
                await eventually(lambda: sample(notifier, "soundalert_notification_failures_total",
                                                channel="home/phone#2") >= 5)  # fmt: skip
                message = json.loads(raised.body)["message"]
                alert_id = message.rsplit("#alert=", 1)[1]
                ack = Feedback(alert_id=alert_id, verdict="acknowledged", by="ana", at=utc_now())
                await publish(mosquitto.url("service"), [(topics.feedback("home"), ack.to_json())])
                cleared = (await phone.wait_for(2))[1]
                await eventually(lambda: len(mailbox.messages) == 2)
                tries = sample(notifier, "soundalert_notification_failures_total",
                               channel="home/phone#2")  # fmt: skip
                await eventually(lambda: sample(notifier, "soundalert_notification_failures_total",
                                                channel="home/phone#2") >= tries + 5)  # fmt: skip
    finally:
        controller.stop()
    assert len(phone.requests) == 2, [r.body for r in phone.requests]
    assert len(mailbox.messages) == 2, [m["Subject"] for m in mailbox.messages]
    first, clear = json.loads(raised.body), json.loads(cleared.body)
    assert (first["type"], first["priority"]) == ("failure", "critical")
    assert message.endswith(f"Acknowledge it here: http://hub.local:8080/#alert={alert_id}")
    assert "confidence" not in message
    assert (clear["type"], clear["priority"]) == ("success", "normal")
    assert clear["title"] == "Smoke alarm in kitchen: acknowledged"
    assert [m["X-Priority"] for m in mailbox.messages] == ["1", "3"]
    for recipient in ("home/phone#1", "home/phone#3"):
        assert sample(notifier, "soundalert_notifications_total", channel=recipient,
                      outcome="delivered") == 2  # fmt: skip
        assert sample(notifier, "soundalert_notification_failures_total", channel=recipient) == 0
    # The raise never reached the unreachable recipient: the all-clear superseded it there.
    assert sample(notifier, "soundalert_notifications_total", channel="home/phone#2",
                  outcome="superseded") == 1  # fmt: skip
