"""``soundalert agent --model yamnet|mn04|both``: one verdict and one event per model and window,
each under its model's source kind, through the real models, Mosquitto and the aggregator."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge.agent import mn04
from edge.agent.demo import write_wav
from edge.agent.events import EventBuilder
from edge.agent.labels import LabelMap
from edge.agent.model import ModelOutput
from edge.agent.models import KINDS, load_models
from edge.agent.pipeline import Head, Pipeline, PipelineConfig, WindowVerdict
from edge.agent.windowing import WINDOW_SAMPLES
from edge.dsp import synth
from services.aggregator.policy import load_policy
from tests.agent.conftest import AGENT, agent_args, running_aggregator
from tests.support.mosquitto import Mosquitto

START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def test_both_models_each_give_their_verdicts_and_a_gated_window_one() -> None:
    """YAMNet classifies every window, mn04 every second one on the 1.95 s ending there."""
    yamnet, other = load_models("both")
    pipeline = Pipeline(None, None, PipelineConfig(patterns=False),
                        heads=[yamnet.head(), other.head()])  # fmt: skip
    rng = np.random.default_rng(5)
    loud = synth.mix_at_snr(synth.t3(cycles=1), rng.normal(0, 0.01, 16000 * 4), 10.0)
    audio = np.concatenate((np.zeros(16000 * 2), loud)).astype(np.float32)
    verdicts = [v for v in pipeline.feed(audio) if isinstance(v, WindowVerdict)]
    by_window: dict[int, list[WindowVerdict]] = {}
    for verdict in verdicts:
        by_window.setdefault(verdict.index, []).append(verdict)
    gated = [vs for vs in by_window.values() if vs[0].gated]
    classified = {i: vs for i, vs in by_window.items() if not vs[0].gated}
    assert gated
    assert classified
    assert all([v.model for v in vs] == ["yamnet"] for vs in gated)
    for index, vs in classified.items():
        assert [v.model for v in vs] == (["yamnet", "mn04"] if index % 2 == 0 else ["yamnet"])
    beeping = classified[max(i for i in classified if i % 2 == 0)]
    assert beeping[1].labels, "mn04 labelled the window"
    assert all(name in other.labels.names for name, _ in beeping[1].labels)
    assert beeping[1].heard_from == beeping[1].end_sample - mn04.CONTEXT_SAMPLES

    builder = EventBuilder("home", "kitchen", START, yamnet.source, more_sources=[other.source])
    events = [builder.build(v) for v in verdicts]
    assert len({e.event_id for e in events}) == len(events)
    stream = int(START.timestamp() * 1000)
    first = beeping[0].start_sample
    pair = [e for e in events if e.window_end == builder.at(beeping[0].end_sample)]
    assert [e.event_id for e in pair] == [f"kitchen.{stream}.{first}",
                                          f"kitchen.{stream}.mn04.{first}"]  # fmt: skip
    assert [(e.source.kind, e.source.model) for e in pair] == [
        ("yamnet", "yamnet"), ("mn04", "efficientat-mn04_as")]  # fmt: skip
    assert pair[1].source.version == mn04.Mn04Model().version
    assert (pair[1].window_end - pair[1].window_start).total_seconds() == pytest.approx(1.95)


class _Recorder:
    def __init__(self) -> None:
        self.heard: list[npt.NDArray[np.float32]] = []

    def __call__(self, samples: npt.NDArray[np.float32]) -> ModelOutput:
        self.heard.append(samples.copy())
        return ModelOutput(np.zeros(1, np.float32), None)


def test_a_model_hears_the_span_before_each_window_end_whatever_the_block_sizes() -> None:
    recorder = _Recorder()
    context = 2 * WINDOW_SAMPLES
    head = Head("mn04", recorder, LabelMap(("Thing",)), context=context, every=3)
    pipeline = Pipeline(None, None, PipelineConfig(patterns=False, gate_dbfs=-120),
                        heads=[head])  # fmt: skip
    stream = np.random.default_rng(2).uniform(-0.5, 0.5, 16000 * 9).astype(np.float32)
    verdicts = []
    at = 0
    for size in itertools.cycle((1, 4000, 777, 16000, 123)):
        if at >= stream.size:
            break
        verdicts += pipeline.feed(stream[at : at + size])
        at += size
    windows = [v for v in verdicts if isinstance(v, WindowVerdict)]
    assert [v.index for v in windows] == list(range(0, windows[-1].index + 1, 3))
    padded = np.concatenate((np.zeros(context, np.float32), stream))
    for verdict, heard in zip(windows, recorder.heard, strict=True):
        end = verdict.end_sample
        assert np.array_equal(heard, padded[end : end + context])
        assert verdict.heard_from == max(0, end - context)


def test_every_model_kind_has_labels_in_the_policy_under_its_own_names() -> None:
    """The policy maps each model's labels, and every one is a class of that model."""
    policy = load_policy()
    for kind in KINDS["both"]:
        (loaded,) = load_models(kind)  # type: ignore[arg-type]
        names = set(loaded.labels.names)
        mapped = {label for cat in policy.categories.values()
                  for label in cat.labels.get(kind, {})}  # fmt: skip
        assert mapped, f"no {kind} label in the policy"
        assert mapped <= names, mapped - names
    yamnet_categories = {n for n, c in policy.categories.items() if c.labels.get("yamnet")}
    mn04_categories = {n for n, c in policy.categories.items() if c.labels.get("mn04")}
    assert yamnet_categories == mn04_categories


def test_an_unknown_model_is_one_clear_line(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", 0.1 * np.sin(np.arange(16000) / 5.0))
    result = subprocess.run(
        [*AGENT, "--input", str(wav), "--model", "resnet", "--outbox", str(tmp_path / "o.db")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "yamnet" in result.stderr
    assert "mn04" in result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("model", ["mn04", "both"])
async def test_the_agent_publishes_each_models_windows_under_its_kind(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path, model: str
) -> None:
    rng = np.random.default_rng(7)
    audio = synth.mix_at_snr(synth.t3(cycles=4), rng.normal(0, 0.005, 16000 * 20), 10.0,
                             offset=16000 * 2)  # fmt: skip
    wav = write_wav(tmp_path / "t3.wav", audio)
    async with running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg:
        proc = await asyncio.create_subprocess_exec(
            *agent_args(mosquitto, topic_root, tmp_path / "outbox.sqlite3", "--input", str(wav),
                        "--speed", "0", "--start-time", "2024-03-01T08:00:00Z", "--model", model),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        await asyncio.sleep(1.0)
    stream = int(datetime.fromisoformat("2024-03-01T08:00:00+00:00").timestamp() * 1000)
    windows = [e for e in agg.processed if ".t3." not in e]
    other = {e for e in windows if e.startswith(f"kitchen.{stream}.mn04.")}
    plain = {e for e in windows if e not in other}
    count = 1 + (audio.size - WINDOW_SAMPLES) // 7680
    assert len(other) == (count + 1) // 2, "every second 0.48 s window, classified by mn04"
    if model == "both":
        assert len(plain) == count
        assert {e.replace(".mn04.", ".") for e in other} <= plain
    else:
        assert not plain, "mn04 alone publishes no YAMNet window"
    assert len(agg.raised("smoke_alarm")) == 1, "the pattern detector runs beside either model"
