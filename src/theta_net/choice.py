"""Which transport a connection took and why: what ``AutoTransport`` decides and a ``Client``
reports (telemetry, ``theta connect``'s table)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TransportChoice"]


@dataclass(frozen=True)
class TransportChoice:
    """Which transport a connection took, why, and how long the choice took."""

    transport: str
    reason: str
    elapsed_s: float
    primary_error: str = ""

    @property
    def fell_back(self) -> bool:
        """True when the primary transport was given up (timed out or failed)."""
        return self.reason != "configured" and not self.reason.endswith("answered")

    @property
    def short(self) -> str:
        """A table cell: ``quic``, or ``webrtc:timeout`` / ``webrtc:failed`` after a fallback."""
        if not self.fell_back:
            return self.transport
        return f"{self.transport}:{'timeout' if 'did not answer' in self.reason else 'failed'}"
