"""Round-trip and loss estimation from heartbeats (RFC 6298's smoothing, as QUIC does it)."""

from __future__ import annotations

__all__ = ["LossEstimator", "RttEstimator"]


class RttEstimator:
    """Smoothed RTT and its variance (RFC 6298): srtt <- 7/8 srtt + 1/8 r and
    rttvar <- 3/4 rttvar + 1/4 |srtt - r|."""

    def __init__(self) -> None:
        self.samples = 0
        self.latest = 0.0
        self.srtt = 0.0
        self.rttvar = 0.0
        self.min_rtt = float("inf")

    def add(self, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        self.latest = rtt
        self.min_rtt = min(self.min_rtt, rtt)
        if self.samples == 0:
            self.srtt, self.rttvar = rtt, rtt / 2.0
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.samples += 1


class LossEstimator:
    """The share of the peer's numbered heartbeats that did not arrive, over the last ``window``
    sequence numbers (duplicates and late arrivals count once)."""

    def __init__(self, window: int = 64) -> None:
        self.window = window
        self._set: set[int] = set()
        self.highest = -1
        self.first = -1

    def add(self, sequence: int) -> None:
        if sequence in self._set or sequence <= self.highest - self.window:
            return
        if self.first < 0:
            self.first = sequence
        self._set.add(sequence)
        if sequence > self.highest:
            self.highest = sequence
            floor = sequence - self.window
            if len(self._set) > 2 * self.window:
                self._set = {s for s in self._set if s > floor}

    @property
    def loss(self) -> float:
        if self.highest < 0:
            return 0.0
        expected = min(self.window, self.highest - self.first + 1)
        got = sum(1 for s in self._set if s > self.highest - expected)
        return max(0.0, 1.0 - got / expected)
