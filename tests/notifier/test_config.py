"""The shipped example config stays valid, and secrets stay out of logs."""

from __future__ import annotations

from pathlib import Path

import services.notifier
from services.notifier.config import NotifierSettings
from services.notifier.service import NotifierService
from soundalert.settings import load_settings

EXAMPLE = Path(services.notifier.__file__).with_name("example.yaml")


def test_the_example_config_loads_and_builds_every_channel(tmp_path: Path) -> None:
    settings = load_settings(NotifierSettings, EXAMPLE, state_dir=tmp_path)
    home = settings.sites["home"]
    assert set(home.channels) == {"phone", "bedroom_bulb", "home_assistant", "caregiver"}
    assert home.escalation is not None
    assert home.escalation.channels == ["caregiver"]
    service = NotifierService(settings)  # Apprise accepts every URL
    # One worker per channel, and per URL of an Apprise channel of several.
    expected = set()
    for name, channel in home.channels.items():
        urls = len(getattr(channel, "urls", [None]))
        expected |= (
            {f"home/{name}#{n}" for n in range(1, urls + 1)} if urls > 1 else {f"home/{name}"}
        )
    assert set(service.workers) == expected
    service.store.close()
    text = repr(settings)
    assert "change-me-too" not in text
    assert "app-password" not in text
