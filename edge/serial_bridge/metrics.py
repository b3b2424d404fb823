"""The serial bridge's Prometheus metrics, on a registry passed in (tests stay isolated).

The outbox and MQTT figures are the agent's (:class:`edge.agent.metrics.PublisherMetrics`);
the rest describe the serial link and the board.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from edge.agent.metrics import PublisherMetrics
from edge.dsp.protocol import REJECT_REASONS

__all__ = ["BridgeMetrics"]


class BridgeMetrics(PublisherMetrics):
    """Metrics of one bridge process (one board, one node)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry, component="serial-bridge")
        r = self.registry
        self.rejected = Counter(
            "soundalert_serial_frames_rejected_total",
            "Serial input the frame parser rejected, by reason (bad_crc, garbage, ...).",
            ["reason"],
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.frames = Counter(
            "soundalert_serial_frames_total",
            "Valid frames received from the board, by type (hello, det, level, hb, err).",
            ["type"],
            registry=r,
        )
        self.lost = Counter(
            "soundalert_serial_frames_lost_total",
            "Lines missing according to the board's sequence numbers.",
            registry=r,
        )
        self.gaps = Counter(
            "soundalert_serial_sequence_gaps_total",
            "Sequence gaps (one or more lost lines each).",
            registry=r,
        )
        self.resets = Counter(
            "soundalert_serial_board_resets_total",
            "Board reboots seen (HELLO, or seq/uptime starting again).",
            registry=r,
        )
        self.clock_adjustments = Counter(
            "soundalert_serial_clock_adjustments_total",
            "Times the board clock was re-anchored to the host clock (drift beyond the bound).",
            registry=r,
        )
        self.board_errors = Counter(
            "soundalert_serial_board_errors_total",
            "ERR frames from the board, by code (overrun, mic, tx, internal).",
            ["code"],
            registry=r,
        )
        self.detections = Counter(
            "soundalert_pattern_detections_total",
            "Temporal-pattern detections (T3, T4, 520 Hz) reported by the board, by kind.",
            ["kind"],
            registry=r,
        )
        self.dropped_frames = Counter(
            "soundalert_serial_frames_dropped_total",
            "Valid frames that could not become events (no node id yet, invalid event).",
            ["reason"],
            registry=r,
        )
        self.board_connected = Gauge(
            "soundalert_serial_board_connected",
            "1 while the board's serial port is open and frames arrive.",
            registry=r,
        )
        self.port_opens = Counter(
            "soundalert_serial_port_opens_total",
            "Times the serial port was opened (the first time and after every unplug).",
            registry=r,
        )
        self.level = Gauge(
            "soundalert_input_level_dbfs",
            "RMS level of the board's latest LEVEL frame, dB relative to full scale.",
            registry=r,
        )
