"""The voice packet: a fixed 18-byte header and one codec frame, carried as opaque bytes.

A carrier (the loopback link, a QUIC datagram on the session's ``voice`` channel, an unordered
WebRTC data channel) moves it without looking inside. Layout, big-endian::

    0  u8   magic (0xA) << 4 | version (1)
    1  u8   flags: bit 0 speech (the sender's VAD), bit 1 talkspurt start, bit 2 FEC inside
    2  u8   codec id (0 pcm, 1 opus)
    3  u8   frame length in ms (10, 20, 40 or 60)
    4  u32  stream id (one per speaker and sending session)
    8  u32  sequence number (+1 per packet sent; DTX silence sends none, so gaps mean loss)
    12 u32  timestamp in samples at 48 kHz of the frame's first sample (advances in DTX too)
    16 u16  payload length
    18 ...  payload (at most 1,275 bytes: the largest one-frame Opus packet)

A packet whose length disagrees with its payload-length field is refused (truncated or oversized),
so a receiver never decodes a partial frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import VoicePacketError

__all__ = [
    "CODEC_IDS",
    "FLAG_FEC",
    "FLAG_SPEECH",
    "FLAG_START",
    "HEADER",
    "MAX_PAYLOAD",
    "VOICE_VERSION",
    "VoicePacket",
    "VoiceReport",
    "is_report",
]

VOICE_MAGIC = 0xA
VOICE_VERSION = 1
HEADER = struct.Struct(">BBBBIIIH")
MAX_PAYLOAD = 1275
FLAG_SPEECH = 0x01
FLAG_START = 0x02
FLAG_FEC = 0x04
_KNOWN_FLAGS = FLAG_SPEECH | FLAG_START | FLAG_FEC
CODEC_IDS = {"pcm": 0, "opus": 1}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}
FRAME_MS = (10, 20, 40, 60)
_FIRST_BYTE = (VOICE_MAGIC << 4) | VOICE_VERSION


@dataclass(frozen=True, slots=True)
class VoicePacket:
    """One frame of one speaker's stream."""

    stream_id: int
    seq: int
    timestamp: int
    payload: bytes
    codec: str = "opus"
    frame_ms: int = 20
    speech: bool = True
    start: bool = False
    fec: bool = False

    def encode(self) -> bytes:
        if self.codec not in CODEC_IDS:
            raise VoicePacketError(f"unknown codec {self.codec!r}", reason="codec",
                                   expected=sorted(CODEC_IDS), actual=self.codec)
        if self.frame_ms not in FRAME_MS:
            raise VoicePacketError(f"frame of {self.frame_ms} ms", reason="frame_ms",
                                   expected=FRAME_MS, actual=self.frame_ms)
        if len(self.payload) > MAX_PAYLOAD:
            raise VoicePacketError(f"payload of {len(self.payload)} bytes", reason="oversized",
                                   expected=MAX_PAYLOAD, actual=len(self.payload))
        for name in ("stream_id", "seq", "timestamp"):
            value = getattr(self, name)
            if not 0 <= value < 2**32:
                raise VoicePacketError(f"{name} {value} is not a u32", reason=name,
                                       expected=(0, 2**32 - 1), actual=value)
        flags = ((FLAG_SPEECH if self.speech else 0) | (FLAG_START if self.start else 0)
                 | (FLAG_FEC if self.fec else 0))
        return HEADER.pack(_FIRST_BYTE, flags, CODEC_IDS[self.codec], self.frame_ms,
                           self.stream_id, self.seq, self.timestamp,
                           len(self.payload)) + self.payload

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> VoicePacket:
        """Parse one packet; every malformation raises VoicePacketError with its ``reason``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise VoicePacketError(f"a voice packet is bytes, got {type(data).__name__}",
                                   reason="type", expected="bytes", actual=type(data).__name__)
        raw = bytes(data)
        if len(raw) < HEADER.size:
            raise VoicePacketError(f"{len(raw)} bytes, shorter than the header",
                                   reason="truncated", expected=HEADER.size, actual=len(raw))
        first, flags, codec_id, frame_ms, stream_id, seq, ts, length = HEADER.unpack_from(raw)
        if first != _FIRST_BYTE:
            reason = "version" if first >> 4 == VOICE_MAGIC else "magic"
            raise VoicePacketError(f"first byte {first:#04x}", reason=reason,
                                   expected=_FIRST_BYTE, actual=first)
        if flags & ~_KNOWN_FLAGS:
            raise VoicePacketError(f"unknown flags {flags:#04x}", reason="flags",
                                   expected=_KNOWN_FLAGS, actual=flags)
        codec = CODEC_NAMES.get(codec_id)
        if codec is None:
            raise VoicePacketError(f"unknown codec id {codec_id}", reason="codec",
                                   expected=sorted(CODEC_NAMES), actual=codec_id)
        if frame_ms not in FRAME_MS:
            raise VoicePacketError(f"frame of {frame_ms} ms", reason="frame_ms",
                                   expected=FRAME_MS, actual=frame_ms)
        if length == 0 or length > MAX_PAYLOAD:
            raise VoicePacketError(f"payload length {length}", reason="oversized",
                                   expected=(1, MAX_PAYLOAD), actual=length)
        body = len(raw) - HEADER.size
        if body != length:
            raise VoicePacketError(
                f"payload of {body} bytes where the header says {length}",
                reason="truncated" if body < length else "oversized",
                expected=length, actual=body)
        return cls(stream_id, seq, ts, raw[HEADER.size:], codec, frame_ms,
                   bool(flags & FLAG_SPEECH), bool(flags & FLAG_START), bool(flags & FLAG_FEC))


REPORT_FIRST_BYTE = 0xB1
REPORT = struct.Struct(">BxHIH")


def is_report(data: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram is a listener report (anything but bytes is neither: the packet
    decoder then refuses it with its ``type`` reason, where ``len(None)`` raised TypeError)."""
    return (isinstance(data, (bytes, bytearray, memoryview)) and len(data) > 0
            and data[0] == REPORT_FIRST_BYTE)


@dataclass(frozen=True, slots=True)
class VoiceReport:
    """A listener's feedback on one stream (RTCP's receiver report, cut down): the loss it sees,
    which the sender feeds to Opus's FEC, and its jitter-buffer delay. 10 bytes::

        0 u8 0xB1, 1 pad, 2 u16 loss in 1/65535, 4 u32 stream id, 8 u16 buffer delay in ms
    """

    stream_id: int
    loss: float
    delay_ms: int = 0

    def encode(self) -> bytes:
        loss = round(min(max(self.loss, 0.0), 1.0) * 65535)
        return REPORT.pack(REPORT_FIRST_BYTE, loss, self.stream_id % 2**32,
                           min(max(self.delay_ms, 0), 65535))

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> VoiceReport:
        raw = bytes(data)
        if len(raw) != REPORT.size:
            raise VoicePacketError(f"a report is {REPORT.size} bytes, got {len(raw)}",
                                   reason="truncated" if len(raw) < REPORT.size else "oversized",
                                   expected=REPORT.size, actual=len(raw))
        first, loss, stream_id, delay = REPORT.unpack(raw)
        if first != REPORT_FIRST_BYTE:
            raise VoicePacketError(f"first byte {first:#04x}", reason="magic",
                                   expected=REPORT_FIRST_BYTE, actual=first)
        return cls(stream_id, loss / 65535, delay)
