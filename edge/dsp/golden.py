"""Golden vectors of the frame analysis, from purely synthetic audio.

``python -m edge.dsp.golden [DIR]`` writes ``golden_features.csv`` (default directory
``firmware/rp2040/tests/golden``): per frame, the reference level and band levels of
:func:`golden_signal`. The tests regenerate the signal, check it against the SHA-256 in the
file's header, and hold both the Python reference and the C core to the committed numbers.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from edge.dsp.reference import N_BANDS, SAMPLE_RATE, analyse_frames
from edge.dsp.synth import sine, square, to_int16

__all__ = ["GOLDEN_FILE", "golden_csv", "golden_signal", "lcg_noise", "main", "parse_golden"]

GOLDEN_FILE: Final = "golden_features.csv"
_DEFAULT_DIR: Final = Path("firmware/rp2040/tests/golden")

Float64Array = npt.NDArray[np.float64]


def lcg_noise(n: int, seed: int = 1) -> Float64Array:
    """Uniform noise in [-1, 1) from a 32-bit LCG: the same numbers on every platform."""
    out = np.empty(n, dtype=np.float64)
    state = seed
    for i in range(n):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = (state >> 8) / 8388608.0 - 1.0
    return out


def _db(level: float) -> float:
    return float(10.0 ** (level / 20.0))


def golden_signal() -> npt.NDArray[np.int16]:
    """2.75 s of test signal: silence, tones at several levels, square waves, noise, a sweep."""
    q = SAMPLE_RATE // 4  # 0.25 s segments
    t = np.arange(2 * q) / SAMPLE_RATE
    sweep = np.sin(2 * np.pi * (100.0 * t + (7800.0 / (2 * t[-1])) * t**2 / 2))
    chirps = np.where((np.arange(q) // 1600) % 2 == 0, 1.0, 0.0) * sine(3300.0, q)
    parts = [
        np.zeros(q),
        _db(-6) * sine(1000.0, q),
        _db(-20) * sine(3100.0, q),
        _db(-12) * square(520.0, q),
        _db(-30) * np.sqrt(3.0) * lcg_noise(q, 1),
        _db(-75) * sine(3100.0, q),
        _db(-10) * sweep,
        np.sign(sine(250.0, q, phase=0.1)),
        _db(-15) * chirps + _db(-50) * lcg_noise(q, 2),
        _db(-20) * sine(440.0, q) + _db(-25) * sine(2900.0, q) + _db(-45) * lcg_noise(q, 3),
    ]
    return to_int16(np.concatenate(parts))


def golden_csv(signal: npt.NDArray[np.int16]) -> str:
    f = analyse_frames(signal)
    digest = hashlib.sha256(signal.astype("<i2").tobytes()).hexdigest()
    lines = [
        f"# input_sha256={digest}",
        "frame,level_db," + ",".join(f"band{b}_db" for b in range(N_BANDS)),
    ]
    for i in range(f.level_db.size):
        values = [f.level_db[i], *f.bands_db[i]]
        lines.append(f"{i}," + ",".join(f"{v:.3f}" for v in values))
    return "\n".join(lines) + "\n"


def parse_golden(text: str) -> tuple[str, Float64Array]:
    """(input sha256, array of shape (frames, 1 + N_BANDS)) from a golden file's text."""
    lines = text.splitlines()
    digest = lines[0].removeprefix("# input_sha256=")
    rows = [[float(v) for v in line.split(",")[1:]] for line in lines[2:] if line]
    return digest, np.asarray(rows, dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else _DEFAULT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / GOLDEN_FILE).write_text(golden_csv(golden_signal()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
