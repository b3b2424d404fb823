"""A test policy: the shipped one, with the short confirmations the tests are written against.

The shipped smoke and doorbell rules are tuned on the detection benchmark (smoke by YAMNet alone
needs 6 windows within 10 s, a doorbell 2 windows within 3 s) and may be tuned again. Tests of
the machinery (k-of-n confirmation, restarts, delivery, notification) should not change when
that tuning does, so they run on this policy: smoke confirms on 3 YAMNet windows within 5 s, a
doorbell on one window. Tests of the shipped tuning itself load ``load_policy()``.
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
}


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    for name, confirm in QUICK_CONFIRM.items():
        raw["categories"][name]["confirm"] = dict(confirm)
    return raw


def quick_policy() -> Policy:
    return Policy.model_validate(_raw())


def quick_policy_file(directory: Path) -> Path:
    """Write the quick policy as YAML into ``directory`` (for services that take a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "quick_policy.yaml"
    path.write_text(yaml.safe_dump(_raw(), sort_keys=False), encoding="utf-8")
    return path
