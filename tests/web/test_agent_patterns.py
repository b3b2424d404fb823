"""The phone agent's T3/T4/520 Hz detectors: the RP2040 core compiled to WebAssembly.

The WebAssembly build (``make -C firmware/rp2040 wasm``) runs under node through the page's own
``PatternDetector`` (services/web/static/agent/core.js), fed in random block sizes, and must
find exactly what the host build of the same C core (``sa_core_wav``) finds on the same audio:
kind, onset, confirming sample, tone, cycle and confidence. Its events must be the Python
agent's pattern events for those detections.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

from edge.agent.events import EventBuilder, yamnet_source
from edge.agent.pipeline import PatternVerdict
from edge.dsp import synth
from edge.dsp.patterns import Detection, DetectorKind
from edge.dsp.protocol import Detection as WireDetection
from tests.dsp.devaudio import DEV_AUDIO, mixtures
from tests.firmware.conftest import FIRMWARE, parse_all
from tests.support import alarms

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
WASM = FIRMWARE / "build" / "wasm" / "sa_patterns.wasm"
CLI = FIRMWARE / "build" / "host" / "sa_core_wav"
Int16Array = npt.NDArray[np.int16]

RUNNER = """
import { readFileSync } from 'node:fs';
import { EventBuilder, PatternDetector } from './services/web/static/agent/core.js';
const job = JSON.parse(readFileSync(process.env.JOB, 'utf8'));
const { instance } = await WebAssembly.instantiate(readFileSync(job.wasm), {});
const out = [];
let rng = 12345;
const next = () => { rng = (rng * 1103515245 + 12345) % 2147483648; return rng; };
for (const path of job.audio) {
  const raw = readFileSync(path);
  const ints = new Int16Array(raw.buffer, raw.byteOffset, raw.length / 2);
  const x = Float32Array.from(ints, (v) => v / 32768);
  const detector = new PatternDetector(instance.exports);  // resets: one stream each
  const found = [];
  for (let at = 0; at < x.length;) {
    const size = 1 + (next() % 9000);  // 1 .. 9000 samples, past the 4096-sample buffer
    found.push(...detector.feed(x.subarray(at, at + size)));
    at += size;
  }
  out.push(found);
}
const builder = new EventBuilder({ site: 'home', node: 'kitchen',
  streamStartMs: job.stream_start_ms, source: job.source, nextSeq: 7 });
const events = out.flat().map((d) => builder.patternEvent(d));
process.stdout.write(JSON.stringify({ detections: out, events }));
"""


@pytest.fixture(scope="module")
def builds() -> None:
    for tool in ("make", "gcc", "clang", "wasm-ld"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed to build the pattern detectors (./run test installs it)")
    if NODE is None:
        pytest.skip("node is not installed (needed to run the page's JS)")
    for target in ("wasm", "host"):
        subprocess.run(["make", "-C", str(FIRMWARE), "-j2", target], check=True,
                       capture_output=True, timeout=300)  # fmt: skip


def _c(audio: Int16Array) -> list[tuple[str, int, int, int, int, float]]:
    done = subprocess.run([str(CLI), "--raw", "--heartbeat-ms", "0"],
                          input=audio.astype("<i2").tobytes(), capture_output=True, check=True,
                          timeout=60)  # fmt: skip
    frames, rejections = parse_all(done.stdout)
    assert rejections == []
    return [
        (f.detector, f.onset_ms * 16, f.uptime_ms * 16, f.tone_hz, f.cycle, f.confidence)
        for f in frames
        if isinstance(f, WireDetection)
    ]


def _audio() -> list[Int16Array]:
    rng = np.random.default_rng(11)
    clean = [synth.t3(3), synth.t4(2, tone_hz=3500.0), synth.lf520(2), synth.t3(2, tone_hz=2600.0)]
    padded = [np.concatenate([np.zeros(5000), s, np.zeros(8000)]) for s in clean]
    out = [synth.to_int16(a + 0.003 * rng.standard_normal(a.size)) for a in padded]
    out.append(synth.to_int16(0.05 * rng.standard_normal(16000 * 20)))  # noise: nothing
    if DEV_AUDIO.is_dir():  # real background, every kind, from 0 to 20 dB SNR
        mixes = mixtures()
        picks = rng.choice(len(mixes), size=min(24, len(mixes)), replace=False)
        out += [mixes[int(i)].audio for i in picks]
        # Realistic recordings: rooms, a phone's AGC and clipping, fragments, beepers.
        out += [r.audio for r in alarms.subset()[::3]]
    return out


def _run_node(tmp_path: Path, audio: list[Int16Array], start: datetime) -> dict[str, Any]:
    paths = []
    for i, a in enumerate(audio):
        path = tmp_path / f"audio{i}.raw"
        path.write_bytes(a.astype("<i2").tobytes())
        paths.append(str(path))
    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "wasm": str(WASM), "audio": paths, "stream_start_ms": start.timestamp() * 1000,
        "source": yamnet_source("abc123def456").model_dump(),
    }))  # fmt: skip
    assert NODE is not None
    done = subprocess.run([NODE, "--input-type=module", "-e", RUNNER], cwd=ROOT,
                          env={"JOB": str(job), "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_page_finds_exactly_what_the_board_core_finds(builds: None, tmp_path: Path) -> None:
    audio = _audio()
    start = datetime(2026, 11, 21, 19, 57, 20, 123000, tzinfo=UTC)
    result = _run_node(tmp_path, audio, start)
    expected = [_c(a) for a in audio]
    fields = ("kind", "onsetSample", "confirmedSample", "toneHz", "cycle", "confidence")
    got = [[tuple(d[f] for f in fields) for d in found] for found in result["detections"]]
    assert got == expected
    kinds = {d[0] for found in expected for d in found}
    assert kinds == {"t3", "t4", "lf520"}, "every detector must be exercised"
    assert expected[4] == [], "noise must find nothing"

    builder = EventBuilder("home", "kitchen", start, yamnet_source("abc123def456"), next_seq=7)
    verdicts = [
        PatternVerdict(Detection(kind=cast(DetectorKind, k), confidence=conf, onset_sample=onset,
                                 confirmed_sample=confirmed, tone_hz=tone, cycle=cycle))
        for found in expected
        for (k, onset, confirmed, tone, cycle, conf) in found
    ]  # fmt: skip
    python_events = [json.loads(builder.pattern_event(v).to_json()) for v in verdicts]
    assert result["events"] == python_events
