"""Test sounds for learning: a microwave's three beeps, each recording a little different."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.agent.demo import write_wav
from edge.dsp import synth
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
