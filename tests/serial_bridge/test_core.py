"""Frames -> events with the agent's contract, counted by what happened. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

from edge.dsp.protocol import Detection, ErrorFrame, FrameParser, Heartbeat, Hello, Level, encode
from edge.serial_bridge.core import BridgeCore, node_id_for_board
from edge.serial_bridge.metrics import BridgeMetrics

T0 = 1_700_000_000.0
HELLO = Hello(0, 0, "rp2040-E661.38935F", "0.1.0", 16000, 6)


def value(metrics: BridgeMetrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_a_detection_becomes_a_pattern_event() -> None:
    metrics = BridgeMetrics()
    core = BridgeCore("home", "kitchen", metrics, next_seq=7)
    assert core.feed(HELLO, T0) == []
    det = Detection(1, 9_100, "t3", 0.912, 5_000, 3125, 2)
    [event] = core.feed(det, T0 + 9.1)
    assert event.source.kind == "pattern"
    assert event.source.version == "0.1.0"
    assert [(lbl.label, lbl.score) for lbl in event.labels] == [("t3", 0.912)]
    assert event.window_start == datetime.fromtimestamp(T0 + 5.0, UTC)
    assert event.window_end == datetime.fromtimestamp(T0 + 9.1, UTC)
    assert event.features == {"tone_hz": 3125, "cycle": 2}
    assert event.seq == 7
    assert event.event_id == f"kitchen.{round(T0 * 1000)}.t3.9100"
    assert core.next_seq == 8
    assert value(metrics, "soundalert_pattern_detections_total", kind="t3") == 1


def test_levels_are_events_with_bands_and_no_labels() -> None:
    core = BridgeCore("home", "kitchen", BridgeMetrics())
    core.feed(HELLO, T0)
    [event] = core.feed(Level(1, 1_008, -41.5, (-50.0, -60.0, -55.0, -58.0, -62.0, -70.0)), T0)
    assert event.labels == []
    assert event.level_dbfs == -41.5
    assert event.features == {"bands_dbfs": [-50.0, -60.0, -55.0, -58.0, -62.0, -70.0]}
    assert (event.window_end - event.window_start).total_seconds() == 0.016
    quiet = BridgeCore("home", "kitchen", BridgeMetrics(), levels=False)
    assert quiet.feed(Level(1, 1_008, -41.5, (0.0,) * 6), T0) == []


def test_the_node_id_comes_from_the_hello_when_not_given() -> None:
    metrics = BridgeMetrics()
    core = BridgeCore("home", None, metrics)
    assert core.feed(Detection(5, 9_000, "t3", 0.9, 5_000, 3125, 1), T0) == []
    assert value(metrics, "soundalert_serial_frames_dropped_total", reason="no_node_id") == 1
    core.feed(HELLO, T0)
    assert core.node == "rp2040-E661-38935F" == node_id_for_board(HELLO.board_id)
    [event] = core.feed(Detection(1, 9_000, "t3", 0.9, 5_000, 3125, 1), T0 + 9)
    assert event.node == "rp2040-E661-38935F"
    assert node_id_for_board("alerts") == "board-alerts"


def test_rejections_gaps_resets_and_board_errors_are_counted() -> None:
    metrics = BridgeMetrics()
    core = BridgeCore("home", "kitchen", metrics)
    parser = FrameParser()
    wire = (
        encode(HELLO)
        + b"noise\n"
        + encode(Heartbeat(1, 1_000, 62, 0))[:-6] + b"0000\r\n"  # bad CRC
        + encode(Heartbeat(3, 3_000, 187, 0))  # seq 2 lost
        + encode(ErrorFrame(4, 3_100, "overrun", 2))
        + encode(HELLO)  # rebooted
    )  # fmt: skip
    for item in parser.feed(wire):
        core.feed(item, T0)
    assert value(metrics, "soundalert_serial_frames_rejected_total", reason="garbage") == 1
    assert value(metrics, "soundalert_serial_frames_rejected_total", reason="bad_crc") == 1
    assert value(metrics, "soundalert_serial_frames_lost_total") == 2  # seq 1 (bad) and 2
    assert value(metrics, "soundalert_serial_sequence_gaps_total") == 1
    assert value(metrics, "soundalert_serial_board_resets_total") == 1
    assert value(metrics, "soundalert_serial_board_errors_total", code="overrun") == 1
    stats = core.stats()
    assert stats["board_last_error"] == "overrun"
    assert stats["serial_rejected"] == 2
    assert stats["board_id"] == HELLO.board_id


def test_a_detection_whose_onset_is_too_far_back_is_clamped_to_the_contract() -> None:
    core = BridgeCore("home", "kitchen", BridgeMetrics())
    core.feed(HELLO, T0)
    [event] = core.feed(Detection(1, 200_000, "t4", 0.8, 1_000, 3125, 1), T0 + 200)
    assert (event.window_end - event.window_start).total_seconds() == 60.0
