"""The agent's models side by side on the detection bench: a policy fitted for each, and each
category's recall at equal false alerts, replayed on the corpus's cached windows.

Recall at equal false alerts: for one model and one category, the rule the policy confirms
with (the fitted ``k`` and ``W``; a k-of-n rule written in the policy as ``k`` windows pooled
within its span) is replayed on every clip of the half (:func:`bench.fit_policy.evaluate`) with
its threshold swept over the fit's grid, and the most clips found with at most ``n`` false alerts
in the half is its recall at ``n``. The budget is the fit's: 0.5 false alerts per hour for a
high-priority category, 1 for a normal one, 0.25 for a possible smoke alarm, times the half's
hours, rounded down. The thresholds are chosen on the half itself (as a ROC curve is): this
measures what each model's scores can separate, the pipeline's own row what the thresholds
fitted on the tuning half give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from bench.corpus.manifest import Event, corpus_dir, events, read_manifest
from bench.fit_policy import (
    OPERATING_POINTS,
    THRESHOLDS,
    Evidence,
    Outcome,
    Rule,
    budget,
    evaluate,
    fit_model,
    fitted_categories,
    load_evidence,
    write,
)
from edge.agent.models import ModelChoice
from services.aggregator.policy import DEFAULT_POLICY_PATH, Policy, load_policy

__all__ = ["LEVELS", "EqualFalse", "compare", "equal_false", "policy_for", "print_comparison"]

LEVELS: Final = (1, 3)
"""False alerts in the half, beside the budget, at which recall is compared."""


def shipped_model() -> str:
    """The agent model the shipped operating points were fitted for."""
    raw = yaml.safe_load(OPERATING_POINTS.read_text(encoding="utf-8"))
    return str(raw.get("procedure", {}).get("model", "yamnet"))


def policy_for(model: ModelChoice, workdir: Path) -> tuple[Path | None, str]:
    """A policy with operating points fitted for ``model`` on the tuning half (``None``: the
    shipped one, fitted for it), and what it is."""
    if shipped_model() == model:
        return None, f"shipped (operating points fitted for {model})"
    if corpus_dir(required=False) is None:
        return None, f"shipped, fitted for {shipped_model()} (no corpus here to fit {model})"
    choices, policy, hours, keys, _ = fit_model(model)
    points = workdir / f"operating_points_{model}.yaml"
    write(choices, policy, hours, keys, points, model=model)
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw["operating_points"] = str(points)
    where = workdir / f"policy_{model}.yaml"
    where.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return where, f"operating points fitted for {model} on the tuning half ({points.name})"


@dataclass(frozen=True)
class EqualFalse:
    hours: float
    """Of the half's clips."""
    targets: int
    allowed: int
    """The budget, in false alerts in the half."""
    at_budget: int
    at_levels: dict[int, int]
    curve: Curve
    rule: Rule


Curve = list[tuple[float, Outcome]]


def _swept(items: list[Evidence], name: str, policy: Policy) -> tuple[Rule, Curve]:
    cat = policy.categories[name]
    base = Rule(cat.confirm.windows, cat.confirm.within_s, cat.confirm.mean_score or 0.0)
    curve = [(t, evaluate(items, name, cat, Rule(base.k, base.within_s, t))) for t in THRESHOLDS]
    return base, curve


def _most(curve: Curve, allowed: int) -> int:
    return max((o.hits for _, o in curve if o.false <= allowed), default=0)


def equal_false(model: ModelChoice, clips: list[Event], policy: Policy
                ) -> dict[str, EqualFalse]:  # fmt: skip
    """Per category of ``model`` with a target among ``clips``: recall at equal false alerts."""
    corpus = corpus_dir()
    assert corpus is not None
    hours = sum(c.seconds for c in clips) / 3600
    items, _ = load_evidence(clips, corpus, policy, model)
    out = {}
    for name in fitted_categories(policy, model):
        rule, curve = _swept(items, name, policy)
        targets = curve[0][1].targets
        if not targets:
            continue
        allowed = math.floor(budget(name, policy.categories[name]) * hours + 1e-9)
        out[name] = EqualFalse(hours, targets, allowed, _most(curve, allowed),
                               {n: _most(curve, n) for n in LEVELS}, curve, rule)  # fmt: skip
    return out


def compare(models: list[ModelChoice], half: str, policies: dict[str, Path | None]
            ) -> dict[str, dict[str, EqualFalse]]:  # fmt: skip
    clips = [e for e in events(read_manifest()) if e.half == half]
    return {m: equal_false(m, clips, load_policy(policies[m])) for m in models}


def print_comparison(tables: dict[str, dict[str, Any]], equal: dict[str, dict[str, EqualFalse]]
                     ) -> dict[str, object]:  # fmt: skip
    """Print the models side by side; return the figures (and the winner at the budget)."""
    models = list(tables)
    print(f"\n=== models side by side ({', '.join(models)}) ===")
    print("pipeline (operating points fitted on the tuning half): recall, false alerts/h")
    cats = sorted({c for t in tables.values() for c, row in _rows(t).items() if row["targets"]})
    print(f"{'category':<20} {'targets':>7} | " + " | ".join(f"{m:>16}" for m in models))
    for cat in cats:
        cells = []
        for m in models:
            row = _rows(tables[m]).get(cat, {})
            recall, false = row.get("recall"), float(row.get("false_per_hour", 0.0))
            cells.append(f"{'-' if recall is None else f'{recall:.1%}':>7} {false:>6.2f}/h")
        targets = next(int(_rows(tables[m])[cat]["targets"]) for m in models
                       if cat in _rows(tables[m]))  # fmt: skip
        print(f"{cat:<20} {targets:>7} | " + " | ".join(f"{c:>16}" for c in cells))
    print(f"{'all false alerts/h':<28} | " + " | ".join(
        f"{float(tables[m]['false_per_hour_all']):>16.2f}" for m in models))  # fmt: skip
    figures: dict[str, object] = {}
    if not any(equal.values()):
        return figures
    hours = next(e.hours for table in equal.values() for e in table.values())
    print(
        f"\nrecall at equal false alerts (threshold swept on the half, {hours:.2f} h; the "
        f"budget: {', '.join(f'{n} false = {n / hours:.1f}/h' for n in (0, *LEVELS))})"
    )
    print(f"{'category':<20} {'targets':>7} {'budget':>6} | "
          + " | ".join(f"{m + ' @budget/1/3':>20}" for m in models))  # fmt: skip
    names = sorted({c for table in equal.values() for c in table})
    totals = dict.fromkeys(models, 0)
    for cat in names:
        first = next(equal[m][cat] for m in models if cat in equal[m])
        cells = []
        for m in models:
            found = equal[m].get(cat)
            if found is None:
                cells.append(f"{'-':>20}")
                continue
            totals[m] += found.at_budget
            at = "/".join(str(found.at_levels[n]) for n in LEVELS)
            cells.append(f"{found.at_budget:>11} /{at:>7}")
        print(f"{cat:<20} {first.targets:>7} {first.allowed:>6} | " + " | ".join(cells))
    targets = sum(next(equal[m][c] for m in models if c in equal[m]).targets for c in names)
    print(f"{'found at the budget':<35} | " + " | ".join(
        f"{f'{totals[m]}/{targets}':>20}" for m in models))  # fmt: skip
    best = max(totals.values())
    winners = [m for m in models if totals[m] == best]
    print(f"higher recall at the budget: {', '.join(winners)} ({best} of {targets} found)")
    figures["equal_false"] = {
        m: {c: {"targets": e.targets, "allowed": e.allowed, "at_budget": e.at_budget,
                "at_levels": e.at_levels, "rule_k": e.rule.k, "rule_within_s": e.rule.within_s}
            for c, e in equal[m].items()}
        for m in models
    }  # fmt: skip
    figures["found_at_budget"] = totals
    figures["targets_at_budget"] = targets
    figures["winners_at_budget"] = winners
    return figures


def _rows(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = table["categories"]
    return rows
