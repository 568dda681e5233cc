"""Security guards in front of the log: replay window, token bucket, payload guard.

Each guard answers yes or no and never raises on hostile input; the log counts every no in
telemetry (``duplicates_dropped`` and ``replay_rejections``, see :mod:`.log`;
``rate_limit_drops``, ``payload_guard_drops``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SeqVerdict(Enum):
    NEW = "new"
    REPLAY = "replay"  # already seen (or below the window)
    TOO_FAR = "too_far"  # beyond the window: refused now, may arrive again later


class SequenceWindow:
    """Every sequence number an author has used: a contiguous floor plus the ones above it.

    Exact (no false replays however late an entry arrives), and bounded: numbers more than
    ``span`` above the floor are refused until the gap below them fills.
    """

    __slots__ = ("_above", "floor", "span")

    def __init__(self, span: int = 1 << 16) -> None:
        self.floor = 0  # every seq <= floor has been seen
        self._above: set[int] = set()
        self.span = span

    def check(self, seq: int) -> SeqVerdict:
        if seq <= self.floor or seq in self._above:
            return SeqVerdict.REPLAY
        if seq > self.floor + self.span:
            return SeqVerdict.TOO_FAR
        return SeqVerdict.NEW

    def mark(self, seq: int) -> None:
        if seq <= self.floor:
            return
        self._above.add(seq)
        while self.floor + 1 in self._above:
            self.floor += 1
            self._above.discard(self.floor)

    def unmark(self, seq: int) -> None:
        """Forget that ``seq`` was seen (an entry withdrawn while a resend may still count)."""
        if seq <= self.floor:
            self._above.update(range(seq + 1, self.floor + 1))
            self.floor = seq - 1
        else:
            self._above.discard(seq)

    def raise_floor(self, floor: int) -> None:
        """Mark every seq up to ``floor`` seen (a checkpoint covers them)."""
        if floor <= self.floor:
            return
        self.floor = floor
        self._above = {s for s in self._above if s > floor}
        while self.floor + 1 in self._above:
            self.floor += 1
            self._above.discard(self.floor)

    @property
    def highest(self) -> int:
        return max(self._above) if self._above else self.floor


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; one token per entry."""

    __slots__ = ("_last", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._last = now

    def available(self, now: float) -> float:
        """Tokens at ``now`` (refilled; nothing taken)."""
        if now > self._last:
            self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
            self._last = now
        return self.tokens

    def take(self, now: float, n: int = 1) -> bool:
        if self.available(now) >= n:
            self.tokens -= n
            return True
        return False


@dataclass(frozen=True)
class GuardConfig:
    """Limits of the guards.

    Remote buckets should be more generous than an honest peer's own (``local_*``): batches
    arrive in bursts after network jitter. An entry dropped by the rate limit is not marked
    seen, so an anti-entropy sync can deliver it again later.
    """

    max_payload: int = 64 * 1024
    max_packet: int = 4 * 1024 * 1024
    rate: float = 200.0
    burst: float = 400.0
    local_rate: float = 150.0
    local_burst: float = 300.0
    window_span: int = 1 << 16
    max_pending: int = 100_000
    #: a sync request makes this log resend what the asker lacks: at most one answer per interval
    #: and source (the peer named to CommandLog.receive; all unnamed ones share one)
    sync_answer_interval_s: float = 0.25
    #: duplicates in sync answers this long after our own request count as ``sync_duplicates``
    #: rather than ``duplicates_dropped``
    sync_answer_window_s: float = 30.0
    #: a checkpoint travels alone in its packet and may exceed ``max_packet`` up to this size
    max_checkpoint: int = 64 * 1024 * 1024
    #: signature checks per second a named source (the ``source`` given to CommandLog.receive)
    #: may waste: batches that fail their signature or bring nothing (every entry over its
    #: author's rate, or refused). Beyond, its batches are dropped before the check (counted
    #: ``source_rate_drops``, left unseen so a sync can bring them). Honest traffic wastes
    #: none: copies are sorted out before the check.
    source_waste_rate: float = 20.0
    source_waste_burst: float = 100.0
    #: entries whose author had no role at their place (revoked before them) wait, in case a
    #: grant before them arrives, in a quarantine of at most this many bytes (oldest evicted)
    max_quarantine_bytes: int = 1 << 20


class PayloadGuard:
    """Size limits on payloads and whole packets."""

    def __init__(self, max_payload: int, max_packet: int) -> None:
        self.max_payload = max_payload
        self.max_packet = max_packet

    def packet_ok(self, size: int) -> bool:
        return size <= self.max_packet

    def payload_ok(self, size: int) -> bool:
        return size <= self.max_payload
