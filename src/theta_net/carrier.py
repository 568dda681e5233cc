"""The contract between the sans-I/O session and the carriers (QUIC, WebRTC) that move its bytes.

A session never touches a socket: it hands out ``(channel, payload)`` pairs and takes in what
arrived on each channel. A carrier maps the channels onto its library's paths, one for one:

* ``STATE`` and ``VOICE``: unreliable and unordered (QUIC datagrams; WebRTC data channels with
  ``ordered=False, maxRetransmits=0``). A payload never exceeds ``max_datagram_size``.
* ``RELIABLE``: one ordered, reliable byte path (a QUIC stream; an ordered WebRTC data channel)
  carrying the handshake, control, joins and the command log. The carrier keeps message
  boundaries (a length prefix on a stream).
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable


class Channel(enum.IntEnum):
    """Where a payload travels; the value is stable and may appear on the wire."""

    STATE = 0
    VOICE = 1
    RELIABLE = 2


#: Channels whose payloads may be lost, duplicated or reordered.
UNRELIABLE = frozenset({Channel.STATE, Channel.VOICE})


@runtime_checkable
class Carrier(Protocol):
    """One connection to one peer, as the asyncio glue of a transport exposes it."""

    #: The largest unreliable payload the path takes now (after negotiation).
    max_datagram_size: int

    def send(self, channel: Channel, payload: bytes) -> bool:
        """Queue ``payload``; False when an unreliable payload was dropped (pacing, size)."""
        ...

    def unreliable_budget(self) -> int:
        """Bytes of unreliable payload the congestion controller admits right now."""
        ...

    def close(self, reason: str = "") -> None:
        """Close the connection cleanly; idempotent."""
        ...
