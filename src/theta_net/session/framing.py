"""Message boundaries on a byte stream: a 4-byte little-endian length, then the message.

Carriers whose reliable path is a stream (QUIC) frame each session message with
:func:`frame` and feed what arrives to a :class:`Deframer`. A length over ``max_message`` is a
protocol violation: the deframer stops (``failed``) and the carrier closes the connection, so a
peer cannot make it buffer without bound.
"""

from __future__ import annotations

import struct

__all__ = ["Deframer", "frame"]

_LEN = struct.Struct("<I")


def frame(message: bytes) -> bytes:
    return _LEN.pack(len(message)) + message


class Deframer:
    """Whole messages out of stream data that arrives in arbitrary pieces."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self.failed = ""

    def feed(self, data: bytes) -> list[bytes]:
        if self.failed:
            return []
        self._buf += data
        out: list[bytes] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if size > self.max_message:
                self.failed = f"a {size}-byte message is over the {self.max_message}-byte limit"
                self._buf = bytearray()
                return out
            if len(buf) - pos - 4 < size:
                break
            out.append(bytes(buf[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
