"""The WebRTC carrier: one aiortc peer connection, three negotiated data channels.

The channels are created out of band (``negotiated=True``) with fixed stream ids on both sides,
so neither side waits for the other's DCEP open message and a browser declares them the same way:

=========  ====  =================================================  ===========================
channel    id    reliability                                        carries
=========  ====  =================================================  ===========================
state      0     ``ordered=False, maxRetransmits=0``                replication state
voice      1     ``ordered=False, maxRetransmits=0``                voice frames
reliable   2     ordered, reliable                                  handshake, control, joins,
                                                                    command log
=========  ====  =================================================  ===========================

An unreliable payload travels as one SCTP DATA chunk (so a lost packet loses one message, not a
fragment of a bigger one): ``max_datagram_size`` is the smaller of that chunk's user-data size and
the peer's negotiated ``max-message-size``. Reliable messages of any size up to
``max_reliable_message`` are cut into fragments within the negotiated size; each fragment starts
with one byte, :data:`MORE` when another fragment of the same message follows, :data:`LAST` on the
final one.

Pacing reads the SCTP association's congestion window: an unreliable payload is sent only while
the bytes in flight plus the bytes already queued leave room for it, so state is never queued
behind old state; a refused payload is counted and the caller sends newer state later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from theta_ecs.errors import ThetaError

from ..carrier import UNRELIABLE, Channel

__all__ = [
    "CHANNEL_IDS",
    "LAST",
    "MORE",
    "SCTP_CHUNK_PAYLOAD",
    "CarrierStats",
    "WebRtcCarrier",
    "WebRtcCarrierError",
]

log = logging.getLogger(__name__)

#: Stream id of each channel, the same on every peer (the browser page declares these too).
CHANNEL_IDS: dict[Channel, int] = {Channel.STATE: 0, Channel.VOICE: 1, Channel.RELIABLE: 2}
#: Reliable-fragment prefixes.
MORE = 0x01
LAST = 0x00
#: User data of one SCTP DATA chunk whose packet (1,189 bytes) fits a 1,280-byte IPv6 MTU after
#: UDP and DTLS: aiortc's bound, and Chromium's; a test checks it against aiortc's constant.
SCTP_CHUNK_PAYLOAD = 1160
#: What RFC 8841 says to assume when the peer's SDP names no max-message-size.
DEFAULT_MAX_MESSAGE_SIZE = 65536


#: Messages kept for a handler that is not attached yet (the server attaches it once open).
EARLY_MESSAGES = 256


class CarrierHandler(Protocol):
    """What the carrier calls: the session's owner implements it."""

    def carrier_received(self, channel: Channel, payload: bytes) -> None: ...

    def carrier_closed(self, reason: str) -> None: ...


class FragmentError(ThetaError, ValueError):
    """A reliable fragment that breaks the framing (no flag byte, or over the size limit)."""

    def __init__(self, problem: str, counter: str) -> None:
        super().__init__(problem)
        self.counter = counter


class FragmentJoiner:
    """Whole reliable messages from fragments (sans-I/O, so it can be fuzzed alone)."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._buffer = bytearray()

    def feed(self, fragment: bytes) -> bytes | None:
        """The message this fragment completes, or None; :class:`FragmentError` on a fault
        (the buffer is then empty: the connection is to be closed)."""
        if not fragment or fragment[0] not in (MORE, LAST):
            self._buffer.clear()
            raise FragmentError("malformed reliable fragment", "reliable_bad_fragment")
        if len(self._buffer) + len(fragment) - 1 > self.max_message:
            self._buffer.clear()
            raise FragmentError(f"reliable message over {self.max_message} bytes",
                                "reliable_oversized")
        self._buffer += memoryview(fragment)[1:]
        if fragment[0] == MORE:
            return None
        message = bytes(self._buffer)
        self._buffer.clear()
        return message

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def fragments(payload: bytes, max_message_size: int) -> list[bytes]:
    """``payload`` cut into reliable fragments of at most ``max_message_size`` bytes each."""
    step = max(max_message_size - 1, 1)
    out = []
    for start in range(0, max(len(payload), 1), step):
        flag = MORE if start + step < len(payload) else LAST
        out.append(bytes((flag,)) + payload[start : start + step])
    return out


class WebRtcCarrierError(ThetaError):
    """A carrier misuse: a reliable message over the limit."""


@dataclass
class CarrierStats:
    """Per-channel payload counters and every drop by its reason."""

    messages_sent: dict[str, int] = field(default_factory=dict)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    messages_received: dict[str, int] = field(default_factory=dict)
    bytes_received: dict[str, int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)

    def count(self, table: dict[str, int], key: str, amount: int = 1) -> None:
        table[key] = table.get(key, 0) + amount

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "messages_sent": dict(self.messages_sent),
            "bytes_sent": dict(self.bytes_sent),
            "messages_received": dict(self.messages_received),
            "bytes_received": dict(self.bytes_received),
            "drops": dict(self.drops),
        }


def create_channels(pc: Any) -> dict[Channel, Any]:
    """Declare the three negotiated data channels on ``pc`` (before the offer or the answer)."""
    unreliable = {"ordered": False, "maxRetransmits": 0, "negotiated": True}
    return {
        Channel.STATE: pc.createDataChannel("state", id=CHANNEL_IDS[Channel.STATE], **unreliable),
        Channel.VOICE: pc.createDataChannel("voice", id=CHANNEL_IDS[Channel.VOICE], **unreliable),
        Channel.RELIABLE: pc.createDataChannel(
            "reliable", id=CHANNEL_IDS[Channel.RELIABLE], ordered=True, negotiated=True
        ),
    }


class WebRtcCarrier:
    """A :class:`theta_net.carrier.Carrier` over an aiortc ``RTCPeerConnection``.

    The handler's ``carrier_received(channel, payload)`` is called for every whole message that
    arrives (reliable messages once reassembled), ``carrier_closed(reason)`` once, when the
    connection ends. Messages that arrive before a handler is attached wait (a bounded number).
    """

    max_datagram_size: int

    def __init__(
        self,
        pc: Any,
        channels: dict[Channel, Any],
        handler: CarrierHandler | None = None,
        *,
        max_reliable_message: int = 1 << 20,
        max_send_buffer: int = 8 << 20,
    ) -> None:
        self.pc = pc
        self.max_send_buffer = max_send_buffer
        self.channels = channels
        self.handler = handler
        self._early: deque[tuple[Channel, bytes]] = deque()
        self.max_reliable_message = max_reliable_message
        self.max_datagram_size = SCTP_CHUNK_PAYLOAD
        self.stats = CarrierStats()
        self.closed_reason: str | None = None
        self._opened = asyncio.get_running_loop().create_future()
        self._joiner = FragmentJoiner(max_reliable_message)
        self._close_task: asyncio.Task[None] | None = None
        for channel, dc in channels.items():
            self._bind(channel, dc)
        pc.on("connectionstatechange", self._on_connection_state)

    # -- setup -----------------------------------------------------------------------------------
    def _bind(self, channel: Channel, dc: Any) -> None:
        name = channel.name.lower()

        def on_message(message: bytes | str) -> None:
            if isinstance(message, str):
                self.stats.count(self.stats.drops, f"{name}_text_message")
                return
            self._received(channel, message)

        dc.on("message", on_message)
        dc.on("open", self._on_channel_open)
        dc.on("close", lambda: self._closed(f"{name} channel closed"))
        if dc.readyState == "open":
            self._on_channel_open()

    def _on_channel_open(self) -> None:
        if self._opened.done() or any(dc.readyState != "open" for dc in self.channels.values()):
            return
        self.max_datagram_size = min(SCTP_CHUNK_PAYLOAD, self.max_message_size)
        self._opened.set_result(None)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self._closed(f"peer connection {state}")

    async def wait_open(self, timeout: float) -> None:
        """Return once all three channels are open; ``TimeoutError`` after ``timeout`` s."""
        await asyncio.wait_for(asyncio.shield(self._opened), timeout)

    @property
    def is_open(self) -> bool:
        return self._opened.done() and self.closed_reason is None

    @property
    def max_message_size(self) -> int:
        """The peer's negotiated SCTP max-message-size (RFC 8841)."""
        sctp = self._sctp()
        size = getattr(sctp, "_remote_max_message_size", None) if sctp is not None else None
        return int(size) if size else DEFAULT_MAX_MESSAGE_SIZE

    def _sctp(self) -> Any:
        """aiortc's ``RTCSctpTransport`` (None before the description sets it up)."""
        return getattr(self.pc, "sctp", None)

    # -- receiving -------------------------------------------------------------------------------
    def _received(self, channel: Channel, message: bytes) -> None:
        name = channel.name.lower()
        if channel is Channel.RELIABLE:
            try:
                whole = self._joiner.feed(message)
            except FragmentError as exc:
                self.stats.count(self.stats.drops, exc.counter)
                self.close(str(exc))
                return
            if whole is None:
                return
            message = whole
        self.stats.count(self.stats.messages_received, name)
        self.stats.count(self.stats.bytes_received, name, len(message))
        if self.handler is not None and not self._early:
            self.handler.carrier_received(channel, message)
        elif len(self._early) < EARLY_MESSAGES:
            self._early.append((channel, message))
        else:
            self.stats.count(self.stats.drops, f"{name}_no_handler")

    def attach(self, handler: CarrierHandler) -> None:
        """Hand every message to ``handler`` from now on. Those that arrived before it was
        attached follow on the next turn of the loop, so that whoever attached it can finish
        setting up (accept the session) first; messages keep their order meanwhile."""
        self.handler = handler
        asyncio.get_running_loop().call_soon(self._flush_early, handler)

    def _flush_early(self, handler: CarrierHandler) -> None:
        while self._early and self.handler is handler:
            handler.carrier_received(*self._early.popleft())
        if self.closed_reason is not None and self.handler is handler:
            handler.carrier_closed(self.closed_reason)

    # -- sending ---------------------------------------------------------------------------------
    def unreliable_budget(self) -> int:
        """Congestion window minus bytes in flight minus bytes already queued in SCTP."""
        sctp = self._sctp()
        if sctp is None or not self.is_open:
            return 0
        try:
            queued = sum(len(c.user_data) for c in sctp._outbound_queue)
            queued += sum(len(d) for _, _, d in sctp._data_channel_queue)
            return max(0, int(sctp._cwnd) - int(sctp._flight_size) - queued)
        except AttributeError:  # another aiortc layout: fall back to what the channels buffer
            buffered = sum(dc.bufferedAmount for dc in self.channels.values())
            return max(0, 4 * SCTP_CHUNK_PAYLOAD - buffered)

    def send(self, channel: Channel, payload: bytes) -> bool:
        name = channel.name.lower()
        if channel is Channel.RELIABLE and len(payload) > self.max_reliable_message:
            raise WebRtcCarrierError(
                f"reliable message of {len(payload)} bytes over the limit of "
                f"{self.max_reliable_message}"
            )
        if not self.is_open:  # as over QUIC: a closed connection takes nothing, quietly
            self.stats.count(self.stats.drops, f"{name}_not_open")
            return False
        dc = self.channels[channel]
        if channel in UNRELIABLE:
            if len(payload) > self.max_datagram_size:
                self.stats.count(self.stats.drops, f"{name}_oversized")
                return False
            if len(payload) > self.unreliable_budget():
                self.stats.count(self.stats.drops, f"{name}_paced")
                return False
            dc.send(payload)
        else:
            for piece in fragments(payload, min(self.max_message_size, DEFAULT_MAX_MESSAGE_SIZE)):
                dc.send(piece)
            if dc.bufferedAmount > self.max_send_buffer:
                self.stats.count(self.stats.drops, "reliable_unread")
                self.close("the peer does not read its reliable channel")
                return False
        self.stats.count(self.stats.messages_sent, name)
        self.stats.count(self.stats.bytes_sent, name, len(payload))
        return True

    def wire_counters(self) -> dict[str, int]:
        """UDP payload bytes and datagrams through this connection's DTLS transport (all of
        DTLS, SCTP and data-channel overhead included; add 28 bytes a datagram for IPv4 and UDP
        headers). aiortc keeps these for ``getStats``; read here without awaiting."""
        sctp = self._sctp()
        dtls = getattr(sctp, "transport", None)
        out = {}
        for name in ("tx_bytes", "tx_packets", "rx_bytes", "rx_packets"):
            out[name] = int(getattr(dtls, f"_RTCDtlsTransport__{name}", 0))
        return out

    # -- closing ---------------------------------------------------------------------------------
    def _closed(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        if not self._opened.done():
            self._opened.set_exception(ConnectionError(reason))
            self._opened.exception()  # consumed: nobody may be waiting
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self.pc.close())
        if self.handler is not None and not self._early:
            self.handler.carrier_closed(reason)

    def close(self, reason: str = "") -> None:
        self._closed(reason or "closed locally")

    async def aclose(self, reason: str = "") -> None:
        """Close and wait until the peer connection has shut down."""
        self.close(reason)
        if self._close_task is not None:
            with contextlib.suppress(Exception):
                await self._close_task
