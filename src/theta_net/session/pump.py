"""Moving bytes between two in-memory sessions: the pump shared by tests and benchmarks
(aioquic's ``roundtrip`` helpers are the model)."""

from __future__ import annotations

from collections.abc import Callable

from ..carrier import Channel
from .events import Event
from .session import Session

__all__ = ["drain_events", "roundtrip", "transfer"]


def transfer(
    sender: Session,
    receiver: Session,
    now: float,
    keep: Callable[[Channel, bytes], bool] | None = None,
) -> int:
    """Hand everything ``sender`` has to send to ``receiver``; ``keep`` may drop some (a lossy
    path). Returns how many payloads were delivered."""
    n = 0
    for channel, data in sender.datagrams_to_send(now):
        if keep is None or keep(channel, data):
            receiver.receive(channel, data, now)
            n += 1
    return n


def roundtrip(a: Session, b: Session, now: float) -> int:
    """Transfer both ways until neither side has anything left to send."""
    total = 0
    for _ in range(16):
        moved = transfer(a, b, now) + transfer(b, a, now)
        total += moved
        if not moved:
            break
    return total


def drain_events(session: Session) -> list[Event]:
    out = []
    while (event := session.next_event()) is not None:
        out.append(event)
    return out
