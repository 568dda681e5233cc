"""Chunking: split an encoded packet into datagram-sized chunks and put it back together.

Each chunk names its message (sequence), its index and the count, and carries a CRC-32 of the
whole message, so chunks may arrive in any order, duplicated, or from a stale message without
corrupting anything: duplicates are ignored, inconsistent chunks are refused, and a reassembled
message whose checksum fails is dropped. The receiver asks again for chunks still missing. The
table of incomplete messages is bounded by count, age and a sequence window (see
:class:`Reassembler`), so chunks that never complete cannot crowd genuine messages out.
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
class ChunkDrops:
    """Why chunks, or whole incomplete messages, were dropped (one counter per reason)."""

    duplicate: int = 0  # a chunk already held, or one of a message already reassembled
    stale: int = 0  # a chunk of a message no newer than the state already applied
    out_of_window: int = 0  # a chunk of a message implausibly far ahead of the applied state
    superseded: int = 0  # an incomplete message made moot by newer state, or by a rival that won
    expired: int = 0  # an incomplete message that got no chunk for ``max_age`` seconds
    evicted: int = 0  # the stalest incomplete message, pushed out of a full table
    refused: int = 0  # a malformed or oversized chunk, or a message failing its checksum

    def total(self) -> int:
        return (
            self.duplicate + self.stale + self.out_of_window + self.superseded + self.expired
            + self.evicted + self.refused
        )


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
    """Collects chunks per message; returns the message once every chunk has arrived.

    The table of incomplete messages is bounded three ways, so that well-formed junk (chunks a
    peer or forger sends and never completes) cannot keep genuine messages out: at most
    ``max_pending`` messages (a new one evicts the stalest, the one that has gone longest without
    a chunk), none silent for longer than ``max_age`` seconds, and, once a state has been
    applied (:meth:`advance`), only sequences in a plausible window after it: newer than the
    applied one and at most ``window`` ahead, plus ``window_rate`` per second since it was applied
    (a sender's sequence keeps moving while nothing arrives). Chunks that disagree on a message's
    count or checksum are kept apart as rival candidates (a forged chunk cannot poison the
    genuine message with its sequence); the first to complete wins. Every drop is counted by
    reason in :attr:`drops`.
    """

    def __init__(
        self,
        *,
        max_message_bytes: int = 64 << 20,
        max_pending: int = 8,
        request_after: float = 0.05,
        request_interval: float = 0.1,
        max_age: float = 2.0,
        window: int = 1024,
        window_rate: float = 1024.0,
        drops: ChunkDrops | None = None,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_pending = max_pending
        self.request_after = request_after
        self.request_interval = request_interval
        self.max_age = max_age
        self.window = window
        self.window_rate = window_rate
        self.drops = drops if drops is not None else ChunkDrops()
        self._pending: dict[tuple[int, int, int], _Pending] = {}  # (sequence, count, checksum)
        self._done: set[int] = set()
        self._applied: int | None = None  # newest sequence applied by the owner, if any
        self._applied_at = 0.0

    @property
    def duplicates(self) -> int:
        """Duplicate chunks (kept for callers of the first release: see :attr:`drops`)."""
        return self.drops.duplicate

    @property
    def dropped(self) -> int:
        """Incomplete messages dropped before completing, for any reason."""
        return self.drops.superseded + self.drops.expired + self.drops.evicted

    def plausible(self, sequence: int, now: float) -> bool:
        """Whether a message ``sequence`` lies in the window after the applied state."""
        if self._applied is None:
            return True
        ahead = self.window + self.window_rate * max(0.0, now - self._applied_at)
        return self._applied < sequence <= self._applied + ahead

    def add(self, chunk: ChunkPacket, now: float = 0.0) -> bytes | None:
        """Take one chunk; the whole message when this chunk completes it, else None."""
        if chunk.sequence in self._done:
            self.drops.duplicate += 1
            return None
        if chunk.count > MAX_CHUNKS or chunk.index >= chunk.count:
            self.drops.refused += 1
            raise ChunkError(f"chunk {chunk.index} of {chunk.count}")
        if self._applied is not None and chunk.sequence <= self._applied:
            self.drops.stale += 1
            return None
        if not self.plausible(chunk.sequence, now):
            self.drops.out_of_window += 1
            return None
        self.expire(now)
        key = (chunk.sequence, chunk.count, chunk.checksum)
        p = self._pending.get(key)
        if p is None:
            if chunk.count * len(chunk.payload) > self.max_message_bytes + len(chunk.payload):
                self.drops.refused += 1
                raise ChunkError(f"message of {chunk.count} chunks exceeds the size limit")
            if len(self._pending) >= self.max_pending:
                self._evict_stalest()
            p = _Pending(chunk.count, chunk.checksum, first_seen=now, last_seen=now)
            self._pending[key] = p
        if chunk.index in p.parts:
            self.drops.duplicate += 1
            return None
        if p.size + len(chunk.payload) > self.max_message_bytes:
            del self._pending[key]
            self.drops.refused += 1
            raise ChunkError(f"message {chunk.sequence} exceeds the size limit")
        p.parts[chunk.index] = chunk.payload
        p.size += len(chunk.payload)
        p.last_seen = now
        if len(p.parts) < p.count:
            return None
        del self._pending[key]
        message = b"".join(p.parts[i] for i in range(p.count))
        if zlib.crc32(message) != p.checksum:
            self.drops.refused += 1
            raise ChunkError(f"message {chunk.sequence} failed its checksum")
        self._done.add(chunk.sequence)
        rivals = [k for k in self._pending if k[0] == chunk.sequence]
        for k in rivals:
            del self._pending[k]
        self.drops.superseded += len(rivals)
        if len(self._done) > 256:
            self._done = set(sorted(self._done)[-128:])
        return message

    def _evict_stalest(self) -> None:
        """Drop the message silent the longest; among equals the least complete, then the one
        with the highest sequence (far-future numbers are what junk looks like)."""
        stalest = min(
            self._pending,
            key=lambda k: (self._pending[k].last_seen, len(self._pending[k].parts), -k[0]),
        )
        del self._pending[stalest]
        self.drops.evicted += 1

    def expire(self, now: float) -> int:
        """Drop incomplete messages that have had no chunk for ``max_age``; how many."""
        old = [k for k, p in self._pending.items() if now - p.last_seen > self.max_age]
        for k in old:
            del self._pending[k]
        self.drops.expired += len(old)
        return len(old)

    def advance(self, applied: int, now: float) -> None:
        """The owner applied state ``applied``: older messages are moot, and the plausible
        window now starts there."""
        if self._applied is not None and applied <= self._applied:
            return
        self._applied, self._applied_at = applied, now
        moot = [k for k in self._pending if not self.plausible(k[0], now)]
        for k in moot:
            del self._pending[k]
            if k[0] <= applied:
                self.drops.superseded += 1
            else:
                self.drops.out_of_window += 1

    def discard_before(self, sequence: int) -> None:
        """Forget incomplete messages older than ``sequence`` (superseded by newer state)."""
        old = [k for k in self._pending if k[0] < sequence]
        for k in old:
            del self._pending[k]
        self.drops.superseded += len(old)

    def requests(self, now: float) -> list[ChunkRequest]:
        """Requests for chunks still missing from messages that have gone quiet (expired ones
        are dropped first, so junk is not asked about for ever)."""
        self.expire(now)
        out = []
        for (seq, _, _), p in sorted(self._pending.items()):
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
        """Sequence -> (chunks received, chunk count) of incomplete messages (of the most
        advanced candidate where rival chunks disagree on a message)."""
        out: dict[int, tuple[int, int]] = {}
        for (seq, _, _), p in sorted(self._pending.items(), key=lambda kv: len(kv[1].parts)):
            out[seq] = (len(p.parts), p.count)
        return out
