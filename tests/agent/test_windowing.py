"""Windowing and the level gate: block sizes never change the windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.agent.windowing import (
    LEVEL_FLOOR_DBFS,
    WINDOW_SAMPLES,
    Windower,
    hop_samples,
    level_dbfs,
    to_float32,
)


def test_default_hop_is_7680_samples() -> None:
    assert hop_samples(0.48) == 7680
    with pytest.raises(ValueError, match="hop"):
        hop_samples(0.0)


def test_windows_start_every_hop_and_cover_15600_samples() -> None:
    x = np.arange(40_000, dtype=np.float32) / 40_000
    windows = Windower(7680).feed(x)
    assert [w.start_sample for w in windows] == [0, 7680, 15360, 23040]
    assert all(w.samples.size == WINDOW_SAMPLES for w in windows)
    np.testing.assert_array_equal(windows[1].samples, x[7680 : 7680 + WINDOW_SAMPLES])


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=30),
    hop=st.sampled_from([1600, 7680, 15600, 20000]),
)
def test_block_sizes_do_not_change_the_windows(sizes: list[int], hop: int) -> None:
    total = sum(sizes)
    x = np.random.default_rng(1).uniform(-1, 1, total).astype(np.float32)
    whole = Windower(hop).feed(x)
    chunked = []
    windower = Windower(hop)
    at = 0
    for size in sizes:
        chunked += windower.feed(x[at : at + size])
        at += size
    assert [w.start_sample for w in chunked] == [w.start_sample for w in whole]
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
        assert a.index == b.index


def test_level_is_rms_in_dbfs() -> None:
    assert level_dbfs(np.ones(100, dtype=np.float32)) == pytest.approx(0.0)
    sine = np.sin(np.arange(16000) * 2 * np.pi * 1000 / 16000).astype(np.float32)
    assert level_dbfs(sine) == pytest.approx(-3.01, abs=0.01)
    assert level_dbfs(0.01 * sine) == pytest.approx(-43.01, abs=0.01)
    assert level_dbfs(np.zeros(10, dtype=np.float32)) == LEVEL_FLOOR_DBFS


def test_int16_is_scaled_to_full_scale() -> None:
    x = to_float32(np.array([-32768, 0, 16384], dtype=np.int16))
    np.testing.assert_allclose(x, [-1.0, 0.0, 0.5])
