"""The serial bridge's pure core: parsed frames in, :class:`ClassificationEvent` objects out.

No I/O (the shell reads the port and owns MQTT). For every frame or rejection from
:class:`edge.dsp.protocol.FrameParser` it counts what happened (by reason, by type, sequence gaps,
board resets, clock re-anchoring), maps board uptime to wall-clock event time
(:mod:`edge.serial_bridge.clock`) and builds events with the Pi agent's contract:

* ``DET`` -> an event with source kind ``pattern`` and one label ``t3`` / ``t4`` / ``lf520``
  scored by the board's confidence; ``window_start`` is the cycle's onset, ``window_end`` the
  moment the board confirmed it; ``features`` carry ``tone_hz`` and ``cycle`` (as the agent's).
* ``LEVEL`` (optional) -> an event with no labels, ``level_dbfs`` and
  ``features.bands_dbfs`` (the six v1 band levels), spanning the 16 ms analysis frame.

Event ids are ``<node>.<boot>.<kind>.<uptime ms>``, ``<boot>`` being the wall-clock ms of the
board's uptime 0 as first anchored: one id per frame of one boot, whatever the retries.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Final

from pydantic import ValidationError

from edge.dsp.protocol import Detection, ErrorFrame, Frame, Heartbeat, Hello, Level, Rejection
from edge.serial_bridge.clock import BoardClock, SessionTracker, Step
from edge.serial_bridge.metrics import BridgeMetrics
from schemas.common import RESERVED_NODE_IDS
from schemas.messages import MAX_WINDOW_SECONDS, ClassificationEvent, Label, Source

__all__ = ["FRAME_MS", "BridgeCore", "board_source", "node_id_for_board"]

log = logging.getLogger(__name__)

FRAME_MS: Final = 16
"""One analysis frame of the board's DSP (256 samples at 16 kHz)."""
_FRAME_TYPES: Final = {
    Hello: "hello", Detection: "det", Level: "level", Heartbeat: "hb", ErrorFrame: "err",
}  # fmt: skip


def node_id_for_board(board_id: str) -> str:
    """A node id (``[A-Za-z0-9_-]{1,64}``) from a board id (which may also contain ``.``)."""
    node = re.sub(r"[^A-Za-z0-9_-]", "-", board_id)[:64] or "board"
    return f"board-{node}"[:64] if node in RESERVED_NODE_IDS else node


def board_source(fw_version: str | None) -> Source:
    """Detections of the board's temporal-pattern detectors: kind ``pattern`` like the agent's."""
    return Source(kind="pattern", model="soundalert-rp2040", version=fw_version or "unknown")


class BridgeCore:
    """Frames of one board to events of one node. Single-threaded, no I/O."""

    def __init__(
        self,
        site: str,
        node: str | None,
        metrics: BridgeMetrics,
        *,
        levels: bool = True,
        max_skew_s: float = 2.0,
        next_seq: int = 0,
    ) -> None:
        self.site = site
        self.node = node
        self.metrics = metrics
        self.levels = levels
        self.clock = BoardClock(max_skew_s)
        self.tracker = SessionTracker()
        self.next_seq = next_seq
        self.hello: Hello | None = None
        self.heartbeat: Heartbeat | None = None
        self.last_error: ErrorFrame | None = None
        self.frames = 0
        self.rejected = 0
        self.lost = 0
        self.resets = 0
        self._boot_id: int | None = None
        self._warned_no_node = False

    # -- input ------------------------------------------------------------------------------
    def feed(self, item: Frame | Rejection, arrived: float) -> list[ClassificationEvent]:
        """One parser output that arrived at wall time ``arrived`` (POSIX seconds)."""
        if isinstance(item, Rejection):
            self.rejected += 1
            self.metrics.rejected.labels(item.reason).inc()
            return []
        self.frames += 1
        self.metrics.frames.labels(_FRAME_TYPES[type(item)]).inc()
        step = self.tracker.step(item)
        self._follow(step, item, arrived)
        match item:
            case Hello():
                self.hello = item
                if self.node is None:
                    self.node = node_id_for_board(item.board_id)
                    log.info("board %s: publishing as node %s", item.board_id, self.node)
                return []
            case Heartbeat():
                self.heartbeat = item
                return []
            case ErrorFrame():
                self.last_error = item
                self.metrics.board_errors.labels(item.code).inc()
                log.warning("board reports error %s (value %d)", item.code, item.value)
                return []
            case Detection():
                self.metrics.detections.labels(item.detector).inc()
                return self._event(item, step)
            case Level():
                self.metrics.level.set(item.level_dbfs)
                return self._event(item, step) if self.levels else []

    def _follow(self, step: Step, frame: Frame, arrived: float) -> None:
        if step.kind == "reset":
            self.resets += 1
            self.metrics.resets.inc()
            log.warning("board reset detected (seq %d, uptime %d ms%s)", frame.seq,
                        frame.uptime_ms, ", HELLO" if isinstance(frame, Hello) else "")  # fmt: skip
        if step.kind in {"first", "reset"}:
            self.clock.reset()
            self._boot_id = None
        if step.lost:
            self.lost += step.lost
            self.metrics.lost.inc(step.lost)
            self.metrics.gaps.inc()
            log.warning("sequence gap: %d line(s) lost before seq %d", step.lost, frame.seq)
        if step.kind == "wrap":
            log.info("board uptime counter wrapped")
        if self.clock.observe(step.uptime_ms, arrived):
            self.metrics.clock_adjustments.inc()
            log.info("board clock re-anchored (drifted more than %.1f s from the host clock)",
                     self.clock.max_skew_s)  # fmt: skip
        if self._boot_id is None and self.clock.anchor is not None:
            self._boot_id = round(self.clock.anchor * 1000)

    # -- events -----------------------------------------------------------------------------
    def _event(self, frame: Detection | Level, step: Step) -> list[ClassificationEvent]:
        if self.node is None:
            self.metrics.dropped_frames.labels("no_node_id").inc()
            if not self._warned_no_node:
                self._warned_no_node = True
                log.warning("frames before the board's HELLO cannot be attributed to a node: "
                            "pass --node (dropping them until a HELLO arrives)")  # fmt: skip
            return []
        try:
            if isinstance(frame, Detection):
                event = self._detection(frame, step, self.node)
            else:
                event = self._level(frame, step, self.node)
        except ValidationError as exc:
            self.metrics.dropped_frames.labels("invalid_event").inc()
            log.warning("cannot build an event from %r: %s", frame, exc)
            return []
        self.next_seq += 1
        return [event]

    def _detection(self, d: Detection, step: Step, node: str) -> ClassificationEvent:
        end = step.uptime_ms
        onset = self.tracker.unwrap(d.onset_ms, end) if d.onset_ms <= d.uptime_ms else end
        onset = max(onset, end - round(MAX_WINDOW_SECONDS * 1000))
        return ClassificationEvent(
            event_id=f"{node}.{self._boot_id}.{d.detector}.{end}",
            site=self.site,
            node=node,
            seq=self.next_seq,
            window_start=self.clock.at(onset),
            window_end=self.clock.at(end),
            source=board_source(self.hello.fw_version if self.hello else None),
            labels=[Label(label=d.detector, score=d.confidence)],
            level_dbfs=None,
            features={"tone_hz": d.tone_hz, "cycle": d.cycle},
        )

    def _level(self, v: Level, step: Step, node: str) -> ClassificationEvent:
        end = self.clock.at(step.uptime_ms)
        return ClassificationEvent(
            event_id=f"{node}.{self._boot_id}.level.{step.uptime_ms}",
            site=self.site,
            node=node,
            seq=self.next_seq,
            window_start=end - timedelta(milliseconds=FRAME_MS),
            window_end=end,
            source=board_source(self.hello.fw_version if self.hello else None),
            labels=[],
            level_dbfs=min(6.0, max(-200.0, v.level_dbfs)),
            features={"bands_dbfs": list(v.bands_dbfs)},
        )

    # -- figures for the heartbeat -----------------------------------------------------------
    def stats(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "serial_frames": self.frames,
            "serial_rejected": self.rejected,
            "serial_lost": self.lost,
            "board_resets": self.resets,
        }
        if self.hello is not None:
            out.update(board_id=self.hello.board_id, firmware=self.hello.fw_version)
        if self.heartbeat is not None:
            out.update(board_frames=self.heartbeat.frames,
                       board_overruns=self.heartbeat.overruns)  # fmt: skip
        if self.last_error is not None:
            out["board_last_error"] = self.last_error.code
        return out
