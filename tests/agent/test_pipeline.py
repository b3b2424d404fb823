"""The pure core with a fake classifier: gating, labels, pattern verdicts, events, floors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from edge.agent.events import EventBuilder, reportable, yamnet_source
from edge.agent.labels import LabelMap
from edge.agent.pipeline import (
    PatternVerdict,
    Pipeline,
    PipelineConfig,
    Verdict,
    WindowVerdict,
)
from edge.dsp import synth
from schemas.decode import decode
from schemas.messages import ClassificationEvent

NAMES = LabelMap(("Silence", "Smoke detector, smoke alarm", "Speech"))
START = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class _Out:
    scores: npt.NDArray[np.float32]
    logmel: npt.NDArray[np.float32] | None


class FakeModel:
    """Scores 'smoke' by the window's level, so loud windows look like alarms."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, window: npt.NDArray[np.float32]) -> _Out:
        self.calls += 1
        loud = float(np.sqrt(np.mean(window**2))) > 0.05
        scores = np.array([0.1, 0.8 if loud else 0.0, 0.3], dtype=np.float32)
        return _Out(scores, np.zeros((96, 64), dtype=np.float32))


def test_quiet_windows_skip_inference_but_report_their_level() -> None:
    model = FakeModel()
    pipeline = Pipeline(model, NAMES, PipelineConfig(gate_dbfs=-60, patterns=False))
    quiet = np.full(16000 * 3, 1e-4, dtype=np.float32)  # -80 dBFS
    verdicts = pipeline.feed(quiet)
    assert verdicts
    assert model.calls == 0
    assert all(isinstance(v, WindowVerdict) and v.gated and not v.labels for v in verdicts)
    assert all(v.level_dbfs == pytest.approx(-80.0, abs=0.1) for v in verdicts)  # type: ignore[union-attr]
    stats = pipeline.take_stats().summary()
    assert stats["windows_gated"] == len(verdicts)
    assert stats["level_dbfs"] == pytest.approx(-80.0, abs=0.1)
    assert "inference_ms_mean" not in stats


def test_loud_windows_get_top_labels_and_timings() -> None:
    ticks = iter(float(i) * 0.001 for i in range(1000))
    pipeline = Pipeline(FakeModel(), NAMES, PipelineConfig(top_k=2, patterns=False),
                        timer=lambda: next(ticks))  # fmt: skip
    verdicts = pipeline.feed(0.5 * synth.sine(1000, 16000 * 2).astype(np.float32))
    window = verdicts[0]
    assert isinstance(window, WindowVerdict)
    assert window.labels == [("Smoke detector, smoke alarm", 0.8), ("Speech", 0.3)]
    assert window.inference_s == pytest.approx(0.001)
    assert pipeline.take_stats().summary()["inference_ms_mean"] == pytest.approx(1.0)


def test_features_add_bands_and_dominant_frequency() -> None:
    pipeline = Pipeline(FakeModel(), NAMES, PipelineConfig(features=True, patterns=False))
    (window, *_) = pipeline.feed(0.5 * synth.sine(3000, 16000).astype(np.float32))
    assert isinstance(window, WindowVerdict)
    assert window.features["dominant_hz"] == pytest.approx(3000, abs=2)
    assert len(window.features["logmel_bands"]) == 8  # type: ignore[arg-type]


def test_a_t3_alarm_gives_pattern_verdicts_beside_the_windows() -> None:
    rng = np.random.default_rng(3)
    background = rng.normal(0, 0.01, 16000 * 20)
    mix = synth.mix_at_snr(synth.t3(cycles=3), background, 10.0, offset=16000 * 3)
    pipeline = Pipeline(FakeModel(), NAMES)
    verdicts = []
    for at in range(0, mix.size, 1600):
        verdicts += pipeline.feed(synth.to_int16(mix[at : at + 1600]))
    patterns = [v for v in verdicts if isinstance(v, PatternVerdict)]
    assert {p.detection.kind for p in patterns} == {"t3"}
    assert len(patterns) >= 2
    assert patterns[0].detection.onset_seconds == pytest.approx(3.0, abs=0.05)


def test_the_verdicts_and_their_order_do_not_depend_on_how_the_stream_is_cut() -> None:
    """The agent feeds its pipeline once per window hop (at each window's end), not per 0.1 s
    block: the same verdicts come out, in the order they were decided."""
    rng = np.random.default_rng(3)
    mix = synth.mix_at_snr(synth.t3(cycles=3), rng.normal(0, 0.01, 16000 * 16), 10.0,
                           offset=16000 * 2)  # fmt: skip
    x = synth.to_int16(mix)

    def blocks(size: int) -> list[Verdict]:
        pipeline = Pipeline(FakeModel(), NAMES, timer=lambda: 0.0)
        return [v for at in range(0, x.size, size) for v in pipeline.feed(x[at : at + size])]

    pipeline = Pipeline(FakeModel(), NAMES, timer=lambda: 0.0)
    at_window_ends: list[Verdict] = []
    at = 0
    while at < x.size:
        cut = min(x.size, at + pipeline.samples_to_window)
        at_window_ends += pipeline.feed(x[at:cut])
        at = cut
    by_block = blocks(1600)
    assert any(isinstance(v, PatternVerdict) for v in by_block)
    assert at_window_ends == by_block == blocks(1000)
    decided = [v.end_sample if isinstance(v, WindowVerdict) else v.detection.confirmed_sample
               for v in by_block]  # fmt: skip
    assert decided == sorted(decided)


def test_events_have_stable_ids_event_time_and_a_shared_sequence() -> None:
    rng = np.random.default_rng(3)
    mix = synth.mix_at_snr(synth.t3(cycles=2), rng.normal(0, 0.01, 16000 * 12), 10.0,
                           offset=16000 * 2)  # fmt: skip

    def run() -> list[ClassificationEvent]:
        pipeline = Pipeline(FakeModel(), NAMES)
        builder = EventBuilder("home", "kitchen", START, yamnet_source("abc"), next_seq=5)
        return [builder.build(v) for v in pipeline.feed(mix)]

    events = run()
    assert [e.event_id for e in events] == [e.event_id for e in run()], "replays are identical"
    assert len({e.event_id for e in events}) == len(events)
    assert [e.seq for e in events] == list(range(5, 5 + len(events)))
    window = next(e for e in events if e.source.kind == "yamnet")
    assert window.event_id == f"kitchen.{int(START.timestamp() * 1000)}.0"
    assert window.window_start == START
    assert (window.window_end - window.window_start).total_seconds() == pytest.approx(0.975)
    pattern = next(e for e in events if e.source.kind == "pattern")
    assert pattern.labels[0].label == "t3"
    assert ".t3." in pattern.event_id
    assert (pattern.window_start - START).total_seconds() == pytest.approx(2.0, abs=0.05)
    for event in events:  # every event passes the one validator the aggregator uses
        assert decode(ClassificationEvent, event.to_json()) == event


def test_report_floor_keeps_patterns_and_confident_windows() -> None:
    loud = WindowVerdict(0, 0, 15600, -10.0, False, [("Speech", 0.7)], 0.001)
    quiet = WindowVerdict(1, 7680, 23280, -90.0, True, [], None)
    assert reportable(loud, None)
    assert reportable(quiet, None)
    assert reportable(loud, 0.5)
    assert not reportable(quiet, 0.5)
    assert not reportable(loud, 0.8)
