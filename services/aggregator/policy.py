"""Per-category alert policy: which (kind, label) pairs count, how much, and what follows.

The policy is the single source of truth that maps node labels to categories, so changing it
never means re-flashing or redeploying nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.common import ID_PATTERN
from schemas.messages import Priority

__all__ = [
    "DEFAULT_POLICY_PATH",
    "CategoryPolicy",
    "Confirm",
    "FittedConfirm",
    "LabelRule",
    "OperatingPoint",
    "OperatingPoints",
    "Policy",
    "Upgrade",
    "load_policy",
]

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")
CategoryId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelRule(_Config):
    threshold: float = Field(ge=0.0, le=1.0, description="Minimum score for a window to count.")
    weight: int = Field(
        default=1,
        ge=1,
        le=100,
        description="How many windows one hit counts as. A temporal-pattern detector that has "
        "already integrated seconds of audio can confirm on its own (weight >= windows).",
    )


class Confirm(_Config):
    windows: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Weighted hits needed (k of n windows); with mean_score, how many of the "
        "best windows are pooled.",
    )
    within_s: float = Field(
        default=1.0, gt=0, le=600, description="...within this many seconds of event time."
    )
    mean_score: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Pooled evidence: the category confirms when the mean of its `windows` "
        "highest window scores within `within_s` (a window below the label threshold counts "
        "as 0) reaches this. Unset: weighted hits are counted (k of n).",
    )
    defer_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="Then wait this long (event time) before raising, so that a category in "
        "suppressed_by whose detector needs a few seconds (a T3 pattern) can name the sound "
        "first. The alert's raised_at includes the wait.",
    )


class Upgrade(_Config):
    to: CategoryId = Field(description="The category this alert becomes: smoke_alarm.")
    after_s: float = Field(
        gt=0,
        le=3600,
        description="...when its evidence still arrives this long (event time) after its first "
        "window and nobody has acknowledged it.",
    )


class CategoryPolicy(_Config):
    title: str = Field(description="What a person reads: 'Smoke alarm'.")
    enabled: bool = Field(default=True, description="Disabled categories never alert.")
    priority: Priority = Field(description="critical alerts repeat until acknowledged.")
    labels: dict[str, dict[str, LabelRule]] = Field(
        description="Source kind -> model label -> rule. Labels are the model's own names."
    )
    confirm: Confirm = Field(default_factory=Confirm, description="Confirmation rule.")
    hold_s: float = Field(
        default=6.0, gt=0, le=3600, description="Event-time silence after which the sound ended."
    )
    cooldown_s: float = Field(
        default=30.0, ge=0, le=86400, description="After an alert ends, no new one for this long."
    )
    escalation_interval_s: float | None = Field(
        default=None,
        gt=0,
        description="Repeat an unacknowledged alert this often (wall clock); critical only.",
    )
    suppressed_by: list[CategoryId] = Field(
        default_factory=list,
        description="Categories that explain this one: while one of them is active, or has "
        "recent evidence, at the same site, this category raises nothing (an alarm clock's "
        "'beep' inside a smoke alarm), and an alert of this category already raised is closed "
        "as superseded when one of them is raised.",
    )
    upgrade: Upgrade | None = Field(
        default=None,
        description="A weaker reading of a sound that becomes the stronger category when it "
        "keeps sounding unanswered: a possible smoke alarm nobody acknowledges for 30 s is "
        "raised as a smoke alarm. While that category is active, this one's evidence is its.",
    )
    color: str = Field(default="#1f4e9c", description="Display and light colour.")
    icon: str = Field(default="bell", description="Display icon name.")

    @model_validator(mode="after")
    def _critical_repeats(self) -> CategoryPolicy:
        if self.priority == "critical" and self.escalation_interval_s is None:
            raise ValueError("a critical category needs escalation_interval_s")
        return self


class Policy(_Config):
    reorder_bound_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Events this far behind their node's event-time watermark are late: "
        "stored and counted, but they raise nothing.",
    )
    delayed_after_s: float = Field(
        default=30.0, ge=0, description="Alerts published this long after the sound say so."
    )
    max_clock_ahead_s: float = Field(
        default=120.0,
        ge=1,
        le=86400,
        description="Events whose window ends this far after the aggregator's clock are "
        "rejected (clock_skew): their node's clock is wrong, and letting them in would move its "
        "watermark into the future and make every later event late.",
    )
    heartbeat_misses: int = Field(
        default=3, ge=1, le=100, description="Missed heartbeats before a node is offline."
    )
    default_heartbeat_s: float = Field(
        default=15.0, gt=0, description="Heartbeat assumed for nodes that never sent a status."
    )
    max_evidence: int = Field(default=50, ge=1, le=500, description="Event ids kept per alert.")
    operating_points: str | None = Field(
        default=None,
        description="A file (relative to this one, or absolute; bench/fit_policy.py writes "
        "the shipped one beside default_policy.yaml) whose fitted label thresholds and "
        "confirmation rules replace the ones here, category by category. A copy of the policy "
        "elsewhere names it by its absolute path, or copies it too.",
    )
    categories: dict[CategoryId, CategoryPolicy]

    @model_validator(mode="after")
    def _suppressors_exist(self) -> Policy:
        for name, cat in self.categories.items():
            unknown = [s for s in cat.suppressed_by if s not in self.categories]
            if unknown:
                raise ValueError(f"{name}.suppressed_by names unknown categories {unknown}")
            if cat.upgrade is not None and cat.upgrade.to not in cat.suppressed_by:
                raise ValueError(
                    f"{name}.upgrade.to must be one of its suppressed_by categories (raising "
                    f"{cat.upgrade.to!r} closes the {name} alert it replaces)"
                )
        return self

    def label_index(self) -> dict[tuple[str, str], list[tuple[str, LabelRule]]]:
        """(kind, label) -> [(category, rule)], for enabled categories."""
        index: dict[tuple[str, str], list[tuple[str, LabelRule]]] = {}
        for category, cat in self.categories.items():
            if not cat.enabled:
                continue
            for kind, rules in cat.labels.items():
                for label, rule in rules.items():
                    index.setdefault((kind, label), []).append((category, rule))
        return index


class FittedConfirm(_Config):
    windows: int = Field(ge=1, le=100, description="How many of the best windows are pooled.")
    within_s: float = Field(gt=0, le=600, description="Event-time span they fall in.")
    mean_score: float = Field(gt=0, le=1, description="The pooled mean that confirms.")


class OperatingPoint(_Config):
    labels: dict[str, dict[str, float]] = Field(
        description="Source kind -> label -> threshold (the window score that counts as "
        "evidence at all). Every label must be one of the category's labels in the policy."
    )
    confirm: FittedConfirm = Field(description="The fitted confirmation rule.")
    measured: dict[str, float | int | str] = Field(
        default_factory=dict, description="What the fit measured on the tuning half."
    )


class OperatingPoints(_Config):
    version: int = Field(ge=1, description="Bumped by every fit.")
    fitted_by: str = Field(description="The command that wrote the file.")
    procedure: dict[str, object] = Field(
        default_factory=dict, description="Corpus, model, false-alert budgets, search grid."
    )
    categories: dict[CategoryId, OperatingPoint]


def _read(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read policy file {path}: {exc}") from exc


def _apply(raw: dict[str, object], points: OperatingPoints, where: Path) -> None:
    categories = raw.get("categories")
    if not isinstance(categories, dict):
        return  # the policy's own validation says what is wrong
    for name, point in points.categories.items():
        cat = categories.get(name)
        if name not in categories or not isinstance(cat, dict):
            raise ValueError(f"{where}: category {name!r} is not in the policy")
        labels = cat.get("labels") or {}
        for kind, thresholds in point.labels.items():
            for label, threshold in thresholds.items():
                rule = labels.get(kind, {}).get(label) if isinstance(labels, dict) else None
                if not isinstance(rule, dict):
                    raise ValueError(  # noqa: TRY004 - a wrong file, not a wrong type
                        f"{where}: {name} has no {kind} label {label!r} in the policy; "
                        "the fit only sets thresholds of the policy's labels"
                    )
                rule["threshold"] = threshold
        confirm = dict(cat.get("confirm") or {})
        confirm.update(point.confirm.model_dump())
        cat["confirm"] = confirm


def load_policy(path: Path | None = None) -> Policy:
    """Load a policy file (YAML or JSON) and the operating points it names; raises
    ``ValueError`` with the file and the field."""
    path = path or DEFAULT_POLICY_PATH
    raw = _read(path)
    if isinstance(raw, dict) and raw.get("operating_points"):
        where = path.parent / str(raw["operating_points"])  # relative to the policy, or absolute
        try:
            points = OperatingPoints.model_validate(_read(where))
        except ValueError as exc:
            raise ValueError(f"invalid operating points {where}:\n{exc}") from exc
        _apply(raw, points, where)
    try:
        return Policy.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"invalid policy file {path}:\n{exc}") from exc
