"""Chunking: split an encoded packet into datagram-sized chunks and put it back together.

Each chunk names its message (sequence), its index and the count, and carries a CRC-32 of the
whole message, so chunks may arrive in any order, duplicated, or from a stale message without
corrupting anything: duplicates are ignored, inconsistent chunks are refused, and a reassembled
message whose checksum fails is dropped. The receiver asks again for chunks still missing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from .errors import ChunkError
from .packet import ChunkPacket, ChunkRequest, encode_packet

DEFAULT_BUDGET = 1200
#: Worst-case chunk header: tag (2), three 5-byte varints, CRC-32 (4).
CHUNK_HEADER_MAX = 2 + 15 + 4
MAX_CHUNKS = (1 << 16) - 1  # the envelope carries chunk counts as uint16


def split(message: bytes, sequence: int, budget: int = DEFAULT_BUDGET) -> list[bytes]:
    """Encoded chunk packets, each at most ``budget`` bytes."""
    per = budget - CHUNK_HEADER_MAX
    if per < 16:
        raise ValueError(f"packet budget {budget} too small for chunking")
    count = max(1, -(-len(message) // per))
    if count > MAX_CHUNKS:
        raise ValueError(f"message of {len(message)} bytes needs {count} chunks (max {MAX_CHUNKS})")
    crc = zlib.crc32(message)
    return [
        encode_packet(ChunkPacket(sequence, i, count, crc, message[i * per : (i + 1) * per]))
        for i in range(count)
    ]


@dataclass
class _Pending:
    count: int
    checksum: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    last_request: float = -1.0


class Reassembler:
    """Collects chunks per message; returns the message once every chunk has arrived."""

    def __init__(
        self,
        *,
        max_message_bytes: int = 64 << 20,
        max_pending: int = 8,
        request_after: float = 0.05,
        request_interval: float = 0.1,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_pending = max_pending
        self.request_after = request_after
        self.request_interval = request_interval
        self._pending: dict[int, _Pending] = {}
        self._done: set[int] = set()
        self.duplicates = 0
        self.dropped = 0

    def add(self, chunk: ChunkPacket, now: float = 0.0) -> bytes | None:
        """Take one chunk; the whole message when this chunk completes it, else None."""
        if chunk.sequence in self._done:
            self.duplicates += 1
            return None
        if chunk.count > MAX_CHUNKS or chunk.index >= chunk.count:
            raise ChunkError(f"chunk {chunk.index} of {chunk.count}")
        p = self._pending.get(chunk.sequence)
        if p is None:
            if chunk.count * len(chunk.payload) > self.max_message_bytes + len(chunk.payload):
                raise ChunkError(f"message of {chunk.count} chunks exceeds the size limit")
            if len(self._pending) >= self.max_pending:
                oldest = min(self._pending)
                if chunk.sequence < oldest:
                    self.dropped += 1
                    return None
                del self._pending[oldest]
                self.dropped += 1
            p = _Pending(chunk.count, chunk.checksum, first_seen=now)
            self._pending[chunk.sequence] = p
        elif p.count != chunk.count or p.checksum != chunk.checksum:
            raise ChunkError(f"chunk of message {chunk.sequence} disagrees with its siblings")
        if chunk.index in p.parts:
            self.duplicates += 1
            return None
        if p.size + len(chunk.payload) > self.max_message_bytes:
            del self._pending[chunk.sequence]
            raise ChunkError(f"message {chunk.sequence} exceeds the size limit")
        p.parts[chunk.index] = chunk.payload
        p.size += len(chunk.payload)
        p.last_seen = now
        if len(p.parts) < p.count:
            return None
        del self._pending[chunk.sequence]
        message = b"".join(p.parts[i] for i in range(p.count))
        if zlib.crc32(message) != p.checksum:
            raise ChunkError(f"message {chunk.sequence} failed its checksum")
        self._done.add(chunk.sequence)
        if len(self._done) > 256:
            self._done = set(sorted(self._done)[-128:])
        return message

    def discard_before(self, sequence: int) -> None:
        """Forget incomplete messages older than ``sequence`` (superseded by newer state)."""
        for seq in [s for s in self._pending if s < sequence]:
            del self._pending[seq]

    def requests(self, now: float) -> list[ChunkRequest]:
        """Requests for chunks still missing from messages that have gone quiet."""
        out = []
        for seq, p in sorted(self._pending.items()):
            if now - p.last_seen < self.request_after:
                continue
            if p.last_request >= 0 and now - p.last_request < self.request_interval:
                continue
            missing = tuple(i for i in range(p.count) if i not in p.parts)
            p.last_request = now
            out.append(ChunkRequest(seq, missing))
        return out

    @property
    def pending(self) -> dict[int, tuple[int, int]]:
        """Sequence -> (chunks received, chunk count) of incomplete messages."""
        return {s: (len(p.parts), p.count) for s, p in self._pending.items()}
