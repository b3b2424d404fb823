from __future__ import annotations

import pytest

from schemas.topics import ParsedTopic, Topics


def test_build_and_parse_round_trip() -> None:
    topics = Topics()
    assert topics.events("home", "kitchen") == "soundalert/v1/home/kitchen/events"
    assert topics.parse(topics.events("home", "kitchen")) == ParsedTopic(
        "events", "home", "kitchen"
    )
    assert topics.parse(topics.status("home", "hall")) == ParsedTopic("status", "home", "hall")
    assert topics.parse(topics.features("home", "hall")) == ParsedTopic("features", "home", "hall")
    assert topics.parse(topics.ack("home", "hall")) == ParsedTopic("ack", "home", "hall")
    assert topics.parse(topics.alerts("home")) == ParsedTopic("alerts", "home")
    assert topics.parse(topics.feedback("home")) == ParsedTopic("feedback", "home")
    assert topics.parse(topics.alert_state("home", "smoke_alarm")) == ParsedTopic(
        "alert_state", "home", category="smoke_alarm"
    )
    service = topics.parse(topics.service_status("aggregator"))
    assert service is not None
    assert service.kind == "service_status"


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/home/kitchen/events",
        "soundalert/v1/home/kitchen/unknown",
        "soundalert/v1/ho me/kitchen/events",
        "soundalert/v1/home/alerts/events",
        "soundalert/v1/home/kitchen/events/extra",
        "soundalert/v1/_services/aggregator/events",
    ],
)
def test_foreign_topics_are_not_ours(topic: str) -> None:
    assert Topics().parse(topic) is None


def test_bad_ids_are_refused_when_building() -> None:
    with pytest.raises(ValueError, match="node id"):
        Topics().events("home", "kitchen/+")


def test_custom_root() -> None:
    topics = Topics("test/abc/v1")
    assert topics.all_events == "test/abc/v1/+/+/events"
    assert topics.parse("test/abc/v1/home/kitchen/events") == ParsedTopic(
        "events", "home", "kitchen"
    )
