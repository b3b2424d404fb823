"""Fit each model category's operating point on the corpus's tuning half, for one agent model.

``--model yamnet|mn04|both`` is what the agent runs (``soundalert agent --model``). For every
category the policy maps that model's labels to, a window's *category score* is the highest
score among the category's labels (of the window's model, the policy's label namespace) that the
agent reports (its top 10 labels scoring >= 0.05, as the agent publishes them); with ``both``
each window is two pieces of evidence, one per model, as the agent publishes two events.
Evidence is pooled over a short event-time span: the category confirms when the mean of its
``k`` best window scores within ``W`` seconds reaches ``t`` (``k = 1`` is the maximum).
Windows scoring below ``t / 2`` are not evidence at all (they neither count in the mean nor
keep an alert alive).

The search replays every tuning clip through the same rules the aggregator applies (pooled
confirmation from :func:`services.aggregator.confirm.pooled_score`, the policy's ``defer_s``,
``hold_s`` and ``cooldown_s``, suppression by a T3/T4 pattern detection in the same clip) over a
grid of ``k``, ``W`` and ``t``, and keeps, per category, the most sensitive rule whose false
alerts stay within the category's budget per hour of tuning audio:

1. the highest recall on the clips the category should find;
2. then the shortest median latency from the clip's start;
3. then the widest range of thresholds with that recall and budget, taking its middle (a
   margin on both sides for sound the fit has not heard).

A category with fewer than ``MIN_TARGETS`` targets in the tuning half is not fitted (a rule fitted
to two clips is fitted to those clips: the real smoke-alarm gate caught an alarm_beep threshold
fitted on two alarm clocks firing on a combination alarm's chirps): it keeps the rule written in
the policy, and the fit prints what that rule costs in false alerts.
The result goes to ``services/aggregator/operating_points.yaml`` (``--write``; ``--out FILE``
elsewhere), which the policy names, with what was measured; pattern categories (smoke, CO) are
not fitted. The shipped file is fitted for the agent's default model: a category's confirmation
rule is one for every model (the aggregator pools a node's windows whatever model made them), so
a node running another model gets that model's labels at the thresholds written in the policy
and the default model's rule.

    SOUNDALERT_CORPUS=/tmp/corpus python -m bench.fit_policy [--model mn04] [--write]
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import yaml

from bench.corpus.manifest import MANIFEST, Event, corpus_dir, events, read_manifest
from bench.corpus.mirror import sha256
from bench.corpus.truth import credited, excused
from bench.corpus.windows import ClipPatterns, ClipWindows, load_all, scorer
from edge.agent.labels import SCORE_DECIMALS
from edge.agent.models import DEFAULT_CHOICE, KINDS, ModelChoice
from edge.agent.pipeline import PipelineConfig
from edge.dsp.reference import SAMPLE_RATE
from services.aggregator.confirm import pooled_score
from services.aggregator.policy import DEFAULT_POLICY_PATH, CategoryPolicy, Policy

__all__ = [
    "BUDGET_PER_HOUR",
    "Evidence",
    "Rule",
    "evaluate",
    "evidence",
    "load_evidence",
    "main",
    "simulate",
]

KS: Final = (1, 2, 3)
SPANS_S: Final = (1.0, 2.0, 3.0, 4.0)
THRESHOLDS: Final = tuple(round(0.05 + 0.025 * i, 3) for i in range(37))  # 0.05 .. 0.95
HOP_S: Final = 0.48
LATE_S: Final = 6.0
"""An alert up to this long after a clip's end is still that clip's (as in the benchmark)."""
BUDGET_PER_HOUR: Final[dict[str, float]] = {"critical": 0.1, "high": 0.5, "normal": 1.0}
"""False alerts per hour of audio each category may raise, by priority."""
BUDGET_OVERRIDES: Final[dict[str, float]] = {"possible_smoke_alarm": 0.25}
"""A possible smoke alarm becomes a critical smoke alarm after 30 s unanswered."""
OPERATING_POINTS: Final = DEFAULT_POLICY_PATH.with_name("operating_points.yaml")
SMOKE_PATTERNS: Final = frozenset({"t3", "lf520"})


@dataclass(frozen=True)
class Rule:
    k: int
    within_s: float
    mean: float

    @property
    def floor(self) -> float:
        """Window scores below this are not evidence."""
        return max(0.05, round(self.mean / 2, 3))


@dataclass
class Evidence:
    """One clip as a category sees it."""

    clip: Event
    ends: npt.NDArray[np.float64]
    scores: dict[str, npt.NDArray[np.float32]]
    smoke_at: float | None
    """Event time (from the clip's start) of the first T3/520 Hz detection, if any."""
    co_at: float | None


def _reported(windows: ClipWindows, top_k: int, min_score: float) -> npt.NDArray[np.float32]:
    """What the agent publishes: each window's top-k labels scoring >= min_score, rounded."""
    scores = windows.scores.astype(np.float32)
    if scores.size == 0:
        return scores
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    keep = np.zeros_like(scores, dtype=bool)
    np.put_along_axis(keep, order, values=True, axis=1)
    kept = np.where(keep & (scores >= min_score), scores, 0.0)
    out: npt.NDArray[np.float32] = np.round(kept, SCORE_DECIMALS).astype(np.float32)
    return out


ClipData = Mapping[str, tuple[ClipWindows, ClipPatterns]]
"""Clip id -> its windows (one model's scores) and its pattern detections."""


def evidence(clips: list[Event], data: Mapping[str, ClipData], policy: Policy) -> list[Evidence]:
    """Every clip as the categories see it. ``data``: per model (source kind), every clip's
    windows; with several models each window is one piece of evidence per model, in time order
    (the models' windows are the same windows)."""
    config = PipelineConfig()
    out = []
    for clip in clips:
        ends: list[npt.NDArray[np.float64]] = []
        parts: dict[str, list[npt.NDArray[np.float32]]] = {}
        for kind, per_clip in data.items():
            windows, patterns = per_clip[clip.clip_id]
            index = {name: i for i, name in enumerate(windows.labels)}
            reported = _reported(windows, config.top_k, config.min_label_score)
            ends.append(windows.ends_s)
            for name, cat in policy.categories.items():
                if not any(cat.labels.get(k) for k in data):
                    continue
                columns = [index[label] for label in cat.labels.get(kind, {}) if label in index]
                column = (reported[:, columns].max(axis=1) if columns and reported.size
                          else np.zeros(windows.ends_s.size, dtype=np.float32))  # fmt: skip
                parts.setdefault(name, []).append(column)
        order = np.argsort(np.concatenate(ends), kind="stable")
        scores = {name: np.concatenate(columns)[order] for name, columns in parts.items()}
        smoke = [c for k, c in zip(patterns.kinds, patterns.confirmed, strict=True)
                 if k in SMOKE_PATTERNS]  # fmt: skip
        co = [c for k, c in zip(patterns.kinds, patterns.confirmed, strict=True) if k == "t4"]
        out.append(Evidence(clip, np.concatenate(ends)[order], scores,
                            min(smoke) / SAMPLE_RATE if smoke else None,
                            min(co) / SAMPLE_RATE if co else None))  # fmt: skip
    return out


def load_evidence(clips: list[Event], corpus: Path, policy: Policy, model: ModelChoice
                  ) -> tuple[list[Evidence], str]:  # fmt: skip
    """The clips' evidence for an agent running ``model`` (scores from the cache, computing what
    it lacks), and the scorers' cache keys."""
    data, keys = {}, []
    for kind in KINDS[model]:
        scoring = scorer(kind)
        data[kind] = load_all(clips, corpus, scoring)
        keys.append(scoring.key)
    return evidence(clips, data, policy), "+".join(keys)


def simulate(item: Evidence, category: str, cat: CategoryPolicy, rule: Rule) -> list[float]:
    """Raise times (event time from the clip's start) of ``category`` on one clip."""
    suppress_at = min(
        (t for name, t in (("smoke_alarm", item.smoke_at), ("co_alarm", item.co_at))
         if name in cat.suppressed_by and t is not None),
        default=math.inf,
    )  # fmt: skip
    floor = rule.floor
    defer = cat.confirm.defer_s
    raised: list[float] = []
    pending: list[tuple[float, float]] = []
    active_last: float | None = None
    cooldown_until = -math.inf
    for end, score in zip(item.ends, item.scores[category], strict=True):
        if end >= suppress_at:
            break  # the smoke or CO alarm explains the rest
        if active_last is not None and end >= active_last + cat.hold_s:
            cooldown_until = active_last + cat.cooldown_s
            active_last = None
        if score < floor:
            continue
        if active_last is not None:
            active_last = end
            continue
        if end <= cooldown_until:
            continue
        pending = [(e, s) for e, s in pending if e >= end - rule.within_s]
        pending.append((end, float(score)))
        if pooled_score([s for _, s in pending], rule.k) >= rule.mean - 1e-9:
            if end + defer >= suppress_at:
                break  # the pattern named it first
            raised.append(float(end) + defer)
            active_last = end
            pending = []
    return raised


@dataclass
class Outcome:
    targets: int = 0
    hits: int = 0
    false: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.hits / self.targets if self.targets else None

    @property
    def p50(self) -> float:
        return float(statistics.median(self.latencies)) if self.latencies else math.inf


def evaluate(items: Iterable[Evidence], category: str, cat: CategoryPolicy, rule: Rule
             ) -> Outcome:  # fmt: skip
    out = Outcome()
    for item in items:
        times = simulate(item, category, cat, rule)
        if category in credited(item.clip):
            out.targets += 1
            found = [t for t in times if t <= item.clip.seconds + LATE_S]
            if found:
                out.hits += 1
                out.latencies.append(float(found[0]))
        elif category not in excused(item.clip):
            out.false += len(times)
    return out


@dataclass(frozen=True)
class Choice:
    rule: Rule
    outcome: Outcome
    width: float


def _grid() -> Iterable[tuple[int, float]]:
    for k in KS:
        for span in SPANS_S:
            if (k - 1) * HOP_S < span:
                yield k, span


MIN_TARGETS = 10
"""Targets in the tuning half below which a category keeps its written rule."""


def choose(items: list[Evidence], category: str, cat: CategoryPolicy, allowed: int
           ) -> Choice | None:  # fmt: skip
    """The operating point by the procedure in the module's docstring; None with fewer than
    ``MIN_TARGETS`` targets."""
    if sum(category in credited(i.clip) for i in items) < MIN_TARGETS:
        return None
    best: tuple[tuple[float, ...], Choice] | None = None
    for k, span in _grid():
        outcomes = {t: evaluate(items, category, cat, Rule(k, span, t)) for t in THRESHOLDS}
        feasible = [t for t in THRESHOLDS if outcomes[t].false <= allowed]
        if not feasible:
            continue
        top = max(outcomes[t].hits for t in feasible)
        span_ts = [t for t in feasible if outcomes[t].hits == top]
        middle = (span_ts[0] + span_ts[-1]) / 2
        mean = min(span_ts, key=lambda t: (abs(t - middle), t))
        outcome = outcomes[mean]
        width = span_ts[-1] - span_ts[0]
        key = (top, -outcome.p50, width, -k, -span)
        if best is None or key > best[0]:
            best = (key, Choice(Rule(k, span, mean), outcome, width))
    if best is None:
        raise RuntimeError(f"{category}: no rule stays within {allowed} false alerts")
    return best[1]


def budget(category: str, cat: CategoryPolicy) -> float:
    return BUDGET_OVERRIDES.get(category, BUDGET_PER_HOUR[cat.priority])


def base_policy() -> Policy:
    """The shipped policy without its operating points: what the fit starts from."""
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw.pop("operating_points", None)
    return Policy.model_validate(raw)


def fitted_categories(policy: Policy, model: ModelChoice) -> list[str]:
    """The categories a fit for ``model`` sets: those with its labels and no pattern labels."""
    return [name for name, cat in policy.categories.items()
            if cat.enabled and "pattern" not in cat.labels
            and any(cat.labels.get(kind) for kind in KINDS[model])]  # fmt: skip


def fit(items: list[Evidence], policy: Policy, hours: float, model: ModelChoice = "yamnet"
        ) -> dict[str, Choice | None]:  # fmt: skip
    """Per model category: its operating point, or None (too few targets in the half)."""
    out: dict[str, Choice | None] = {}
    for name in fitted_categories(policy, model):
        cat = policy.categories[name]
        allowed = math.floor(budget(name, cat) * hours + 1e-9)
        out[name] = choose(items, name, cat, allowed)
    return out


def written_rule_false(items: list[Evidence], name: str, cat: CategoryPolicy) -> int:
    """False alerts of a category's own written rule (k-of-n counted as its pooled bound is not
    the same rule: replayed with every window of its labels at its threshold as one hit)."""
    rule = Rule(cat.confirm.windows, cat.confirm.within_s, 1.0)  # k hits of score 1
    threshold = min(r.threshold for rules in cat.labels.values() for r in rules.values())
    false = 0
    for item in items:
        if name in credited(item.clip) or name in excused(item.clip):
            continue
        hits = (item.scores[name] >= threshold).astype(np.float32)
        counted = Evidence(item.clip, item.ends, {name: hits}, item.smoke_at, item.co_at)
        false += len(simulate(counted, name, cat, rule))
    return false


def write(choices: dict[str, Choice | None], policy: Policy, hours: float, scorer: str,
          path: Path, *, model: ModelChoice = "yamnet") -> None:  # fmt: skip
    previous = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    categories = {}
    for name, choice in choices.items():
        if choice is None:
            continue
        cat = policy.categories[name]
        rule, outcome = choice.rule, choice.outcome
        measured: dict[str, float | int | str] = {
            "targets": outcome.targets,
            "recall": round(outcome.recall, 3) if outcome.recall is not None else "no targets",
            "false_alerts": outcome.false,
            "false_per_hour": round(outcome.false / hours, 2),
            "budget_per_hour": budget(name, cat),
        }
        if outcome.latencies:
            measured["latency_p50_s"] = round(outcome.p50, 2)
        categories[name] = {
            "labels": {
                kind: dict.fromkeys(cat.labels[kind], rule.floor)
                for kind in KINDS[model]
                if cat.labels.get(kind)
            },
            "confirm": {"windows": rule.k, "within_s": rule.within_s, "mean_score": rule.mean},
            "measured": measured,
        }
    document = {
        "version": int(previous.get("version", 0)) + 1,
        "fitted_by": "python -m bench.fit_policy --write",
        "procedure": {
            "corpus_manifest_sha256": sha256(MANIFEST.read_bytes()),
            "half": "tuning",
            "hours": round(hours, 3),
            "model": model,
            "scorer": scorer,
            "budget_per_hour": {**BUDGET_PER_HOUR, **BUDGET_OVERRIDES},
            "grid": {
                "windows": list(KS),
                "within_s": list(SPANS_S),
                "mean_score": [THRESHOLDS[0], THRESHOLDS[-1], 0.025],
            },
            "evidence_threshold": "mean_score / 2, at least 0.05",
            "not_fitted": sorted(n for n, c in choices.items() if c is None),
        },
        "categories": categories,
    }
    header = (
        f"# Fitted operating points for the agent's --model {model}: written by\n"
        "# `python -m bench.fit_policy --write` (see its docstring for the procedure)\n"
        "# from the tuning half of bench/corpus/manifest.csv.\n"
        "# default_policy.yaml names this file; do not edit it by hand, fit again.\n"
    )
    path.write_text(header + yaml.safe_dump(document, sort_keys=False, width=100),
                    encoding="utf-8")  # fmt: skip


def fit_model(model: ModelChoice, half: str = "tuning"
              ) -> tuple[dict[str, Choice | None], Policy, float, str, list[Evidence]]:  # fmt: skip
    """Fit ``model``'s operating points on ``half``: the choices, the policy they start from,
    the half's hours, the scorers' keys and the evidence."""
    corpus = corpus_dir()
    assert corpus is not None
    clips = [e for e in events(read_manifest()) if e.half == half]
    policy = base_policy()
    items, keys = load_evidence(clips, corpus, policy, model)
    hours = sum(c.seconds for c in clips) / 3600
    return fit(items, policy, hours, model), policy, hours, keys, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--write", action="store_true", help=f"write {OPERATING_POINTS.name}")
    parser.add_argument("--out", type=Path, default=OPERATING_POINTS,
                        help="with --write: write here instead")  # fmt: skip
    parser.add_argument("--half", default="tuning", help="fit on this half (default tuning)")
    parser.add_argument("--model", choices=list(KINDS), default=DEFAULT_CHOICE,
                        help=f"the agent's model (default {DEFAULT_CHOICE})")  # fmt: skip
    args = parser.parse_args()
    choices, policy, hours, keys, items = fit_model(args.model, args.half)
    print(f"{args.half} half: {len(items)} events, {hours:.2f} h; model {args.model} ({keys})")
    print(f"{'category':<22} {'k':>2} {'W s':>4} {'t':>6} {'targets':>7} {'recall':>7} "
          f"{'false':>5} {'false/h':>7} {'p50 s':>6}")  # fmt: skip
    for name, choice in choices.items():
        if choice is None:
            cat = policy.categories[name]
            false = written_rule_false(items, name, cat)
            print(f"{name:<22} not fitted: < {MIN_TARGETS} targets in this half; written rule "
                  f"({cat.confirm.windows} of n within {cat.confirm.within_s:g} s) raises "
                  f"{false} false ({false / hours:.2f}/h)")  # fmt: skip
            continue
        rule, outcome = choice.rule, choice.outcome
        recall = f"{outcome.recall:.0%}" if outcome.recall is not None else "-"
        p50 = f"{outcome.p50:.2f}" if outcome.latencies else "-"
        print(f"{name:<22} {rule.k:>2} {rule.within_s:>4.1f} {rule.mean:>6.3f} "
              f"{outcome.targets:>7} {recall:>7} {outcome.false:>5} "
              f"{outcome.false / hours:>7.2f} {p50:>6}")  # fmt: skip
    if args.write:
        write(choices, policy, hours, keys, args.out, model=args.model)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
