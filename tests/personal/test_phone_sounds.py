"""The phone agent recognises learned sounds as the Python agent does: its JS matcher
(``services/web/static/agent/sounds.js``, run under node) on a real sound pack and real YAMNet
embeddings, window by window, and it refuses the same bad packs."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge.personal.learner import sound_windows
from edge.personal.packs import SoundBook, model_of
from schemas.decode import decode
from schemas.soundpack import SoundPack
from schemas.topics import ParsedTopic
from tests.personal.sounds import background, embedding_spec, example, pack_payload

ROOT = Path(__file__).resolve().parents[2]
TOPIC = ParsedTopic("sound_pack", "home", category="microwave")
TESTS = ROOT / "tests" / "web" / "agent" / "sounds.test.mjs"
NODE = shutil.which("node")


@pytest.mark.skipif(
    NODE is None, reason="node is needed for the phone's JS (./run test installs it)"
)
def test_the_phone_matches_learned_sounds_as_the_python_agent(tmp_path: Path) -> None:
    payload = pack_payload()
    book = SoundBook("home", embedding_spec())
    assert book.take(TOPIC, payload)
    (model,) = book.models.values()
    windows = np.concatenate([sound_windows(*example(6)), background(7)[:40]])
    cosines, _ = model.similarity(windows)
    probes = [{"index": i, "embedding": [float(v) for v in w], "cosine": float(cosines[i]),
               "expected": book.match(w)} for i, w in enumerate(windows)]  # fmt: skip
    halves = np.array([0.0, -2.5, 1e-5, 65504.0, 0.333], dtype="<f2")
    doc = json.loads(payload)
    flipped = bytearray(base64.b64decode(doc["weights"]["prototypes"]))
    flipped[7] ^= 0x10
    bad = [
        (pack_payload(embedding__version="0123456789ab").decode(), "wrong_embedding_model"),
        (pack_payload(schema="soundalert.soundpack/2").decode(), "unknown_schema_version"),
        (pack_payload(weights__prototypes=base64.b64encode(bytes(flipped)).decode()).decode(),
         "corrupt_weights"),
        (pack_payload(weights__background="@@").decode(), "corrupt_weights"),
    ]  # fmt: skip
    fixture = {
        "examples": [
            [{"embedding": [float(v) for v in e], "level": float(lev)}
             for e, lev in zip(*example(s), strict=True)]
            for s in range(5)
        ],
        "background": [[float(v) for v in row] for row in background(1)],
        "pack": payload.decode(),
        "embedding": embedding_spec().model_dump(),
        "probes": probes,
        "halves": {"bytes": base64.b64encode(halves.tobytes()).decode(),
                   "values": [float(v) for v in halves.astype(np.float32)]},
        "bad": bad,
    }  # fmt: skip
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(fixture), encoding="utf-8")
    assert NODE is not None
    out = tmp_path / "phone-pack.json"
    result = subprocess.run([NODE, "--test", str(TESTS)],
                            env={"FIXTURE": str(path), "PACK_OUT": str(out)},
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# pass 4" in result.stdout, result.stdout[-2000:]
    # The pack the phone learned is one the Python agents take, and it decides as theirs.
    learned = json.loads(out.read_text(encoding="utf-8"))
    phone = model_of(decode(SoundPack, json.dumps(learned["pack"]).encode(), TOPIC))
    assert abs(phone.threshold - model.threshold) < 0.02, (phone.threshold, model.threshold)
    assert phone.accepts(sound_windows(*example(6))).any()
    assert phone.accepts(background(7, 60.0)).mean() <= 0.02
