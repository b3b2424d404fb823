"""Test sounds for learning: a microwave's three beeps, each recording a little different, their
YAMNet embeddings (cached per test process), the microwave learned from five of them, and its
sound pack."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.agent.demo import write_wav
from edge.agent.model import EMBEDDING_DIMS, YamnetModel
from edge.dsp import synth
from edge.personal.embed import embed_audio
from edge.personal.learner import Learned, learn, sound_windows
from edge.personal.packs import pack_of
from schemas.soundpack import EmbeddingSpec
from tests.agent.conftest import background_bed

RATE = 16_000


def beeps(seed: int) -> npt.NDArray[np.float64]:
    """Three 0.3 s beeps 0.2 s apart of a square wave near 2 kHz, with the small differences
    of pitch, length and loudness that one microwave shows from one time to the next."""
    rng = np.random.default_rng(seed)
    tone = 2000.0 * (1 + rng.uniform(-0.01, 0.01))
    on = 0.3 * (1 + rng.uniform(-0.05, 0.05))
    n = round(3 * 0.6 * RATE)
    return synth.pattern(((on, 0.2),), 3, carrier=synth.square(tone, n),
                         amplitude=float(rng.uniform(0.3, 0.5)))  # fmt: skip


def recording(seed: int, seconds: float = 3.0, at_s: float = 0.5, snr_db: float = 15.0
              ) -> npt.NDArray[np.float64]:  # fmt: skip
    """The beeps in household background (dev-audio), as a phone would record them."""
    bed = background_bed(seconds, seed=100 + seed)
    return synth.mix_at_snr(beeps(seed), bed, snr_db, offset=round(at_s * RATE))


def write_examples(folder: Path, seeds: range) -> list[Path]:
    return [write_wav(folder / f"microwave-{s}.wav", recording(s)) for s in seeds]


Matrix = npt.NDArray[np.float32]


@cache
def yamnet() -> YamnetModel:
    return YamnetModel()


def embedding_spec() -> EmbeddingSpec:
    return EmbeddingSpec(model="yamnet", version=yamnet().version, dims=EMBEDDING_DIMS)


@cache
def example(seed: int) -> tuple[Matrix, npt.NDArray[np.float32]]:
    return embed_audio(yamnet(), recording(seed))


@cache
def background(seed: int, seconds: float = 30.0) -> Matrix:
    emb, _ = embed_audio(yamnet(), background_bed(seconds, seed=seed))
    return emb


def learned_microwave(seeds: range = range(5)) -> Learned:
    examples = [sound_windows(*example(s)) for s in seeds]
    return learn("microwave", examples, background(1))


def pack_payload(**changes: object) -> bytes:
    pack = pack_of(learned_microwave(), site="home", node="kitchen", title="Microwave", version=1,
                   embedding=embedding_spec())  # fmt: skip
    doc = json.loads(pack.to_json())
    for path, value in changes.items():
        where = doc
        *parents, last = path.split("__")
        for key in parents:
            where = where[key]
        where[last] = value
    return json.dumps(doc).encode()
