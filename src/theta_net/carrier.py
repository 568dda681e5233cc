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
from collections.abc import Callable
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


# -- the receiving side and the transport factory (added with the QUIC carrier) -----------------
@runtime_checkable
class CarrierHandler(Protocol):
    """What a carrier calls as its connection moves: the session's owner implements it."""

    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        """One whole payload arrived on ``channel`` (reliable messages keep their boundaries)."""
        ...

    def carrier_closed(self, reason: str) -> None:
        """The connection is gone (closed by either side, lost, or refused by the library)."""
        ...


@runtime_checkable
class Listener(Protocol):
    """A listening server endpoint of a transport."""

    #: ``(host, port)`` actually bound (port 0 asks for any).
    address: tuple[str, int]

    def close(self) -> None:
        """Stop accepting and close every connection; idempotent."""
        ...


@runtime_checkable
class TransportBackend(Protocol):
    """The object a ``theta.transports`` entry point makes for the network backends: it opens
    carriers. ``accept(carrier)`` returns the handler of a new server-side connection."""

    name: str

    async def listen(
        self, host: str, port: int, accept: Callable[[Carrier], CarrierHandler]
    ) -> Listener: ...

    async def connect(
        self, host: str, port: int, handler: CarrierHandler, *, fingerprint: str = ""
    ) -> Carrier: ...
