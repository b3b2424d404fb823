"""What channels are sent: Apprise priority mapping, light payloads, signed webhook bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC
from typing import Any

import apprise
import pytest

from schemas.messages import Alert
from services.notifier.config import MqttChannel
from services.notifier.core import Delivery
from services.notifier.render import (
    apprise_url,
    effective_priority,
    message,
    mqtt_publishes,
    notify_type,
    sign,
)
from services.notifier.render import webhook_request as request
from tests.notifier.support import alert


def delivery(kind: Any = "raise", escalation: int = 0, **kw: Any) -> Delivery:
    return Delivery("home", "x", kind, alert(**kw), escalation)


@pytest.mark.parametrize(
    ("url", "priority", "attr", "expected"),
    [
        ("ntfy://localhost/topic", "critical", "priority", "max"),
        ("ntfy://localhost/topic", "high", "priority", "high"),
        ("ntfy://localhost/topic", "normal", "priority", "default"),
        ("gotify://localhost/" + "a" * 15, "critical", "priority", 10),
        ("gotify://localhost/" + "a" * 15, "normal", "priority", 5),
        ("pover://" + "u" * 30 + "@" + "t" * 30, "critical", "priority", 2),
        ("json://localhost/hook", "critical", "payload_extras", {"priority": "critical"}),
        ("form://localhost/hook?x=1", "high", "payload_extras", {"priority": "high"}),
        ("mailto://localhost?to=a@b.c&from=d@e.f", "critical", "headers", {"X-Priority": "1"}),
    ],
)
def test_priority_reaches_the_apprise_plugin(url: str, priority: str, attr: str,
                                             expected: object) -> None:  # fmt: skip
    notifier = apprise.Apprise()
    assert notifier.add(apprise_url(url, priority))
    assert getattr(notifier[0], attr) == expected


def test_an_explicit_priority_in_the_url_wins() -> None:
    assert apprise_url("ntfy://h/t?priority=low", "critical") == "ntfy://h/t?priority=low"
    assert apprise_url("tgram://bot/chat", "critical") == "tgram://bot/chat"  # no such param


def test_notify_types() -> None:
    assert notify_type(delivery()) == "failure"
    assert notify_type(delivery(priority="high", category="doorbell")) == "warning"
    assert notify_type(delivery(priority="normal", category="dog")) == "info"
    assert notify_type(delivery("clear", state="acknowledged")) == "success"
    assert notify_type(delivery("escalation", 1, priority="high")) == "failure"


def test_messages_say_what_where_and_what_is_expected() -> None:
    title, body = message(delivery(), UTC)
    assert title == "SMOKE ALARM in kitchen"
    assert "kitchen" in body
    assert "home" in body
    _, body = message(delivery("reminder", state="updated", repeat=2), UTC)
    assert "Reminder 2: not yet acknowledged" in body
    title, body = message(delivery("escalation", 3), UTC)
    assert title.startswith("NOT ACKNOWLEDGED: Smoke alarm in kitchen")
    assert "escalation 3" in body
    title, _ = message(delivery("clear", state="acknowledged", by="ana"), UTC)
    assert title == "Smoke alarm in kitchen: acknowledged"


def test_messages_say_what_to_do_and_link_to_the_alert_without_confidence() -> None:
    display = "http://hub.local:8080/"
    _, body = message(delivery(), UTC, display)
    assert "confidence" not in body
    assert "%" not in body
    assert "still sounding" in body
    assert "get everyone out" in body
    assert body.endswith(
        "Acknowledge it here: http://hub.local:8080/#alert=smoke_alarm-000001-abcd"
    )
    assert "token" not in body
    _, body = message(delivery("reminder", state="updated", repeat=3), UTC, display)
    assert "Reminder 3: not yet acknowledged" in body
    # An all-clear: nothing to do, no reminder words, no link.
    _, body = message(delivery("clear", state="acknowledged", by="ana", repeat=3), UTC, display)
    assert body.endswith("acknowledged by ana. Nothing more to do.")
    assert "not yet" not in body
    assert "#alert=" not in body
    # A sensor's alert names its room once, and says what to check.
    title, body = message(
        delivery(category="node_offline", priority="high", title="Kitchen sensor stopped "
                 "listening", reason="last will: connection lost"), UTC, display,
    )  # fmt: skip
    assert title == "Kitchen sensor stopped listening"
    assert "in kitchen" not in body
    assert "Last will: connection lost" in body
    assert "power and network" in body


def test_all_clears_go_out_at_normal_priority() -> None:
    assert effective_priority(delivery("clear", state="acknowledged")) == "normal"
    assert effective_priority(delivery("clear", state="false_alarm")) == "normal"
    assert effective_priority(delivery()) == "critical"
    assert effective_priority(delivery("escalation", 1, priority="high")) == "critical"


def test_light_payloads_use_rf_alerter_colours_and_overrides() -> None:
    channel = MqttChannel.model_validate({
        "type": "mqtt",
        "actions": [{"topic": "zigbee2mqtt/{location}_bulb/set",
                     "payload": {"effect": "blink", "color": {"hex": "{color}"}}}],
        "categories": {"dog": [{"topic": "shaker/set", "payload": "ON", "qos": 0}]},
        "clear": [{"topic": "zigbee2mqtt/kitchen_bulb/set",
                   "payload": {"effect": "finish_effect"}}],
        "colors": {"phone_ring": "#ffee00"},
    })  # fmt: skip
    cases = {"smoke_alarm": "#ff0000", "doorbell": "#00ff00", "baby_cry": "#ff8000",
             "phone_ring": "#ffee00", "water_running": "#ffffff"}  # fmt: skip
    for category, colour in cases.items():
        [(topic, payload, qos, retain)] = mqtt_publishes(channel,
                                                         delivery(category=category))  # fmt: skip
        assert topic == "zigbee2mqtt/kitchen_bulb/set"
        assert json.loads(payload) == {"effect": "blink", "color": {"hex": colour}}
        assert (qos, retain) == (1, False)
    assert mqtt_publishes(channel, delivery(category="dog")) == [("shaker/set", b"ON", 0, False)]
    [(_, payload, _, _)] = mqtt_publishes(channel, delivery("clear", state="acknowledged"))
    assert json.loads(payload) == {"effect": "finish_effect"}


def test_webhook_body_is_the_alert_and_the_signature_verifies() -> None:
    d = delivery("escalation", 2)
    body, headers = request(d, b"s3cret", {"X-Site": "home"})
    assert Alert.model_validate_json(body) == d.alert
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Soundalert-Signature"] == f"sha256={expected}"
    assert headers["X-Soundalert-Kind"] == "escalation"
    assert headers["X-Soundalert-Escalation"] == "2"
    assert headers["X-Site"] == "home"
    assert sign(b"other", body) != headers["X-Soundalert-Signature"]
    _, unsigned = request(d, None, {})
    assert "X-Soundalert-Signature" not in unsigned
