"""The demo recording for ``soundalert up --demo``: generated, cached, and a T3 alarm."""

from __future__ import annotations

from pathlib import Path

from edge.agent.demo import ensure_demo_recording
from edge.agent.labels import LabelMap
from edge.agent.model import DEFAULT_CLASS_MAP, YamnetModel
from edge.agent.pipeline import PatternVerdict, Pipeline, WindowVerdict
from edge.agent.sources import read_wav


def test_demo_recording_is_written_once_and_holds_a_t3_alarm(tmp_path: Path) -> None:
    path = ensure_demo_recording(tmp_path)
    stamp = path.stat().st_mtime_ns
    assert ensure_demo_recording(tmp_path) == path
    assert path.stat().st_mtime_ns == stamp, "reused, not rewritten"
    audio, rate = read_wav(path)
    assert rate == 16000
    assert audio.size == 30 * 16000
    verdicts = Pipeline(YamnetModel(), LabelMap.from_csv(DEFAULT_CLASS_MAP)).feed(audio)
    kinds = {v.detection.kind for v in verdicts if isinstance(v, PatternVerdict)}
    assert kinds == {"t3"}
    smoke = [
        v for v in verdicts
        if isinstance(v, WindowVerdict)
        and any(name == "Smoke detector, smoke alarm" and s >= 0.2 for name, s in v.labels)
    ]  # fmt: skip
    assert len(smoke) >= 3, "YAMNet hears the smoke alarm too"
