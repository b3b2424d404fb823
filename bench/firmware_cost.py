"""Cost of the RP2040 core per 16 ms frame, and its size, beside a baseline build.

Builds the portable core twice, from this work tree and from a baseline git ref (default
``main``), and for each:

* runs ``sa_core_wav`` (host, ``-O2``) under ``valgrind --tool=callgrind`` on the same minute of
  audio (room noise with a T3 alarm from 6 s on) and counts the instructions spent inside
  ``sa_dsp_frame`` (FFT and features) and ``sa_patterns_step`` (the detectors), per frame:
  instruction counts, not seconds, so a loaded machine does not move them;
* cross-compiles it for the Cortex-M0+ (``make size``: ``arm-none-eabi-gcc -Os``) and reads
  flash and static RAM of the core and of the minimal linked image.

Host x86-64 instructions are not Cortex-M0+ cycles; the ratio to the baseline is the figure to
read. The RP2040 has 2 M cycles per frame at 125 MHz.

    .venv/bin/python -m bench.firmware_cost [--baseline main] [--seconds 60]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from bench.revision import REPO, export
from edge.agent.demo import demo_signal
from edge.dsp import synth

__all__ = ["main"]

FIRMWARE: Final = Path("firmware") / "rp2040"
FRAME: Final = 256
FUNCTIONS: Final = ("sa_dsp_frame", "sa_patterns_step")


def _export(ref: str, into: Path) -> Path:
    """The firmware tree of ``ref`` (git archive of this repository) under ``into``."""
    return export(ref, into, FIRMWARE) / FIRMWARE


def _instructions(cli: Path, raw: Path, function: str, workdir: Path) -> int:
    out = workdir / f"callgrind.{function}.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--toggle-collect={function}",  # noqa: S607
                    f"--callgrind-out-file={out}", str(cli), "--raw", "--heartbeat-ms", "0",
                    str(raw)], capture_output=True, check=True)  # fmt: skip
    totals = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
    if totals is None:
        raise RuntimeError(f"no summary in {out}")
    return int(totals.group(1))


def _size(tree: Path) -> dict[str, tuple[int, int]]:
    done = subprocess.run(["make", "-s", "-C", str(tree), "size"],  # noqa: S607
                          capture_output=True, text=True, check=True)  # fmt: skip
    return {
        kind: (int(flash), int(ram))
        for kind, flash, ram in re.findall(
            r"^(core|image)[^:]*:\s+flash\s+(\d+) B.*RAM\s+(\d+) B", done.stdout, re.MULTILINE
        )
    }


def _measure(tree: Path, raw: Path, frames: int, workdir: Path) -> dict[str, float]:
    subprocess.run(["make", "-s", "-C", str(tree), "-j2", "build/host/sa_core_wav"],  # noqa: S607
                   capture_output=True, check=True)  # fmt: skip
    cli = tree / "build" / "host" / "sa_core_wav"
    figures = {f: _instructions(cli, raw, f, workdir) / frames for f in FUNCTIONS}
    if shutil.which("arm-none-eabi-gcc") is not None:
        for kind, (flash, ram) in _size(tree).items():
            figures[f"{kind} flash B"] = flash
            figures[f"{kind} RAM B"] = ram
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--baseline", default="main", help="git ref to compare with")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt install valgrind)")
    audio = synth.to_int16(demo_signal(args.seconds, alarm_at_s=6.0))
    frames = audio.size // FRAME
    with tempfile.TemporaryDirectory(prefix="soundalert-cost-") as tmp:
        work = Path(tmp)
        raw = work / "audio.raw"
        raw.write_bytes(audio.astype("<i2").tobytes())
        base = _measure(_export(args.baseline, work / "baseline"), raw, frames, work)
        here = _measure(REPO / FIRMWARE, raw, frames, work)
    print(f"{frames} frames of 16 ms ({args.seconds:.0f} s of room noise with a T3 alarm)")
    print(f"{'':<28} {args.baseline:>12} {'this tree':>12} {'ratio':>7}")
    for key in here:
        unit = "instructions/frame" if key in FUNCTIONS else ""
        b, h = base.get(key), here[key]
        ratio = f"{h / b:7.2f}" if b else "      -"
        print(f"{key + (' ' + unit if unit else ''):<40} {b or 0:>12.0f} {h:>12.0f} {ratio}")


if __name__ == "__main__":
    main()
