"""Board uptime -> wall clock, wraps, resets, sequence gaps. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge.dsp.protocol import Frame, Heartbeat, Hello
from edge.serial_bridge.clock import UPTIME_MODULUS, BoardClock, SessionTracker

T0 = 1_700_000_000.0


def hb(seq: int, uptime_ms: int) -> Heartbeat:
    return Heartbeat(seq, uptime_ms, 0, 0)


def hello(seq: int = 0, uptime_ms: int = 0) -> Hello:
    return Hello(seq, uptime_ms, "rp2040-ABC", "0.1.0", 16000, 6)


def kinds(frames: list[Frame]) -> list[tuple[str, int, int]]:
    tracker = SessionTracker()
    return [(s.kind, s.uptime_ms, s.lost) for s in map(tracker.step, frames)]


def test_the_first_frame_anchors_the_clock() -> None:
    clock = BoardClock()
    assert not clock.observe(5_000, T0)
    assert clock.at(5_000) == datetime.fromtimestamp(T0, UTC)
    assert clock.at(6_500) == datetime.fromtimestamp(T0 + 1.5, UTC)


def test_small_jitter_keeps_the_anchor_and_drift_re_anchors() -> None:
    clock = BoardClock(max_skew_s=2.0)
    clock.observe(0, T0)
    assert not clock.observe(10_000, T0 + 10.3)  # 0.3 s of USB / scheduling jitter
    assert clock.anchor == T0
    assert clock.observe(100_000, T0 + 103.0)  # 3 s behind: lost sample blocks, drift
    assert clock.anchor == T0 + 3.0
    assert clock.adjustments == 1
    assert clock.at(100_000) == datetime.fromtimestamp(T0 + 103.0, UTC)


def test_the_clock_must_see_a_frame_first() -> None:
    with pytest.raises(RuntimeError):
        BoardClock().at(0)


def test_consecutive_frames_and_gaps() -> None:
    steps = kinds([hello(), hb(1, 1000), hb(2, 2000), hb(6, 6000)])
    assert steps == [("first", 0, 0), ("next", 1000, 0), ("next", 2000, 0), ("gap", 6000, 3)]


def test_sequence_numbers_wrap_without_a_gap() -> None:
    steps = kinds([hb(65534, 1000), hb(65535, 2000), hb(0, 3000), hb(2, 4000)])
    assert [s[0] for s in steps] == ["first", "next", "next", "gap"]
    assert steps[-1][2] == 1


def test_uptime_wrap_keeps_counting() -> None:
    near_end = UPTIME_MODULUS - 500
    steps = kinds([hb(10, near_end), hb(11, 500), hb(12, 1500)])
    assert steps == [("first", near_end, 0), ("wrap", UPTIME_MODULUS + 500, 0),
                     ("next", UPTIME_MODULUS + 1500, 0)]  # fmt: skip


def test_resets_hello_or_uptime_going_back() -> None:
    assert kinds([hb(5, 9000), hello(0, 0)])[1][0] == "reset"
    assert kinds([hb(5, 9000), hb(0, 100)])[1][0] == "reset"  # HELLO lost
    assert kinds([hb(5, 9000), hb(6, 100)])[1][0] == "reset"  # backwards, not a wrap
    tracker = SessionTracker()
    tracker.step(hb(10, UPTIME_MODULUS - 500))
    tracker.step(hb(11, 500))  # wrap
    assert tracker.step(hello()).uptime_ms == 0  # after a reset the epoch starts again


def test_onsets_unwrap_against_the_frame_they_belong_to() -> None:
    tracker = SessionTracker()
    assert tracker.unwrap(1_000, 5_000) == 1_000
    # confirmed just after the wrap, onset just before it
    assert tracker.unwrap(UPTIME_MODULUS - 3_000, UPTIME_MODULUS + 1_000) == UPTIME_MODULUS - 3_000
