"""Settings: config file < environment < flags, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.aggregator.policy import load_policy
from services.aggregator.settings import AggregatorSettings
from soundalert.mqtt import BrokerUrl
from soundalert.settings import ConfigError, load_settings


def test_precedence_is_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "aggregator.yaml"
    config.write_text("broker: mqtt://file:1883\ntick_s: 0.5\nmetrics_port: 9000\n")
    monkeypatch.setenv("SOUNDALERT_TICK_S", "0.25")
    monkeypatch.setenv("SOUNDALERT_METRICS_PORT", "9001")
    settings = load_settings(AggregatorSettings, config, metrics_port=9002, broker=None)
    assert settings.broker == "mqtt://file:1883"  # file (no env, flag left unset)
    assert settings.tick_s == 0.25  # environment over file
    assert settings.metrics_port == 9002  # flag over environment


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "aggregator.yaml"
    config.write_text("brokr: mqtt://x\n")
    with pytest.raises(ConfigError, match=r"brokr: Extra inputs are not permitted"):
        load_settings(AggregatorSettings, config)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUNDALERT_TICK_S", "soon")
    with pytest.raises(ConfigError, match=r"SOUNDALERT_TICK_S"):
        load_settings(AggregatorSettings, None)


def test_bad_broker_url_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match=r"scheme must be mqtt:// or mqtts://"):
        load_settings(AggregatorSettings, None, broker="http://localhost")


def test_unreadable_config_file_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("broker: [unclosed\n")
    with pytest.raises(ConfigError, match=r"cannot read config file"):
        load_settings(AggregatorSettings, config)


def test_broker_urls() -> None:
    url = BrokerUrl.parse("mqtts://anna:p%40ss@hub.local?version=5")
    assert (url.host, url.port, url.username, url.password, url.tls) == (
        "hub.local", 8883, "anna", "p@ss", True,
    )  # fmt: skip
    assert "p@ss" not in repr(url)
    assert str(url) == "mqtts://anna@hub.local:8883"


def test_invalid_policy_file_names_the_field(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "categories:\n  smoke_alarm:\n    title: Smoke\n    priority: critical\n"
        "    labels: {yamnet: {Smoke: {threshold: 2}}}\n"
    )
    with pytest.raises(ValueError, match=r"threshold") as caught:
        load_policy(policy)
    assert str(policy) in str(caught.value)
