"""Contract tests: the issue's examples validate, JSON Schema files match the models, and
every kind of bad payload is rejected with its own reason."""

from __future__ import annotations

import json

import pytest

from schemas import (
    Alert,
    ClassificationEvent,
    DeliveryAck,
    Feedback,
    NodeStatus,
    Reason,
    Rejected,
    decode,
)
from schemas.generate import JSON_DIR, MODELS, render
from schemas.topics import ParsedTopic

EXAMPLE_EVENT = {
    "schema": "soundalert.event/1",
    "event_id": "kitchen-000123-7f3a",
    "site": "home",
    "node": "kitchen",
    "seq": 123,
    "window_start": "2026-11-21T10:00:00.000Z",
    "window_end": "2026-11-21T10:00:00.975Z",
    "source": {"kind": "yamnet", "model": "yamnet", "version": "1"},
    "labels": [
        {"label": "Smoke detector, smoke alarm", "score": 0.71},
        {"label": "Beep, bleep", "score": 0.64},
    ],
    "level_dbfs": -23.5,
    "features": {},
}


def _payload(**changes: object) -> bytes:
    doc = {**EXAMPLE_EVENT, **changes}
    return json.dumps(doc).encode()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_json_schema_files_match_models(name: str) -> None:
    committed = (JSON_DIR / name).read_text(encoding="utf-8")
    assert committed == render(MODELS[name], name), (
        f"schemas/json/{name} drifted from the model; run `python -m schemas.generate`"
    )


def test_issue_example_event_round_trips() -> None:
    event = decode(ClassificationEvent, _payload())
    again = decode(ClassificationEvent, event.to_json())
    assert again == event
    assert json.loads(event.to_json())["schema"] == "soundalert.event/1"
    assert event.window_end.utcoffset() is not None
    assert event.window_end.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_timestamps_are_normalised_to_utc() -> None:
    event = decode(
        ClassificationEvent,
        _payload(
            window_start="2026-11-21T11:00:00+01:00", window_end="2026-11-21T11:00:00.975+01:00"
        ),
    )
    assert event.window_start.isoformat().startswith("2026-11-21T10:00:00")


def test_models_are_frozen() -> None:
    event = decode(ClassificationEvent, _payload())
    with pytest.raises(ValueError, match="frozen"):
        event.seq = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", Reason.MALFORMED_JSON),
        (b"[1, 2]", Reason.SCHEMA_VIOLATION),
        (_payload(schema="soundalert.event/2"), Reason.UNKNOWN_SCHEMA_VERSION),
        (_payload(schema="something.else/1"), Reason.SCHEMA_VIOLATION),
        (_payload(extra_field=1), Reason.SCHEMA_VIOLATION),
        (_payload(seq=-1), Reason.SCHEMA_VIOLATION),
        # Beyond 2^53 - 1 a seq no longer fits JavaScript, and at 2^63 not even SQLite: the
        # aggregator once crash-looped on such an event (issue "Never lose a fire alarm").
        (_payload(seq=2**53), Reason.SCHEMA_VIOLATION),
        (_payload(seq=9223372036854775808), Reason.SCHEMA_VIOLATION),
        (_payload(features={"big": 2**63}), Reason.SCHEMA_VIOLATION),
        (_payload(features={"deep": [[[[[[[[[[1]]]]]]]]]]}), Reason.SCHEMA_VIOLATION),
        (_payload(features={"inf": 1e400}), Reason.SCHEMA_VIOLATION),
        (_payload(window_start="2026-11-21T10:00:00"), Reason.SCHEMA_VIOLATION),
        (_payload(window_end="2026-11-21T09:00:00Z"), Reason.SCHEMA_VIOLATION),
        (b'{"labels": [{"label": "x", "score": NaN}]}', Reason.SCORE_OUT_OF_RANGE),
        (_payload(labels=[{"label": "Siren", "score": 1.5}]), Reason.SCORE_OUT_OF_RANGE),
        (_payload(labels=[{"label": "Siren", "score": -0.1}]), Reason.SCORE_OUT_OF_RANGE),
        (_payload(site="my home"), Reason.INVALID_ID),
        (_payload(node="k" * 65), Reason.INVALID_ID),
        (_payload(node="alerts"), Reason.INVALID_ID),
        (_payload(event_id="a/b"), Reason.INVALID_ID),
        (_payload(features={"pad": "x" * 70_000}), Reason.PAYLOAD_TOO_LARGE),
    ],
)
def test_each_bad_payload_has_its_reason(payload: bytes, reason: Reason) -> None:
    with pytest.raises(Rejected) as caught:
        decode(ClassificationEvent, payload)
    assert caught.value.reason is reason, caught.value.detail


def test_the_largest_safe_numbers_are_accepted() -> None:
    event = decode(ClassificationEvent, _payload(seq=2**53 - 1, features={"n": -(2**53 - 1)}))
    assert event.seq == 2**53 - 1


def test_status_figures_and_delivery_floor_are_bounded() -> None:
    base = {"site": "home", "node": "kitchen", "state": "online", "at": "2026-11-21T10:00:00Z",
            "heartbeat_s": 15}  # fmt: skip
    ok = decode(NodeStatus, json.dumps({**base, "stats": {"n": 2**53 - 1},
                                        "pending_from_seq": 17}).encode())  # fmt: skip
    assert ok.pending_from_seq == 17
    for bad in ({"stats": {"n": 2**64}}, {"pending_from_seq": 2**53}, {"pending_from_seq": -1}):
        with pytest.raises(Rejected) as caught:
            decode(NodeStatus, json.dumps({**base, **bad}).encode())
        assert caught.value.reason is Reason.SCHEMA_VIOLATION, bad


def test_delivery_ack_round_trips() -> None:
    ack = decode(
        DeliveryAck,
        b'{"schema": "soundalert.ack/1", "site": "home", "node": "kitchen", "seq": 41,'
        b' "at": "2026-11-21T10:00:00Z"}',
        ParsedTopic("ack", "home", node="kitchen"),
    )
    assert ack.seq == 41
    assert decode(DeliveryAck, ack.to_json()) == ack
    with pytest.raises(Rejected) as caught:
        decode(DeliveryAck, ack.to_json().replace(b"ack/1", b"ack/2"))
    assert caught.value.reason is Reason.UNKNOWN_SCHEMA_VERSION


def test_nan_in_a_full_event_is_a_score_error() -> None:
    text = _payload().replace(b"0.71", b"NaN")
    with pytest.raises(Rejected) as caught:
        decode(ClassificationEvent, text)
    assert caught.value.reason is Reason.SCORE_OUT_OF_RANGE


def test_topic_must_agree_with_payload() -> None:
    with pytest.raises(Rejected) as caught:
        decode(ClassificationEvent, _payload(), ParsedTopic("events", "home", node="hall"))
    assert caught.value.reason is Reason.TOPIC_MISMATCH
    with pytest.raises(Rejected) as caught:
        decode(ClassificationEvent, _payload(), ParsedTopic("events", "cabin", node="kitchen"))
    assert caught.value.reason is Reason.TOPIC_MISMATCH
    decode(ClassificationEvent, _payload(), ParsedTopic("events", "home", node="kitchen"))


def test_other_contracts_validate() -> None:
    status = NodeStatus.model_validate(
        {"schema": "soundalert.status/1", "site": "home", "node": "kitchen", "state": "online",
         "at": "2026-11-21T10:00:00Z", "heartbeat_s": 15, "software": "agent 0.1",
         "capabilities": ["yamnet"]}
    )  # fmt: skip
    assert status.state == "online"
    feedback = decode(
        Feedback,
        b'{"schema": "soundalert.feedback/1", "alert_id": "a-1", "verdict": "false_alarm",'
        b' "by": "anna", "at": "2026-11-21T10:00:00Z"}',
    )
    assert feedback.verdict == "false_alarm"
    with pytest.raises(Rejected) as caught:
        decode(Feedback, feedback.to_json().replace(b"false_alarm", b"maybe"))
    assert caught.value.reason is Reason.SCHEMA_VIOLATION
    alert = Alert.model_validate(
        {"alert_id": "smoke_alarm-000001-abcdef", "site": "home", "category": "smoke_alarm",
         "priority": "critical", "state": "raised", "location": "kitchen",
         "nodes": [{"node": "kitchen", "score": 0.7, "level_dbfs": -20}],
         "first_evidence_at": "2026-11-21T10:00:00Z", "raised_at": "2026-11-21T10:00:02Z",
         "published_at": "2026-11-21T10:00:02.1Z", "confidence": 0.7, "evidence": ["e1"]}
    )  # fmt: skip
    assert json.loads(alert.to_json())["schema"] == "soundalert.alert/1"
