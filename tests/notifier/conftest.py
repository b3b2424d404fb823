"""Fixtures for notifier tests: settings builders for the notifier and a real aggregator."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.aggregator.settings import AggregatorSettings
from services.notifier.config import NotifierSettings
from tests.support.nats import Broker
from tests.support.policy import quick_policy_file

NotifierFactory = Callable[..., NotifierSettings]


@pytest.fixture
def make_notifier_settings(mqtt_broker: Broker, topic_root: str, tmp_path: Path
                           ) -> NotifierFactory:  # fmt: skip
    client_id = f"notifier-{uuid.uuid4().hex[:8]}"

    def build(sites: dict[str, Any], **extra: Any) -> NotifierSettings:
        values: dict[str, Any] = {
            "broker": mqtt_broker.url("service"),
            "topic_root": topic_root,
            "state_dir": tmp_path / "notifier",
            "client_id": client_id,
            "tick_s": 0.1,
            "sites": sites,
            **extra,
        }
        return NotifierSettings.model_validate(values)

    return build


@pytest.fixture
def agg_settings(mqtt_broker: Broker, topic_root: str, tmp_path: Path) -> AggregatorSettings:
    return AggregatorSettings(
        broker=mqtt_broker.url("service"),
        topic_root=topic_root,
        state_dir=tmp_path / "aggregator",
        policy_file=quick_policy_file(tmp_path / "policy"),
        tick_s=0.2,
        client_id=f"agg-{uuid.uuid4().hex[:8]}",
    )
