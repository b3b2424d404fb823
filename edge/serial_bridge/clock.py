"""Board uptime to wall-clock time, and board-session tracking (sequence gaps, resets). Pure.

The board stamps every frame with ``uptime_ms``, its sample clock (u32, wraps after about 49.7
days). :class:`BoardClock` anchors that clock to the host's wall clock on the first frame of a
boot (the HELLO, or whatever frame comes first): ``wall = anchor + uptime``. USB CDC delivers a
line within milliseconds, so the arrival time of the anchoring frame is a good estimate of when
the board produced it. Clocks drift apart (crystal tolerance, lost sample blocks after a DSP
overrun make the sample clock fall behind): when a frame's predicted wall time differs from its
arrival by more than ``max_skew_s`` the clock re-anchors on that frame and counts it.

:class:`SessionTracker` follows ``seq`` and ``uptime_ms`` and classifies every frame as the
continuation of the boot session, a wrap of the uptime counter, or a new boot (reset).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from edge.dsp.protocol import Frame, Hello

__all__ = ["SEQ_MODULUS", "UPTIME_MODULUS", "BoardClock", "SessionTracker", "Step"]

UPTIME_MODULUS: Final = 1 << 32
SEQ_MODULUS: Final = 1 << 16
_WRAP_MARGIN_MS: Final = 10 * 60 * 1000
"""A backwards jump is a wrap only from the last 10 minutes of the counter into its first 10."""
_MAX_GAP_AT_WRAP: Final = 1000


class BoardClock:
    """Maps a board's (unwrapped) uptime in ms to wall-clock time."""

    def __init__(self, max_skew_s: float = 2.0) -> None:
        if max_skew_s <= 0:
            raise ValueError("max_skew_s must be positive")
        self.max_skew_s = max_skew_s
        self.anchor: float | None = None
        """Wall-clock seconds (POSIX) at uptime 0 of this boot."""
        self.adjustments = 0

    def reset(self) -> None:
        self.anchor = None

    def observe(self, uptime_ms: int, arrived: float) -> bool:
        """A frame stamped ``uptime_ms`` (unwrapped) arrived at wall time ``arrived``.

        Returns True if the clock (re-)anchored on it after having been anchored before."""
        candidate = arrived - uptime_ms / 1000.0
        if self.anchor is None:
            self.anchor = candidate
            return False
        if abs(candidate - self.anchor) > self.max_skew_s:
            self.anchor = candidate
            self.adjustments += 1
            return True
        return False

    def at(self, uptime_ms: int) -> datetime:
        if self.anchor is None:
            raise RuntimeError("the clock has not seen a frame yet")
        return datetime.fromtimestamp(self.anchor + uptime_ms / 1000.0, UTC)


StepKind = Literal["first", "next", "gap", "wrap", "reset"]


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    uptime_ms: int
    """The frame's uptime, unwrapped (counts past 2^32 across wraps)."""
    lost: int = 0
    """Lines missing before this one (sequence gap)."""


class SessionTracker:
    """Follows one board's ``seq`` / ``uptime_ms`` stream across frames.

    * ``first``: the first frame the bridge sees from this board;
    * ``next`` / ``gap``: the same boot, ``lost`` lines missing in between for a gap;
    * ``wrap``: the u32 uptime counter wrapped (seq continues, uptime jumps from near 2^32 to
      near 0); the unwrapped uptime keeps counting;
    * ``reset``: a new boot: a HELLO, ``seq`` 0 with a smaller uptime, or uptime going
      backwards without being a wrap.
    """

    def __init__(self) -> None:
        self.last_seq: int | None = None
        self.last_raw_uptime = 0
        self.epoch = 0

    def step(self, frame: Frame) -> Step:
        raw, seq = frame.uptime_ms, frame.seq
        if self.last_seq is None:
            kind: StepKind = "first"
        else:
            expected = (self.last_seq + 1) % SEQ_MODULUS
            gap = (seq - expected) % SEQ_MODULUS
            if isinstance(frame, Hello):
                kind = "reset"
            elif raw < self.last_raw_uptime:
                wrapped = (
                    self.last_raw_uptime >= UPTIME_MODULUS - _WRAP_MARGIN_MS
                    and raw < _WRAP_MARGIN_MS
                    and gap < _MAX_GAP_AT_WRAP
                )
                kind = "wrap" if wrapped else "reset"
            else:
                kind = "next" if gap == 0 else "gap"
        lost = 0
        if kind in {"gap", "wrap"} and self.last_seq is not None:
            lost = (seq - self.last_seq - 1) % SEQ_MODULUS
        if kind in {"reset", "first"}:
            self.epoch = 0
        elif kind == "wrap":
            self.epoch += 1
        self.last_seq, self.last_raw_uptime = seq, raw
        return Step(kind, self.epoch * UPTIME_MODULUS + raw, lost)

    def unwrap(self, raw_ms: int, reference_unwrapped: int) -> int:
        """An earlier uptime (e.g. a detection's onset) on the unwrapped scale of ``reference``."""
        back = ((reference_unwrapped % UPTIME_MODULUS) - raw_ms) % UPTIME_MODULUS
        return max(0, reference_unwrapped - back)
