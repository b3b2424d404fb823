"""The phone agent's pure JS core against the Python agent it ports (issue 7).

Writes what ``edge/agent`` computes (windows and levels, top-k labels, the class map, event
documents) for fixed inputs, then runs ``tests/web/agent/core.test.mjs`` under node, which
checks ``services/web/static/agent/core.js`` gives the same.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.agent.events import EventBuilder, yamnet_source
from edge.agent.labels import LabelMap, top_labels
from edge.agent.model import DEFAULT_CLASS_MAP
from edge.agent.pipeline import WindowVerdict
from edge.agent.windowing import Windower, hop_samples
from schemas.messages import ClassificationEvent

ROOT = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).with_name("agent") / "core.test.mjs"
NODE = shutil.which("node")


def _windowing(rng: np.random.Generator) -> dict[str, Any]:
    signal = (rng.normal(0, 0.1, 40_000) * np.linspace(0, 1, 40_000)).astype(np.float32)
    signal[:3000] = 0.0  # a silent start: the level floor
    blocks = [int(b) for b in rng.integers(1, 9000, 40)]
    windower = Windower(hop_samples(0.48))
    windows: list[list[float]] = []
    at = 0
    for size in blocks:
        windows.extend(
            [w.index, w.start_sample, w.level_dbfs, float(w.samples[0]), float(w.samples[-1])]
            for w in windower.feed(signal[at : at + size])
        )
        at += size
    assert len(windows) >= 3
    return {"signal": signal.tolist(), "blocks": blocks, "hop_s": 0.48, "windows": windows}


def _labels(rng: np.random.Generator, names: LabelMap) -> dict[str, Any]:
    cases = []
    for k, min_score in ((10, 0.05), (3, 0.0), (64, 0.2), (1, 0.9)):
        scores = rng.random(len(names)).astype(np.float32) ** 4
        scores[[5, 9, 17]] = np.float32(0.61234)  # ties: lower class index first
        scores[20] = np.float32(1.7)  # clipped to 1
        scores[21] = np.float32(-0.3)  # clipped to 0
        scores[22] = np.float32(np.nan)  # counts as 0
        scores[30] = np.float32(0.04996)  # rounds up to 0.05: reported at min_score 0.05
        expected = [list(pair) for pair in top_labels(scores, names, k, min_score)]
        as_json = [None if math.isnan(s) else float(s) for s in scores.tolist()]
        cases.append({"scores": as_json, "k": k, "min_score": min_score, "expected": expected})
    return {"names": list(names.names), "cases": cases}


def _events() -> dict[str, Any]:
    start = datetime(2026, 11, 21, 19, 57, 20, 123000, tzinfo=UTC)
    builder = EventBuilder("home", "kitchen", start, yamnet_source("abc123def456"), next_seq=41)
    verdicts = [
        WindowVerdict(0, 0, 15_600, -23.456, False,
                      [("Smoke detector, smoke alarm", 0.9448), ("Alarm", 0.05)], 0.01),
        WindowVerdict(1, 7680, 23_280, -88.05, True, [], None),
        WindowVerdict(2, 15_360, 30_960, -120.0, True, [], None),
        WindowVerdict(900, 6_912_000, 6_927_600, -35.25, False, [("Speech", 0.5)], 0.01),
    ]  # fmt: skip
    cases = []
    for v in verdicts:
        event = builder.window_event(v)
        ClassificationEvent.model_validate(event.model_dump(by_alias=True))
        cases.append({
            "verdict": {"start_sample": v.start_sample, "end_sample": v.end_sample,
                        "level_dbfs": v.level_dbfs, "gated": v.gated,
                        "labels": [list(p) for p in v.labels]},
            "expected": json.loads(event.to_json()),
        })  # fmt: skip
    return {
        "site": "home", "node": "kitchen", "stream_start_ms": start.timestamp() * 1000,
        "source": yamnet_source("abc123def456").model_dump(), "next_seq": 41, "cases": cases,
    }  # fmt: skip


def _rounding(rng: np.random.Generator) -> list[list[float]]:
    values = [-35.25, 35.25, 0.125, 0.375, -0.5, 0.5, 1.5, 2.5, 0.04995, 0.00005, -120.0, 0.0]
    values += [float(v) for v in rng.normal(0, 40, 200)]
    values += [float(np.float32(v)) for v in rng.random(200)]
    return [[v, d, round(v, d)] for v in values for d in (0, 1, 4)]


@pytest.mark.skipif(NODE is None, reason="node is not installed (needed to run the JS tests)")
def test_js_core_matches_the_python_agent(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    names = LabelMap.from_csv(DEFAULT_CLASS_MAP)
    golden = {
        "windowing": _windowing(rng),
        "labels": _labels(rng, names),
        "class_map": {"path": str(DEFAULT_CLASS_MAP), "names": list(names.names)},
        "events": _events(),
        "rounding": _rounding(rng),
    }
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(golden))
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--test", "--test-reporter=dot", str(TESTS)],
        cwd=ROOT, env={"GOLDEN": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "skipped" not in done.stdout
