"""RP2040 cycle bench: what the board image's DSP and detectors cost on a Cortex-M0+ at 125 MHz,
counted by the emulator (rp2040js) while the committed image (firmware/rp2040/release/) hears a
recording through its PDM microphone pins.

Per 16 ms analysis frame, the cycles spent in ``sa_dsp_frame`` (window, FFT, bands, tone
measures) plus ``sa_patterns_step`` (T3 / T4 / 520 Hz detectors), in thread mode (interrupts
excluded): max and mean, against the frame budget (16 ms = 2,000,000 cycles) and the 25 %
target (4 ms). Beside it, what else the chip does per 16 ms of audio: the PDM decimator
(``sa_pdm_decimate``, per 10 ms block), and every cycle the core was not asleep (decimation,
DMA and USB interrupts, protocol lines): the whole load. And, side by side, the board's
detections against the host build of the same core (``sa_core_wav``) fed the same PCM
directly: the PDM path (sigma-delta, PIO, DMA, CIC) should not change what is detected.

rp2040js counts instruction cycles as a Cortex-M0+ with zero-wait memory: flash reads that
miss the XIP cache cost more on silicon (the DSP's loops fit the 16 KB cache).

    .venv/bin/python -m bench.rp2040_cycles [--seconds 20] [--json out.json]

Needs node and ``npm ci`` in firmware/rp2040/emulator (./run test does both). Uses
../shared/data/dev-audio for the background when present, else white noise at -40 dBFS.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from edge.dsp import synth
from edge.dsp.protocol import Detection, FrameParser
from edge.serial_bridge.simulate import ensure_core_binary, run_core
from tests.support.rp2040_emulator import (
    emulator_missing,
    release_manifest,
    run_emulator,
    write_audio,
)

__all__ = ["main"]

TARGET_FRACTION: Final = 0.25
SAMPLE_RATE: Final = 16000


def test_audio(seconds: float) -> tuple[npt.NDArray[np.float64], str]:
    """Background with a T3 smoke alarm and a T4 CO alarm in it, 10 dB above it."""
    n = round(seconds * SAMPLE_RATE)
    try:
        from tests.agent.conftest import background_bed  # noqa: PLC0415 - needs shared/

        bed = background_bed(seconds, seed=11)
        where = "household background (shared dev-audio)"
    except BaseException:  # noqa: BLE001 - pytest.skip raises outside pytest too
        bed = np.random.default_rng(11).normal(0, 10 ** (-40 / 20), n)
        where = "white noise at -40 dBFS (no shared dev-audio)"
    t3, t4 = synth.t3(cycles=2), synth.t4(cycles=1)
    audio = synth.mix_at_snr(t3, bed, 10.0, offset=SAMPLE_RATE)
    start = SAMPLE_RATE + t3.size + 2 * SAMPLE_RATE
    if start + t4.size <= n:
        audio = synth.mix_at_snr(t4, audio, 10.0, offset=start)
    return audio, f"T3 (2 cycles) and T4 (1 cycle) at 10 dB SNR in {where}"


def detections(wire: bytes) -> list[tuple[str, int]]:
    parser = FrameParser()
    return [(f.detector, f.cycle) for f in parser.feed(wire) + parser.finish()
            if isinstance(f, Detection)]  # fmt: skip


def row(label: str, cycles: float, budget: int, clk_hz: int) -> str:
    return (f"{label:<44} {cycles:>10,.0f} {1000 * cycles / clk_hz:>8.3f} "
            f"{100 * cycles / budget:>7.2f} %")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="RP2040 cycles per 16 ms frame (emulated).")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="write the emulator's profile here")
    args = parser.parse_args()
    missing = emulator_missing()
    if missing:
        sys.exit(f"cannot run: {missing}")
    manifest = release_manifest()
    audio, what = test_audio(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        raw = write_audio(Path(tmp) / "audio.s16", audio)
        events = run_emulator(raw, end_at_s=args.seconds + 1.5, profile=True)
        wav = Path(tmp) / "audio.wav"
        from edge.agent.demo import write_wav  # noqa: PLC0415

        write_wav(wav, audio)
        host = run_core(ensure_core_binary(), wav, board_id="host", level_every=0)
    profile: dict[str, Any] = next(e for e in events if e["event"] == "profile")
    end = next(e for e in events if e["event"] == "end")
    board_wire = b"".join(bytes.fromhex(e["hex"]) for e in events if e["event"] == "serial")
    clk, budget = profile["clk_sys_hz"], profile["frame_budget_cycles"]
    fn = profile["functions"]
    frames = profile["analysis_frames"]
    print(f"image {manifest['image']} {manifest['fw_version']} (pico-sdk "
          f"{manifest['pico_sdk']['version']}), clk_sys {clk / 1e6:.0f} MHz; audio: {what}, "
          f"{args.seconds:.0f} s")  # fmt: skip
    print(f"emulator: {end['audio_s']:.1f} s of audio in {end['wall_s']:.1f} s wall "
          f"({end['audio_s'] / end['wall_s']:.2f}x real time, with profiling)")  # fmt: skip
    print(f"\n{'per 16 ms frame':<44} {'cycles':>10} {'ms':>8} {'budget':>9}")
    print(row(f"DSP + detectors, worst of {frames['count']} frames", frames["max"], budget, clk))
    print(row("DSP + detectors, mean", frames["mean"], budget, clk))
    print(row("  of which FFT (sa_fft256), mean", fn["sa_fft256"]["mean"], budget, clk))
    print(row("  detectors (sa_patterns_step), worst", fn["sa_patterns_step"]["max"], budget,
              clk))  # fmt: skip
    per_frame = SAMPLE_RATE * 0.016 / 160  # decimator calls (10 ms blocks) per 16 ms
    print(row("PDM decimator (sa_pdm_decimate), mean", fn["sa_pdm_decimate"]["mean"] * per_frame,
              budget, clk))  # fmt: skip
    busy = profile["busy_per_16ms"]
    print(row("whole chip awake (+ IRQs, USB), worst", busy["max"], budget, clk))
    print(row("whole chip awake, mean", busy["mean"], budget, clk))
    ratio = frames["max"] / (TARGET_FRACTION * budget)
    verdict = "meets" if ratio < 1 else "misses"
    print(f"\nworst DSP + detector frame / 4 ms target: {ratio:.2f} ({verdict} it); worst whole-"
          f"chip 16 ms / 4 ms target: {busy['max'] / (TARGET_FRACTION * budget):.2f}")  # fmt: skip
    board, on_host = detections(board_wire), detections(host)
    print(f"detections, emulated board (PDM): {board}\ndetections, host core (PCM):      "
          f"{on_host}  -> {'same' if board == on_host else 'DIFFERENT'}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"profile": profile, "end": end}, indent=2))


if __name__ == "__main__":
    main()
