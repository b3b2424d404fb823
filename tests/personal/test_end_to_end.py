"""Acceptance: a sound learned on one node is recognised by another, and no audio crosses MQTT.

Real processes: Mosquitto with the nodes' own logins and ACLs, two ``soundalert agent``
processes (kitchen, hall) and the ``soundalert sounds`` command, with the aggregator in this
process. A spy subscribed to everything under the test's topic root keeps every payload.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from edge.agent.demo import write_wav
from edge.dsp import synth
from edge.personal.background import background_path
from schemas.decode import Reason
from schemas.topics import Topics
from tests.agent.conftest import background_bed, running_aggregator, wait_until
from tests.personal.sounds import beeps, write_examples
from tests.support.mosquitto import Mosquitto
from tests.support.room import Room

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "from soundalert.cli import main; main()"]
ENV = {**os.environ, "SOUNDALERT_HEARTBEAT_S": "1", "SOUNDALERT_RECONNECT_MAX_S": "0.5"}
MAX_BLOB_BYTES = 10 * 1024 * 2
"""The largest byte string a payload may carry: ten 1024-d float16 embeddings (20 KiB, less
than 0.7 s of 16 kHz 16-bit audio), and only as a sound pack's matrix of unit rows."""
MAX_NUMBERS = 64
"""The longest list of numbers a payload may hold (a label list is at most 64)."""
EMBEDDING_FIELDS = {("weights", "centre"), ("weights", "prototypes"), ("weights", "background")}


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*CLI, *args, env={**ENV, **(env or {})},
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def _agent(mosquitto: Mosquitto, root: str, node: str, state: Path, wav: Path) -> list[str]:
    return ["agent", "--broker", mosquitto.url(node), "--topic-root", root, "--site", "home",
            "--node", node, "--state", str(state), "--input", str(wav), "--speed", "0",
            "--start-time", "2024-03-01T08:00:00Z", "--log-level", "info"]  # fmt: skip


def _sounds(mosquitto: Mosquitto, root: str, *args: str) -> list[str]:
    return ["sounds", *args, "--broker", mosquitto.url("kitchen"), "--topic-root", root,
            "--site", "home"]  # fmt: skip


@asynccontextmanager
async def _spy(mosquitto: Mosquitto, root: str) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Every (topic, payload) published under ``root`` while the block runs."""
    seen: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="service",
                              password=mosquitto.users["service"]) as client:  # fmt: skip
        await client.subscribe(f"{root}/#", qos=1)

        async def listen() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes), type(payload)
                seen.append((message.topic.value, payload))

        task = asyncio.create_task(listen())
        try:
            yield seen
        finally:
            await asyncio.sleep(0.5)
            task.cancel()


def _walk(value: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, str(i)))


def audio_problems(topic: str, payload: bytes) -> list[str]:
    """What in one payload could carry audio: a long list of numbers, or a long string that is
    not a sound pack's matrix of unit-length embeddings of bounded size."""
    if not payload:
        return []  # a removed retained message
    try:
        doc = json.loads(payload)
    except ValueError:
        return [f"{topic}: not JSON ({len(payload)} bytes)"]
    problems = []
    for path, value in _walk(doc):
        if isinstance(value, list) and sum(isinstance(v, int | float) for v in value) > MAX_NUMBERS:
            problems.append(f"{topic} {'.'.join(path)}: {len(value)} numbers")
        if not isinstance(value, str) or len(value) <= 256:
            continue
        where = f"{topic} {'.'.join(path)}"
        if path[-2:] not in EMBEDDING_FIELDS or doc.get("schema") != "soundalert.soundpack/1":
            problems.append(f"{where}: a {len(value)}-character string")
            continue
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error:
            problems.append(f"{where}: not base64")
            continue
        if len(raw) > MAX_BLOB_BYTES or len(raw) % 2048:
            problems.append(f"{where}: {len(raw)} bytes, not float16 1024-d rows within bounds")
            continue
        rows = np.frombuffer(raw, "<f2").astype(np.float32).reshape(-1, 1024)
        if path[-1] != "centre" and np.abs(np.linalg.norm(rows, axis=1) - 1).max() > 0.02:
            problems.append(f"{where}: rows are not unit embeddings")
    return problems


def test_the_audio_check_finds_audio() -> None:
    """The check above is not vacuous: a second of samples, as numbers or as base64, fails."""
    samples = (np.sin(np.arange(16000) * 0.1) * 8000).astype("<i2")
    as_list = json.dumps({"schema": "soundalert.event/1", "features": {"x": samples.tolist()}})
    blob = base64.b64encode(samples.tobytes()).decode()
    as_pack = json.dumps({"schema": "soundalert.soundpack/1", "weights": {"prototypes": blob}})
    assert audio_problems("t", as_list.encode())
    assert audio_problems("t", as_pack.encode())
    assert audio_problems("t", json.dumps({"note": blob}).encode())


async def test_a_sound_learned_on_one_node_raises_its_alert_on_another(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    kitchen, hall = tmp_path / "kitchen", tmp_path / "hall"
    room = write_wav(tmp_path / "kitchen-room.wav", background_bed(30.0, seed=11))
    examples = write_examples(tmp_path / "examples", range(5))
    # The hall hears 20 s of its room, the microwave's sixth time, then 10 s of room.
    bed = background_bed(34.0, seed=12)
    hall_wav = write_wav(tmp_path / "hall.wav",
                         synth.mix_at_snr(beeps(6), bed, 12.0, offset=20 * 16000))  # fmt: skip
    async with (
        _spy(mosquitto, topic_root) as seen,
        running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg,
    ):
        # 1. The kitchen's agent listens to its room: it keeps that room's background.
        rc, out = await _run(*_agent(mosquitto, topic_root, "kitchen", kitchen, room))
        assert rc == 0, out
        assert background_path(kitchen / "agent-kitchen.outbox.sqlite3", "kitchen").is_file(), out
        # 2. Learn on the kitchen node from five recordings.
        rc, out = await _run(*_sounds(mosquitto, topic_root, "learn", "--name", "Microwave",
                                      "--node", "kitchen", "--state", str(kitchen),
                                      "--examples", *map(str, examples)))  # fmt: skip
        assert rc == 0, out
        assert "learned 'Microwave' as 'microwave' v1 for site home" in out, out
        assert "leave-one-out: 100%" in out, out
        assert "YAMNet's own name for it:" in out, out
        await wait_until(lambda: "microwave" in agg.service.core.policy.categories, 10,
                         "the aggregator to make the learned sound a category")  # fmt: skip
        # 3. The hall's agent hears a sixth microwave.
        rc, out = await _run(*_agent(mosquitto, topic_root, "hall", hall, hall_wav))
        assert rc == 0, out
        await wait_until(lambda: bool(agg.raised("microwave")), 10, "a microwave alert")
        alert = agg.raised("microwave")[0]
        assert (alert.title, alert.priority, alert.location) == ("Microwave", "normal", "hall")
        assert alert.first_evidence_at is not None
        heard_at = alert.first_evidence_at.timestamp() - 1709280000  # 2024-03-01T08:00:00Z
        assert 19.0 <= heard_at <= 23.0, f"first evidence {heard_at:.1f} s into the replay"
        assert len(agg.raised("microwave")) == 1
        # 4. Listing and removal, from the CLI.
        rc, out = await _run(*_sounds(mosquitto, topic_root, "list"))
        assert rc == 0, out
        assert "'Microwave' v1 normal, learned on kitchen" in out, out
        rc, out = await _run(*_sounds(mosquitto, topic_root, "remove", "microwave"))
        assert rc == 0, out
        assert "removed 'microwave'" in out, out
        await wait_until(lambda: "microwave" not in agg.service.core.policy.categories, 10,
                         "the aggregator to forget the removed sound")  # fmt: skip
        rc, out = await _run(*_sounds(mosquitto, topic_root, "list"))
        assert "site home has learned no sounds" in out, out
    topics = Topics(topic_root)
    packs = [p for t, p in seen if t == topics.sound_pack("home", "microwave")]
    assert len(packs) == 2, "the pack, then its removal"
    assert packs[1] == b""
    personal = [json.loads(p) for t, p in seen if t == topics.events("home", "hall")
                and json.loads(p)["source"]["kind"] == "personal"]  # fmt: skip
    assert personal
    assert {e["labels"][0]["label"] for e in personal} == {"microwave"}
    assert len(seen) > 100
    problems = [p for topic, payload in seen for p in audio_problems(topic, payload)]
    assert problems == []


async def test_the_aggregator_refuses_bad_packs_and_counts_them(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    """Retained packs that are corrupt, for another embedding model or of an unknown version:
    none becomes a category, each is counted by its reason."""
    good = {
        "schema": "soundalert.soundpack/1", "site": "home", "sound": "doorbell_2", "title": "x",
        "version": 1, "learned_at": "2024-03-01T08:00:00Z", "learned_on": "kitchen",
        "embedding": {"model": "yamnet", "version": "abc", "dims": 1024},
        "weights": {"centre": "", "prototypes": "", "background": "", "sha256": "0" * 64},
        "threshold": 0.8, "margin": 0.05,
    }  # fmt: skip
    bad = {
        "corrupt": good,
        "other_model": {**good, "sound": "other_model",
                        "embedding": {"model": "vggish", "version": "1", "dims": 128}},
        "future": {**good, "sound": "future", "schema": "soundalert.soundpack/2"},
    }  # fmt: skip
    topics = Topics(topic_root)
    async with running_aggregator(mosquitto, topic_root, tmp_path / "agg") as agg:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, username="kitchen",
                                  password=mosquitto.users["kitchen"]) as client:  # fmt: skip
            for sound, doc in bad.items():
                await client.publish(topics.sound_pack("home", sound),
                                     json.dumps({**doc, "sound": sound}).encode(), qos=1,
                                     retain=True)  # fmt: skip
        rejected = agg.service.metrics.rejected

        def count(reason: Reason) -> float:
            return float(rejected.labels(reason.value)._value.get())  # noqa: SLF001

        await wait_until(lambda: count(Reason.CORRUPT_WEIGHTS) + count(
            Reason.WRONG_EMBEDDING_MODEL) + count(Reason.UNKNOWN_SCHEMA_VERSION) >= 3, 10,
            "three rejections")  # fmt: skip
        assert count(Reason.CORRUPT_WEIGHTS) == 1
        assert count(Reason.WRONG_EMBEDDING_MODEL) == 1
        assert count(Reason.UNKNOWN_SCHEMA_VERSION) == 1
        assert not set(bad) & set(agg.service.core.policy.categories)


async def test_record_learns_from_the_microphone(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path, room: Room
) -> None:
    """``sounds learn --record 3``: three examples from a real (virtual) microphone while the
    microwave beeps in the room, then the pack is on the broker."""
    pattern = np.concatenate([beeps(30 + i) for i in range(12)])  # beeps for 22 s
    wav = write_wav(tmp_path / "beeping.wav", np.concatenate([np.zeros(8000), pattern]))
    player = room.play(wav)
    try:
        rc, out = await _run(*_sounds(mosquitto, topic_root, "learn", "--name", "Microwave",
                                      "--node", "kitchen", "--state", str(tmp_path),
                                      "--record", "3", "--seconds", "2", "--countdown", "1"),
                             env=room.env)  # fmt: skip
    finally:
        player.kill()
    assert rc == 0, out
    assert out.count("recording 2 s") == 3, out
    assert "learned 'Microwave' as 'microwave' v1" in out, out
    assert "3 examples" in out, out
    assert "leave-one-out:" in out, out
