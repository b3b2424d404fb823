"""A test policy: the shipped one, with the short confirmations the tests are written against.

The shipped smoke rules are tuned on the detection benchmark (a smoke alarm is a T3 or 520 Hz
pattern detection; YAMNet alone raises a "possible smoke alarm" after 4 windows within 6 s and
a 6 s wait, a smoke alarm if it keeps sounding unanswered; a doorbell needs 2 windows within 3 s)
and may be tuned again. Tests of the machinery (k-of-n confirmation, restarts, delivery,
notification) should not change when that tuning does, so they run on this policy: the
hand-written rules of default_policy.yaml without the fitted operating points it names, smoke
confirms on 3 YAMNet windows within 5 s (or one pattern detection), there is no possible-smoke
tier, a doorbell confirms on one window, and alarm beeps and car horns are not held back.
Tests of the shipped tuning itself load ``load_policy()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from services.aggregator.policy import DEFAULT_POLICY_PATH, Policy

__all__ = ["QUICK_CONFIRM", "quick_policy", "quick_policy_file"]

QUICK_CONFIRM: Final[dict[str, dict[str, float]]] = {
    "smoke_alarm": {"windows": 3, "within_s": 5},
    "doorbell": {"windows": 1, "within_s": 1},
    # Shipped: held 4 s for the pattern detectors (a real alarm is "an alarm" or "a car horn"
    # to YAMNet before its pattern is whole).
    "alarm_beep": {"windows": 2, "within_s": 3},
    "car_horn": {"windows": 2, "within_s": 2},
}


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw.pop("operating_points", None)
    categories = raw["categories"]
    possible = categories.pop("possible_smoke_alarm")
    smoke = categories["smoke_alarm"]
    smoke["labels"]["yamnet"] = possible["labels"]["yamnet"]
    for rule in smoke["labels"]["pattern"].values():
        rule["weight"] = QUICK_CONFIRM["smoke_alarm"]["windows"]
    for cat in categories.values():
        if "suppressed_by" in cat:
            cat["suppressed_by"] = [c for c in cat["suppressed_by"] if c in categories]
    for name, confirm in QUICK_CONFIRM.items():
        categories[name]["confirm"] = dict(confirm)
    return raw


def quick_policy() -> Policy:
    return Policy.model_validate(_raw())


def quick_policy_file(directory: Path) -> Path:
    """Write the quick policy as YAML into ``directory`` (for services that take a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "quick_policy.yaml"
    path.write_text(yaml.safe_dump(_raw(), sort_keys=False), encoding="utf-8")
    return path
