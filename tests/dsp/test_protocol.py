"""The $SA1 frame codec: round trips, every rejection reason, resynchronisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.dsp.protocol import (
    MAX_LINE,
    REJECT_REASONS,
    Detection,
    ErrorFrame,
    Frame,
    FrameParser,
    Heartbeat,
    Hello,
    Level,
    Rejection,
    crc16,
    encode,
    parse_line,
)

FRAMES: list[Frame] = [
    Hello(0, 0, "rp2040-E6614103E7", "0.1.0", 16000, 6),
    Detection(1, 3600, "t3", 0.993, 0, 3125, 1),
    Detection(65535, 4294967295, "lf520", 1.0, 4294967000, 500, 65535),
    Level(2, 16, -43.21, (-120.0, -3.01, 0.0, -50.5, -99.99, -1.0)),
    Heartbeat(3, 1008, 63, 0),
    ErrorFrame(4, 2000, "overrun", 3),
]


def _line(body: str) -> bytes:
    return f"${body}*{crc16(body.encode()):04X}\r\n".encode()


def test_crc16_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1
    # The worked example of schemas/serial-protocol.md.
    assert crc16(b"SA1,0,0,HELLO,host,0.1.0,16000,6") == 0x2ED2


def test_matches_firmware_bytes() -> None:
    assert (
        encode(Hello(0, 0, "host", "0.1.0", 16000, 6))
        == b"$SA1,0,0,HELLO,host,0.1.0,16000,6*2ED2\r\n"
    )


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
def test_round_trip(frame: Frame) -> None:
    line = encode(frame)
    assert line.startswith(b"$SA1,")
    assert line.endswith(b"\r\n")
    assert len(line) <= MAX_LINE
    assert parse_line(line) == frame
    assert FrameParser().feed(line) == [frame]


@given(
    seq=st.integers(0, 65535),
    uptime=st.integers(0, 2**32 - 1),
    level=st.integers(-12000, 600),
    bands=st.lists(st.integers(-12000, 600), min_size=6, max_size=6),
)
def test_level_round_trip_property(seq: int, uptime: int, level: int, bands: list[int]) -> None:
    frame = Level(seq, uptime, level / 100, tuple(b / 100 for b in bands))
    assert parse_line(encode(frame)) == frame


def test_line_feed_without_carriage_return_is_accepted() -> None:
    assert parse_line(encode(FRAMES[4]).replace(b"\r\n", b"\n")) == FRAMES[4]


def test_encode_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError, match="wire"):
        encode(Hello(0, 0, "has space", "1", 16000, 6))
    with pytest.raises(ValueError, match="wire"):
        encode(Detection(0, 0, "t3", 0.5, 0, 70000, 1))


REJECTS: list[tuple[bytes, str]] = [
    (encode(FRAMES[4]).replace(b"HB,63", b"HB,64"), "bad_crc"),
    (b"hello world\n", "garbage"),
    (b"$SA1,3,1008,HB,63,0\r\n", "truncated"),
    (_line("SA1,3,1008,PING,1"), "unknown_type"),
    (_line("SA1,3,1008,HB,63"), "bad_field"),
    (_line("SA1,3,1008,HB,063,0"), "bad_field"),
    (_line("SA1,70000,1008,HB,63,0"), "bad_field"),
    (_line("SA1,3,1008,DET,t5,0.500,0,3125,1"), "bad_field"),
    (_line("SA1,3,1008,DET,t3,1.500,0,3125,1"), "bad_field"),
    (_line("SA1,3,1008,LEVEL,-1.0,0,0,0,0,0,0"), "bad_field"),
    (_line("SA1,3,1008,ERR,meltdown,1"), "bad_field"),
    (_line("SB1,3,1008,HB,63,0"), "bad_field"),
    (_line("SA2,3,1008,HB,63,0"), "unsupported_version"),
    (b"$SA2,anything at all*ZZZZ\r\n", "unsupported_version"),
    (b"$SA1," + b"9" * 300 + b"\r\n", "line_too_long"),
]


@pytest.mark.parametrize(("line", "reason"), REJECTS, ids=[r for _, r in REJECTS])
def test_parse_line_rejects(line: bytes, reason: str) -> None:
    result = parse_line(line)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert len(result.raw) <= 64


def test_every_reason_is_reachable_through_the_stream_parser() -> None:
    seen = set()
    for line, _ in REJECTS:
        items = FrameParser().feed(line)
        seen |= {i.reason for i in items if isinstance(i, Rejection)}
    assert seen == set(REJECT_REASONS)


def test_extra_trailing_fields_are_ignored_within_the_major_version() -> None:
    assert parse_line(_line("SA1,3,1008,HB,63,0,future")) == Heartbeat(3, 1008, 63, 0)


def test_resync_after_garbage_and_truncation() -> None:
    good = b"".join(encode(f) for f in FRAMES)
    stream = b"\x00\xffnoise" + encode(FRAMES[0])[:20] + good + b"tail"
    parser = FrameParser()
    items = parser.feed(stream) + parser.finish()
    frames = [i for i in items if not isinstance(i, Rejection)]
    reasons = [i.reason for i in items if isinstance(i, Rejection)]
    assert frames == FRAMES
    assert reasons == ["garbage", "truncated", "garbage"]


def test_10kb_line_without_newline_is_one_rejection_then_resync() -> None:
    parser = FrameParser()
    items = parser.feed(b"$SA1," + b"A" * 10_240)
    items += parser.feed(b"more junk\r\n" + encode(FRAMES[1]))
    assert [i.reason for i in items if isinstance(i, Rejection)] == ["line_too_long"]
    assert [i for i in items if not isinstance(i, Rejection)] == [FRAMES[1]]


def test_long_garbage_without_newline_is_bounded() -> None:
    parser = FrameParser()
    items = parser.feed(b"x" * 10_000)
    assert len(items) == 10_000 // MAX_LINE
    assert all(isinstance(i, Rejection) and i.reason == "garbage" for i in items)


@given(st.binary(max_size=600), st.integers(1, 50))
def test_any_bytes_in_any_chunking_never_raise_and_valid_frames_survive(
    junk: bytes, chunk: int
) -> None:
    stream = junk + b"\n" + encode(FRAMES[1]) + junk + b"\n" + encode(FRAMES[3])
    parser = FrameParser()
    items = [i for k in range(0, len(stream), chunk) for i in parser.feed(stream[k : k + chunk])]
    frames = [i for i in items + parser.finish() if not isinstance(i, Rejection)]
    assert FRAMES[1] in frames
    assert FRAMES[3] in frames
