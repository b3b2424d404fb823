"""Pure codec of the ``$SA1`` serial line protocol (spec: schemas/serial-protocol.md).

No I/O: :func:`encode` turns a frame into wire bytes, :func:`parse_line` checks one line, and
:class:`FrameParser` is a streaming parser you feed raw bytes; it yields frames and
:class:`Rejection` objects (with a reason and a truncated copy of the bytes) and resynchronises
on the next ``$``. Bad input never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DETECTORS",
    "ERROR_CODES",
    "MAX_LINE",
    "N_BANDS",
    "PROTOCOL_VERSION",
    "REJECT_REASONS",
    "Detection",
    "ErrorFrame",
    "Frame",
    "FrameParser",
    "Heartbeat",
    "Hello",
    "Level",
    "RejectReason",
    "Rejection",
    "crc16",
    "encode",
    "parse_line",
]

PROTOCOL_VERSION: Final = 1
MAX_LINE: Final = 256
"""Longest valid line in bytes, from ``$`` to ``\\n`` inclusive."""
N_BANDS: Final = 6
DETECTORS: Final = frozenset({"t3", "t4", "lf520"})
ERROR_CODES: Final = frozenset({"overrun", "mic", "tx", "internal"})
_RAW_KEEP: Final = 64

RejectReason = Literal[
    "bad_crc", "garbage", "truncated", "line_too_long", "unknown_type", "bad_field",
    "unsupported_version",
]  # fmt: skip
REJECT_REASONS: Final[tuple[RejectReason, ...]] = (
    "bad_crc", "garbage", "truncated", "line_too_long", "unknown_type", "bad_field",
    "unsupported_version",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Hello:
    seq: int
    uptime_ms: int
    board_id: str
    fw_version: str
    sample_rate_hz: int
    n_bands: int


@dataclass(frozen=True, slots=True)
class Detection:
    seq: int
    uptime_ms: int
    detector: str
    """``t3``, ``t4`` or ``lf520``."""
    confidence: float
    onset_ms: int
    """Uptime at which the alarm cycle began."""
    tone_hz: int
    cycle: int


@dataclass(frozen=True, slots=True)
class Level:
    seq: int
    uptime_ms: int
    level_dbfs: float
    bands_dbfs: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    seq: int
    uptime_ms: int
    frames: int
    overruns: int


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    seq: int
    uptime_ms: int
    code: str
    value: int


Frame = Hello | Detection | Level | Heartbeat | ErrorFrame


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    raw: bytes
    """The rejected bytes, cut to 64 for logging."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


_U32 = re.compile(r"0|[1-9][0-9]{0,9}")
_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
_DB = re.compile(r"-?[0-9]{1,3}\.[0-9]{2}")
_CONF = re.compile(r"(0\.[0-9]{3}|1\.000)")
_TRAILER = re.compile(rb"\*([0-9A-F]{4})\Z")
_VERSION = re.compile(rb"SA([0-9]{1,5})(,|\Z)")


class _BadFieldError(ValueError):
    pass


def _u32(text: str, limit: int = 0xFFFFFFFF) -> int:
    if not _U32.fullmatch(text) or int(text) > limit:
        raise _BadFieldError(text)
    return int(text)


def _id(text: str) -> str:
    if not _ID.fullmatch(text):
        raise _BadFieldError(text)
    return text


def _db(text: str) -> float:
    if not _DB.fullmatch(text):
        raise _BadFieldError(text)
    return float(text)


def _fields(frame: Frame) -> tuple[str, list[str]]:
    match frame:
        case Hello():
            return "HELLO", [
                frame.board_id, frame.fw_version, str(frame.sample_rate_hz), str(frame.n_bands),
            ]  # fmt: skip
        case Detection():
            return "DET", [
                frame.detector, f"{frame.confidence:.3f}", str(frame.onset_ms),
                str(frame.tone_hz), str(frame.cycle),
            ]  # fmt: skip
        case Level():
            return "LEVEL", [f"{v:.2f}" for v in (frame.level_dbfs, *frame.bands_dbfs)]
        case Heartbeat():
            return "HB", [str(frame.frames), str(frame.overruns)]
        case ErrorFrame():
            return "ERR", [frame.code, str(frame.value)]


def encode(frame: Frame) -> bytes:
    """The wire line of ``frame``, ``$`` to ``\\r\\n``. Raises ValueError if it is invalid."""
    kind, fields = _fields(frame)
    body = ",".join([f"SA{PROTOCOL_VERSION}", str(frame.seq), str(frame.uptime_ms), kind, *fields])
    line = f"${body}*{crc16(body.encode('ascii')):04X}\r\n".encode("ascii")
    parsed = parse_line(line)
    if parsed != frame:
        raise ValueError(f"frame does not survive the wire format: {frame!r}")
    return line


def _body(kind: str, seq: int, uptime: int, f: list[str]) -> Frame | RejectReason:
    # Within a major version new fields may be appended: extra trailing fields are ignored.
    try:
        match kind:
            case "HELLO" if len(f) >= 4:
                return Hello(seq, uptime, _id(f[0]), _id(f[1]), _u32(f[2]), _u32(f[3], 64))
            case "DET" if len(f) >= 5:
                if f[0] not in DETECTORS or not _CONF.fullmatch(f[1]):
                    return "bad_field"
                return Detection(
                    seq, uptime, f[0], float(f[1]), _u32(f[2]), _u32(f[3], 65535),
                    _u32(f[4], 65535),
                )  # fmt: skip
            case "LEVEL" if len(f) >= 1 + N_BANDS:
                values = [_db(v) for v in f[: 1 + N_BANDS]]
                return Level(seq, uptime, values[0], tuple(values[1:]))
            case "HB" if len(f) >= 2:
                return Heartbeat(seq, uptime, _u32(f[0]), _u32(f[1]))
            case "ERR" if len(f) >= 2:
                if f[0] not in ERROR_CODES:
                    return "bad_field"
                return ErrorFrame(seq, uptime, f[0], _u32(f[1]))
            case "HELLO" | "DET" | "LEVEL" | "HB" | "ERR":
                return "bad_field"  # too few fields
            case _:
                return "unknown_type"
    except _BadFieldError:
        return "bad_field"


def _reason(line: bytes) -> Frame | RejectReason:
    if len(line) > MAX_LINE:
        return "line_too_long"
    text = line.rstrip(b"\n").removesuffix(b"\r")
    version = _VERSION.match(text, 1)
    if version is not None and int(version.group(1)) != PROTOCOL_VERSION:
        return "unsupported_version"
    trailer = _TRAILER.search(text)
    if trailer is None:
        return "truncated"
    content = text[1 : trailer.start()]
    if crc16(content) != int(trailer.group(1), 16):
        return "bad_crc"
    if version is None:
        return "bad_field"
    try:
        fields = content.decode("ascii").split(",")
    except UnicodeDecodeError:
        return "bad_field"
    if len(fields) < 4:
        return "bad_field"
    try:
        seq, uptime = _u32(fields[1], 65535), _u32(fields[2])
    except _BadFieldError:
        return "bad_field"
    return _body(fields[3], seq, uptime, fields[4:])


def parse_line(line: bytes) -> Frame | Rejection:
    """Parse one complete line: ``$`` up to and including ``\\n`` (the ``\\r`` is optional)."""
    if not line.startswith(b"$") or not line.endswith(b"\n"):
        return Rejection("garbage" if not line.startswith(b"$") else "truncated", line[:_RAW_KEEP])
    result = _reason(line)
    if isinstance(result, str):
        return Rejection(result, line[:_RAW_KEEP])
    return result


class FrameParser:
    """Streaming parser: ``feed`` bytes as they arrive, get frames and rejections in order.

    * Bytes outside a frame (other than CR/LF) are one ``garbage`` rejection per run, reported
      when the run ends (at ``$`` or a newline), at ``MAX_LINE`` bytes, or at :meth:`finish`.
    * A ``$`` inside a frame ends it as ``truncated`` and starts a new frame.
    * A frame longer than ``MAX_LINE`` bytes is ``line_too_long``; its remaining bytes are
      dropped up to the next newline or ``$``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame | Rejection]:
        out: list[Frame | Rejection] = []
        for byte in data:
            self._byte(byte, out)
        return out

    def finish(self) -> list[Frame | Rejection]:
        """End of input: whatever is pending is rejected."""
        out: list[Frame | Rejection] = []
        if self._in_frame:
            out.append(Rejection("truncated", bytes(self._buf[:_RAW_KEEP])))
        elif self._buf:
            out.append(Rejection("garbage", bytes(self._buf[:_RAW_KEEP])))
        self._buf.clear()
        self._in_frame = self._discarding = False
        return out

    def _flush_garbage(self, out: list[Frame | Rejection]) -> None:
        if self._buf and not self._in_frame:
            out.append(Rejection("garbage", bytes(self._buf[:_RAW_KEEP])))
            self._buf.clear()

    def _byte(self, byte: int, out: list[Frame | Rejection]) -> None:
        if byte == 0x24:  # '$'
            if self._in_frame:
                out.append(Rejection("truncated", bytes(self._buf[:_RAW_KEEP])))
                self._buf.clear()
            self._flush_garbage(out)
            self._in_frame, self._discarding = True, False
            self._buf.append(byte)
            return
        if self._discarding:
            self._discarding = byte != 0x0A
            return
        if not self._in_frame:
            if byte in (0x0A, 0x0D):
                self._flush_garbage(out)
                return
            self._buf.append(byte)
            if len(self._buf) >= MAX_LINE:
                self._flush_garbage(out)
            return
        self._buf.append(byte)
        if byte == 0x0A:
            out.append(parse_line(bytes(self._buf)))
            self._buf.clear()
            self._in_frame = False
        elif len(self._buf) >= MAX_LINE:
            out.append(Rejection("line_too_long", bytes(self._buf[:_RAW_KEEP])))
            self._buf.clear()
            self._in_frame, self._discarding = False, True
