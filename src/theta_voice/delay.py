"""Playout-delay policies for the jitter buffer: a small ABC and a registry (as aioquic does for
congestion control), so an engine can plug its own.

A policy sees each packet's *transit* (arrival time minus the capture time its timestamp stands
for, plus an unknown constant clock offset) and says how far behind the fastest recent packet the
buffer should play. Only differences of transits matter, so the offset cancels.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, ClassVar

import numpy as np

from .errors import VoiceConfigError

__all__ = [
    "DELAY_POLICIES",
    "DelayPolicy",
    "FixedDelay",
    "PercentileDelay",
    "make_delay_policy",
    "register_delay_policy",
]


class DelayPolicy(ABC):
    """Decides the jitter buffer's target delay from the packets' transits."""

    name: ClassVar[str]

    def __init__(self, *, window: int = 250) -> None:
        if window < 2:
            raise VoiceConfigError("a delay window holds at least 2 packets", setting="window",
                                   expected=">= 2", actual=window)
        self._transits: deque[float] = deque(maxlen=window)

    def observe(self, transit: float) -> None:
        """One packet's transit, in seconds (late packets included: they show the jitter)."""
        if math.isfinite(transit):
            self._transits.append(transit)

    def reset(self) -> None:
        """Forget the history (the sender's clock jumped: a restarted or resynchronised stream)."""
        self._transits.clear()

    @property
    def samples(self) -> int:
        return len(self._transits)

    @property
    def base(self) -> float:
        """The fastest transit in the window: the delay a packet with no jitter has."""
        return min(self._transits) if self._transits else 0.0

    @abstractmethod
    def target_delay(self) -> float:
        """Seconds to play behind :attr:`base`, before the buffer's bounds are applied."""


DELAY_POLICIES: dict[str, type[DelayPolicy]] = {}


def register_delay_policy(cls: type[DelayPolicy]) -> type[DelayPolicy]:
    """Class decorator: make ``cls`` selectable by its ``name``."""
    DELAY_POLICIES[cls.name] = cls
    return cls


def make_delay_policy(name: str, **options: Any) -> DelayPolicy:
    cls = DELAY_POLICIES.get(name)
    if cls is None:
        raise VoiceConfigError(f"no delay policy {name!r}", setting="delay_policy",
                               expected=sorted(DELAY_POLICIES), actual=name)
    return cls(**options)


@register_delay_policy
class PercentileDelay(DelayPolicy):
    """WebRTC NetEq's rule: a high percentile (95th) of the recent arrival jitter, plus headroom
    of one frame so the packet after a lost one is there in time for FEC; the starting delay holds
    until enough packets have been seen."""

    name = "percentile"

    def __init__(self, *, quantile: float = 0.95, headroom: float = 0.02,
                 start_delay: float = 0.06, warmup: int = 25, window: int = 250) -> None:
        super().__init__(window=window)
        if not 0.5 <= quantile <= 1.0:
            raise VoiceConfigError("quantile in [0.5, 1]", setting="quantile",
                                   expected=(0.5, 1.0), actual=quantile)
        self.quantile = quantile
        self.headroom = headroom
        self.start_delay = start_delay
        self.warmup = warmup

    def target_delay(self) -> float:
        if len(self._transits) < self.warmup:
            return self.start_delay
        transits = np.fromiter(self._transits, float, len(self._transits))
        jitter = float(np.quantile(transits - transits.min(), self.quantile))
        return jitter + self.headroom


@register_delay_policy
class FixedDelay(DelayPolicy):
    """A constant delay (Mumble's fixed jitter margin): for comparisons and tests."""

    name = "fixed"

    def __init__(self, *, delay: float = 0.06, window: int = 250) -> None:
        super().__init__(window=window)
        self.delay = delay

    def target_delay(self) -> float:
        return self.delay
