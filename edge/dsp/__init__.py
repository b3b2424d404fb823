"""Audio DSP shared by the RP2040 firmware's reference and the Pi agent: frame analysis, NFPA 72
temporal-pattern detectors, synthetic alarms and the serial frame codec. numpy only, no I/O."""

from edge.dsp.patterns import Detection, DetectorKind, PatternDetector
from edge.dsp.protocol import FrameParser, Rejection, RejectReason, crc16, encode, parse_line
from edge.dsp.reference import FrameFeatures, analyse_frames

__all__ = [
    "Detection",
    "DetectorKind",
    "FrameFeatures",
    "FrameParser",
    "PatternDetector",
    "RejectReason",
    "Rejection",
    "analyse_frames",
    "crc16",
    "encode",
    "parse_line",
]
