"""The board's PDM decimator (core/sa_pdm.c), under AddressSanitizer and UBSan, against a
bit-at-a-time CIC written here with numpy: identical samples, and a sigma-delta modulated sine
comes out at its own level."""

from __future__ import annotations

import subprocess

import numpy as np
import numpy.typing as npt
import pytest

from tests.firmware.conftest import HostBuild

DECIMATION = 64
PDM_HZ = 1_024_000


def words_from_bits(bits: npt.NDArray[np.uint8]) -> bytes:
    """32-bit words, first bit most significant, little-endian (as the board's DMA stores
    them)."""
    packed = np.packbits(bits.reshape(-1, 32), axis=1, bitorder="big")
    return packed.view(">u4").astype("<u4").tobytes()


def reference(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """Order-4 CIC one bit at a time (modulo 2^32, as the C), decimated by 64, >> 9, then the
    DC blocker with C's truncating division."""
    x = np.where(bits.astype(bool), 1, -1).astype(np.uint64)  # -1 wraps: modular from here on
    for _ in range(4):
        x = np.cumsum(x, dtype=np.uint64)
    y = x[DECIMATION - 1 :: DECIMATION]
    for _ in range(4):
        y = y - np.concatenate([np.zeros(1, np.uint64), y[:-1]])
    v = (y & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32) >> 9
    out = np.empty(len(v), np.int16)
    dc_x = dc_y = 0
    for n, value in enumerate(v.tolist()):
        product = dc_y * 32604
        dc_y = value - dc_x + (abs(product) // 32768) * (1 if product >= 0 else -1)
        dc_x = value
        out[n] = max(-32768, min(32767, dc_y))
    return out


def sigma_delta(signal: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """A second-order sigma-delta modulator (a PDM microphone's output) of ``signal`` in
    [-1, 1] at the PDM rate."""
    bits = np.empty(len(signal), np.uint8)
    i1 = i2 = 0.0
    feedback = 0.0
    for n, value in enumerate(signal.tolist()):
        i1 += value - feedback
        i2 += i1 - feedback
        bit = i2 >= 0.0
        feedback = 1.0 if bit else -1.0
        bits[n] = bit
    return bits


def decimate(host_build: HostBuild, bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    done = subprocess.run(
        [str(host_build.pdm_decimate)],
        input=words_from_bits(bits),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    return np.frombuffer(done.stdout, "<i2")


@pytest.mark.parametrize("density", [0.5, 0.8, 1.0, 0.0])
def test_byte_table_decimator_equals_the_bit_by_bit_cic(host_build: HostBuild,
                                                       density: float) -> None:  # fmt: skip
    rng = np.random.default_rng(17)
    bits = (rng.random(DECIMATION * 1000) < density).astype(np.uint8)  # > one 160-sample block
    got = decimate(host_build, bits)
    assert len(got) == 1000
    np.testing.assert_array_equal(got, reference(bits))


def test_a_sigma_delta_sine_comes_out_at_its_level(host_build: HostBuild) -> None:
    amplitude = 10 ** (-12 / 20)
    t = np.arange(PDM_HZ // 5) / PDM_HZ  # 0.2 s
    bits = sigma_delta(amplitude * np.sin(2 * np.pi * 1000.0 * t))
    decimated = decimate(host_build, bits)
    np.testing.assert_array_equal(decimated, reference(bits))
    pcm = decimated.astype(np.float64) / 32768
    settled = pcm[800:]  # past the CIC's and the DC blocker's start
    peak_db = 20 * np.log10(np.sqrt(np.mean(settled**2)) * np.sqrt(2))
    # A CIC's passband droop: sinc^4, -0.22 dB at 1 kHz (-2 dB at a smoke alarm's 3 kHz).
    droop = (np.sin(np.pi * 1000 * DECIMATION / PDM_HZ)
             / (DECIMATION * np.sin(np.pi * 1000 / PDM_HZ))) ** 4  # fmt: skip
    assert peak_db == pytest.approx(-12.0 + 20 * np.log10(droop), abs=0.1)
