"""The corpus tools' pure parts: the split by recorder, events, the absent-corpus message, and
the fit's replay of a category against the real aggregator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.corpus.manifest import CORPUS_ENV, Clip, CorpusMissingError, corpus_dir, events
from bench.corpus.sources import split
from bench.corpus.windows import ClipPatterns, ClipWindows
from bench.fit_policy import Evidence, Rule, evidence, simulate
from schemas.messages import Alert
from services.aggregator.policy import Policy
from tests.aggregator.factories import HOP, T0, WINDOW, event, make_aggregator
from tests.support.policy import quick_policy


def _clip(clip_id: str, recorder: str, category: str = "knock", note: str = "",
          source: str | None = None) -> Clip:  # fmt: skip
    return Clip(clip_id, "", category, "knocking", "o/r", "c" * 40, f"{clip_id}.wav", "0" * 64,
                "CC0", source or clip_id, recorder, 1.0, note)  # fmt: skip


def test_no_recorder_is_in_both_halves_and_each_category_is_in_both() -> None:
    clips = [_clip(f"{r}-{i}", r) for r in ("a", "b", "c", "d") for i in range(1 + ord(r) % 3)]
    clips += [_clip("e-0", "e", "glass_break"), _clip("f-0", "f", "glass_break")]
    halves = split(clips, {})
    by_recorder: dict[str, set[str]] = {}
    for clip in halves:
        by_recorder.setdefault(clip.recorder, set()).add(clip.half)
    assert all(len(h) == 1 for h in by_recorder.values())
    for category in ("knock", "glass_break"):
        assert {c.half for c in halves if c.category == category} == {"tuning", "validation"}


def test_recorders_already_split_keep_their_half() -> None:
    clips = [_clip("a-0", "a"), _clip("b-0", "b"), _clip("c-0", "c")]
    first = {c.recorder: c.half for c in split(clips, {})}
    flipped = {r: "tuning" if h == "validation" else "validation" for r, h in first.items()}
    assert {c.recorder: c.half for c in split(clips, flipped)} == flipped


def test_the_chunks_of_one_recording_are_one_event_in_order() -> None:
    chunks = [_clip(f"g{i}", "ei-1", "glass_break", f"chunk {i} of its recording", "ei-1")
              for i in (3, 0, 1)]  # fmt: skip
    clips = [replace(c, half="tuning") for c in [*chunks, _clip("k", "x")]]
    joined, single = events(clips)
    assert [p.clip_id for p in joined.parts] == ["g0", "g1", "g3"]
    assert joined.seconds == 3.0
    assert single.parts == (clips[3],)


def test_an_absent_corpus_says_how_to_rebuild_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CORPUS_ENV, raising=False)
    assert corpus_dir(required=False) is None
    with pytest.raises(CorpusMissingError, match=r"not set.*bench\.corpus\.build"):
        corpus_dir()


SCORES = [0.1, 0.5, 0.2, 0.0, 0.0, 0.6, 0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
          0.0, 0.0, 0.0, 0.9, 0.8, 0.0]  # fmt: skip


def test_the_fit_replays_a_category_as_the_aggregator_decides_it() -> None:
    """Pooled confirmation, the evidence threshold, hold and cooldown: the fit's replay raises
    doorbell at the same event times as the real aggregator on the same windows."""
    rule = Rule(k=2, within_s=1.0, mean=0.5)
    raw = quick_policy().model_dump()
    doorbell = raw["categories"]["doorbell"]
    doorbell["labels"]["yamnet"] = {"Doorbell": {"threshold": rule.floor}}
    doorbell["confirm"] = {"windows": rule.k, "within_s": rule.within_s, "mean_score": rule.mean}
    doorbell["cooldown_s"] = 4.0
    policy = Policy.model_validate(raw)
    agg = make_aggregator(policy=policy)
    raised: list[Alert] = []
    for i, score in enumerate(SCORES):
        raised += [a for a in agg.handle_event(event(i, label="Doorbell", score=score),
                                               T0.timestamp()) if a.state == "raised"]  # fmt: skip
    ends = np.array([HOP * i + WINDOW for i in range(len(SCORES))])
    [target] = events([replace(_clip("d", "r", "doorbell"), half="tuning")])
    item = Evidence(target, ends, {"doorbell": np.array(SCORES)}, None, None)
    replayed = simulate(item, "doorbell", policy.categories["doorbell"], rule)
    assert [round((a.raised_at - T0).total_seconds(), 3) for a in raised] == [
        round(t, 3) for t in replayed
    ]
    assert len(replayed) == 2  # after the first: hold, cooldown, then a new one


MN04 = [0.0, 0.3, 0.4, 0.0, 0.0, 0.2, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.6, 0.7]  # fmt: skip


def _windows(scores: list[float], labels: tuple[str, ...]) -> ClipWindows:
    table = np.zeros((len(scores), len(labels)), dtype=np.float16)
    table[:, labels.index("Doorbell")] = scores
    starts = np.arange(len(scores), dtype=np.int64) * round(HOP * 16000)
    return ClipWindows(starts, np.zeros(len(scores), np.float32), table,
                       np.zeros(len(scores), dtype=bool), labels)  # fmt: skip


def test_two_models_are_pooled_as_the_aggregator_pools_a_node_running_both() -> None:
    """With --model both, every window is two events (one per model, each under its own kind):
    the fit's evidence interleaves them and its replay raises where the aggregator does."""
    rule = Rule(k=3, within_s=1.5, mean=0.45)
    raw = quick_policy().model_dump()
    doorbell = raw["categories"]["doorbell"]
    doorbell["labels"] = {kind: {"Doorbell": {"threshold": rule.floor}}
                          for kind in ("yamnet", "mn04")}  # fmt: skip
    doorbell["confirm"] = {"windows": rule.k, "within_s": rule.within_s, "mean_score": rule.mean}
    doorbell["cooldown_s"] = 4.0
    policy = Policy.model_validate(raw)
    agg = make_aggregator(policy=policy)
    raised: list[Alert] = []
    for i, (first, second) in enumerate(zip(SCORES, MN04, strict=True)):
        for kind, score in (("yamnet", first), ("mn04", second)):
            raised += [a for a in agg.handle_event(
                event(i, label="Doorbell", score=score, kind=kind), T0.timestamp())
                if a.state == "raised"]  # fmt: skip
    [target] = events([replace(_clip("d", "r", "doorbell"), half="tuning")])
    patterns = ClipPatterns((), np.zeros(0, np.int64), np.zeros(0, np.int64),
                            np.zeros(0, np.float32))  # fmt: skip
    labels = ("Speech", "Doorbell")
    data = {kind: {"d": (_windows(scores, labels), patterns)}
            for kind, scores in (("yamnet", SCORES), ("mn04", MN04))}  # fmt: skip
    (item,) = evidence([target], data, policy)
    assert item.ends.size == 2 * len(SCORES)
    assert np.array_equal(item.ends[::2], item.ends[1::2])
    assert np.allclose(item.scores["doorbell"][::2], SCORES, atol=1e-3)
    assert np.allclose(item.scores["doorbell"][1::2], MN04, atol=1e-3)
    replayed = simulate(item, "doorbell", policy.categories["doorbell"], rule)
    assert [round((a.raised_at - T0).total_seconds(), 3) for a in raised] == [
        round(t - (item.ends[0] - WINDOW), 3) for t in replayed
    ]
    alone = evidence([target], {"yamnet": data["yamnet"]}, policy)[0]
    assert len(simulate(alone, "doorbell", policy.categories["doorbell"], rule)) < len(replayed)
